/**
 * One monotonic deadline scheduler that paces 20 ms frames for every call.
 * Tick n is due at start + n x 20 ms on performance.now(); one timer serves
 * all streams, so pacing stays on the grid however many calls there are
 * (a setInterval per call drifts and bunches). When the process stalls,
 * missed ticks are run back to back, up to a bound, then skipped.
 */
import { FRAME_MS } from "./frame.js";

export interface PacedStream {
  /** Sends one frame's worth; called once per tick. */
  tick(): void;
}

export interface PacerStats {
  ticks: number;
  /** Ticks dropped because the process stalled longer than maxCatchUp ticks. */
  skipped: number;
  /** Lateness of each tick in ms, when recordLateness is on. */
  lateness: number[];
}

export class FramePacer {
  private readonly streams = new Set<PacedStream>();
  private timer: NodeJS.Timeout | null = null;
  private start = 0;
  private n = 0;
  readonly stats: PacerStats = { ticks: 0, skipped: 0, lateness: [] };
  recordLateness = false;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly frameMs = FRAME_MS,
    private readonly maxCatchUp = 5,
  ) {}

  add(stream: PacedStream): () => void {
    this.streams.add(stream);
    if (!this.timer) {
      this.start = this.now();
      this.n = 0;
      this.schedule();
    }
    return () => this.remove(stream);
  }

  remove(stream: PacedStream): void {
    this.streams.delete(stream);
    if (this.streams.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  get size(): number {
    return this.streams.size;
  }

  private schedule(): void {
    const due = this.start + (this.n + 1) * this.frameMs;
    this.timer = setTimeout(() => this.run(), Math.max(0, due - this.now()));
    this.timer.unref();
  }

  private run(): void {
    const now = this.now();
    let due = Math.floor((now - this.start) / this.frameMs) - this.n;
    if (due > this.maxCatchUp) {
      this.stats.skipped += due - this.maxCatchUp;
      this.n += due - this.maxCatchUp;
      due = this.maxCatchUp;
    }
    for (let i = 0; i < due; i += 1) {
      this.n += 1;
      this.stats.ticks += 1;
      if (this.recordLateness) this.stats.lateness.push(now - (this.start + this.n * this.frameMs));
      for (const s of this.streams) s.tick();
    }
    if (this.streams.size > 0) this.schedule();
    else this.timer = null;
  }
}

/** The scheduler shared by every call in this process. */
export const sharedPacer = new FramePacer();
