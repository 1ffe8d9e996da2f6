/**
 * One monotonic deadline scheduler that paces 20 ms frames for every call.
 * Slot n is due at start + n x (20 ms / phases) on performance.now(); one
 * timer serves all streams, so pacing stays on the grid however many calls
 * there are (a setInterval per call drifts and bunches). Each stream lives
 * in one phase and is ticked every `phases` slots, i.e. every 20 ms; spreading
 * streams over phases keeps each burst of sends short, so a large number of
 * calls does not delay the ones at the end of the burst. When the process
 * stalls, missed slots are run back to back, up to a bound, then skipped.
 */
import { FRAME_MS } from "./frame.js";

export interface PacedStream {
  /** Sends one frame's worth; called once per tick. */
  tick(): void;
  /** Told when its tick threw: the stream has been taken off the pacer (the other calls go on). */
  onTickError?(err: unknown): void;
}

/** Work a stream asks to run after the I/O that was waiting when its tick ran (see FramePacer.afterIo). */
export interface AfterIo {
  afterIo(): void;
}

export interface PacerStats {
  ticks: number;
  /** Ticks dropped because the process stalled longer than maxCatchUp ticks. */
  skipped: number;
  /** Lateness of each tick in ms, when recordLateness is on. */
  lateness: number[];
  /** Streams taken off because their tick threw. */
  failed: number;
}

export class FramePacer {
  private readonly groups: Array<Set<PacedStream>>;
  private readonly phaseOf = new Map<PacedStream, number>();
  private readonly slotMs: number;
  private timer: NodeJS.Timeout | null = null;
  /** Streams waiting for the I/O phase to pass, and whether its immediate is scheduled. */
  private readonly waitingIo = new Set<AfterIo>();
  private ioScheduled = false;
  private start = 0;
  private n = 0;
  readonly stats: PacerStats = { ticks: 0, skipped: 0, lateness: [], failed: 0 };
  recordLateness = false;

  constructor(
    private readonly now: () => number = () => performance.now(),
    frameMs = FRAME_MS,
    phases = 10,
    private readonly maxCatchUp = 5 * phases,
  ) {
    this.groups = Array.from({ length: phases }, () => new Set<PacedStream>());
    this.slotMs = frameMs / phases;
  }

  add(stream: PacedStream): () => void {
    if (this.phaseOf.has(stream)) return () => this.remove(stream);
    let phase = 0;
    for (let i = 1; i < this.groups.length; i += 1) if (this.groups[i]!.size < this.groups[phase]!.size) phase = i;
    this.groups[phase]!.add(stream);
    this.phaseOf.set(stream, phase);
    if (!this.timer) {
      this.start = this.now();
      this.n = 0;
      this.schedule();
    }
    return () => this.remove(stream);
  }

  remove(stream: PacedStream): void {
    const phase = this.phaseOf.get(stream);
    if (phase === undefined) return;
    this.phaseOf.delete(stream);
    this.groups[phase]!.delete(stream);
    if (this.phaseOf.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  get size(): number {
    return this.phaseOf.size;
  }

  /**
   * Runs `stream.afterIo()` once the event loop has polled for I/O. Ticks run
   * in the timers phase, before the poll phase reads what arrived meanwhile:
   * after a stall, catch-up ticks would otherwise find no audio from a far
   * side whose packets are in fact waiting in the socket. One immediate per
   * pacer run serves every stream, however many calls there are.
   */
  afterIo(stream: AfterIo): void {
    this.waitingIo.add(stream);
    if (this.ioScheduled) return;
    this.ioScheduled = true;
    setImmediate(() => {
      this.ioScheduled = false;
      const due = [...this.waitingIo];
      this.waitingIo.clear();
      for (const s of due) {
        try {
          s.afterIo();
        } catch {
          // One call's fault must not stop the others' audio: counted, as a failed tick is.
          this.stats.failed += 1;
        }
      }
    });
  }

  private schedule(): void {
    const due = this.start + (this.n + 1) * this.slotMs;
    this.timer = setTimeout(() => this.run(), Math.max(0, due - this.now()));
    this.timer.unref();
  }

  private run(): void {
    const now = this.now();
    let due = Math.floor((now - this.start) / this.slotMs) - this.n;
    if (due > this.maxCatchUp) {
      this.stats.skipped += due - this.maxCatchUp;
      this.n += due - this.maxCatchUp;
      due = this.maxCatchUp;
    }
    for (let i = 0; i < due; i += 1) {
      this.n += 1;
      const group = this.groups[this.n % this.groups.length]!;
      if (group.size === 0) continue;
      this.stats.ticks += 1;
      if (this.recordLateness) this.stats.lateness.push(this.now() - (this.start + this.n * this.slotMs));
      for (const s of group) {
        try {
          s.tick();
        } catch (err) {
          // One call's fault must not stop every call's audio.
          this.stats.failed += 1;
          this.remove(s);
          try {
            s.onTickError?.(err);
          } catch {
            // The stream's own error handler failed too; it is already off the pacer.
          }
        }
      }
    }
    if (this.phaseOf.size > 0) this.schedule();
    else this.timer = null;
  }
}

/** The scheduler shared by every call in this process. */
export const sharedPacer = new FramePacer();
