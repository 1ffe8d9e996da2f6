/**
 * What every carrier's media path looks like to the rest of the project:
 * caller audio in as PCM16 frames, our audio out through a paced queue,
 * `clear()` for barge-in, and marks that tell what has really been sent.
 */
import { AsyncQueue } from "../util/async-queue.js";
import { silentFrame, type AudioFrame, type SampleRate } from "./frame.js";
import type { AfterIo, FramePacer, PacedStream } from "./pacer.js";
import type { TransportTap } from "./recorder.js";

export interface MediaTransport {
  readonly sampleRate: SampleRate;
  /** Caller audio, in order, until the transport closes. */
  frames(): AsyncIterable<AudioFrame>;
  /** Queues a frame to send; frames go out one per 20 ms tick. `item` names what it belongs to (a sentence, a model's reply) for playedMs. */
  write(frame: AudioFrame, item?: string): void;
  /**
   * Milliseconds of `item` that have gone out to the far side at its real-time
   * pace (what the caller has heard of it, give or take the far side's jitter
   * buffer): frames cleared before their tick never count. 0 for an unknown
   * item; the newest ITEMS_KEPT items are remembered.
   */
  playedMs(item: string): number;
  /** When the far side's audio last arrived (performance.now()), undefined before any; idle silence given to readers does not count. */
  readonly lastReceivedAt: number | undefined;
  /** Resolves true once everything written before it was sent, false if cleared or closed first. */
  mark(): Promise<boolean>;
  /** Drops everything queued (barge-in); pending marks resolve false. */
  clear(): void;
  close(): void;
  readonly closed: boolean;
  /** Hands both directions, as heard, to `tap` from now on (a recording); undefined stops it. */
  record?(tap: TransportTap | undefined): void;
}

type Item = { frame: AudioFrame; item?: string } | { mark: (sent: boolean) => void };

/** How many named items' played time a transport remembers (a call's last few replies). */
export const ITEMS_KEPT = 32;

/** The outgoing half shared by transports: a queue drained one frame per tick. */
export class OutputQueue {
  private items: Item[] = [];
  private head = 0;
  /** Milliseconds sent of each named item, oldest first. */
  private readonly played = new Map<string, number>();

  write(frame: AudioFrame, item?: string): void {
    this.items.push(item === undefined ? { frame } : { frame, item });
  }

  playedMs(item: string): number {
    return this.played.get(item) ?? 0;
  }

  mark(): Promise<boolean> {
    return new Promise((resolve) => {
      this.items.push({ mark: resolve });
      this.settleMarks();
    });
  }

  /** The next frame due, resolving marks passed on the way. */
  next(): AudioFrame | undefined {
    this.settleMarks();
    const item = this.items[this.head];
    if (!item || !("frame" in item)) return undefined;
    this.head += 1;
    if (item.item !== undefined) this.count(item.item, (item.frame.pcm.length / item.frame.sampleRate) * 1000);
    this.settleMarks();
    this.compact();
    return item.frame;
  }

  private count(item: string, ms: number): void {
    const before = this.played.get(item);
    if (before === undefined && this.played.size >= ITEMS_KEPT) this.played.delete(this.played.keys().next().value!);
    this.played.set(item, (before ?? 0) + ms);
  }

  get pendingFrames(): number {
    let n = 0;
    for (let i = this.head; i < this.items.length; i += 1) if ("frame" in this.items[i]!) n += 1;
    return n;
  }

  clear(): void {
    const dropped = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    for (const item of dropped) if ("mark" in item) item.mark(false);
  }

  private settleMarks(): void {
    while (this.head < this.items.length) {
      const item = this.items[this.head]!;
      if (!("mark" in item)) return;
      this.head += 1;
      item.mark(true);
    }
  }

  private compact(): void {
    if (this.head > 256 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** The incoming half: caller frames for one reader, at most `limit` behind (oldest dropped first). */
export class InputQueue extends AsyncQueue<AudioFrame> {
  constructor(limit = 250) {
    super(limit);
  }
}

/** Ticks without audio from the far side before silence is given to readers. */
const IDLE_TICKS = 3;

/**
 * What the transports share: caller frames fanned out to every reader, our
 * frames sent one per tick of the shared 20 ms pacer (silence when there is
 * nothing to say), marks and clear(). The far side often sends nothing while
 * its caller is silent, so after IDLE_TICKS quiet ticks readers are given
 * silence (a recogniser's endpointer must hear the end of a sentence), once
 * the event loop has read what arrived: a stalled loop's catch-up ticks must
 * not put silence in the middle of words still waiting in the socket.
 * Subclasses move bytes: `send` one frame (undefined: silence) and call
 * `received` with each frame that arrives.
 */
export abstract class PacedTransport implements MediaTransport, PacedStream, AfterIo {
  private readonly inputs = new Set<InputQueue>();
  private readonly output = new OutputQueue();
  private detach: (() => void) | null = null;
  private isClosed = false;
  private idleTicks = 0;
  /** Quiet ticks whose silence waits for the I/O phase (anything arriving meanwhile cancels it). */
  private quietDue = 0;
  /** One silent frame for readers, handed out again and again (readers never write into frames). */
  private quietFrame: AudioFrame | undefined;
  /** Both directions go here too, as heard (a recording). */
  private tap: TransportTap | undefined;

  constructor(
    readonly sampleRate: SampleRate,
    private readonly pacer: FramePacer,
  ) {}

  /** One frame to the far side; undefined means silence. */
  protected abstract send(frame: AudioFrame | undefined): void;
  /** Releases the connection or socket. */
  protected abstract release(): void;

  get closed(): boolean {
    return this.isClosed;
  }

  /** Starts the 20 ms clock (once the far side's address is known). */
  protected startClock(): void {
    this.detach ??= this.pacer.add(this);
  }

  /** A frame from the far side, in order. */
  /** When the far side's audio last arrived. */
  lastReceivedAt: number | undefined;

  protected received(frame: AudioFrame): void {
    this.lastReceivedAt = performance.now();
    this.idleTicks = 0;
    this.quietDue = 0;
    for (const q of this.inputs) q.push(frame);
    this.tap?.caller(frame);
  }

  record(tap: TransportTap | undefined): void {
    this.tap = tap;
  }

  frames(): AsyncIterable<AudioFrame> {
    const queue = new InputQueue();
    if (this.isClosed) queue.end();
    else this.inputs.add(queue);
    const inner = queue.iterate();
    const inputs = this.inputs;
    return {
      [Symbol.asyncIterator]() {
        const it = inner[Symbol.asyncIterator]();
        return {
          next: () => it.next(),
          return: () => {
            inputs.delete(queue);
            return it.return ? it.return() : Promise.resolve({ value: undefined, done: true as const });
          },
        };
      },
    };
  }

  write(frame: AudioFrame, item?: string): void {
    if (frame.sampleRate !== this.sampleRate) {
      throw new RangeError(`frame at ${frame.sampleRate} Hz on a ${this.sampleRate} Hz transport`);
    }
    if (!this.isClosed) this.output.write(frame, item);
  }

  playedMs(item: string): number {
    return this.output.playedMs(item);
  }

  mark(): Promise<boolean> {
    return this.isClosed ? Promise.resolve(false) : this.output.mark();
  }

  clear(): void {
    this.output.clear();
  }

  get queuedFrames(): number {
    return this.output.pendingFrames;
  }

  tick(): void {
    if (this.isClosed) return;
    this.idleTicks += 1;
    if (this.idleTicks >= IDLE_TICKS) {
      this.quietDue += 1;
      this.pacer.afterIo(this);
    }
    const frame = this.output.next();
    this.tap?.ours(frame);
    this.send(frame);
  }

  /** The quiet ticks' silence, unless the far side's audio turned up when the loop read its sockets. */
  afterIo(): void {
    const due = this.quietDue;
    this.quietDue = 0;
    if (this.isClosed || this.idleTicks < IDLE_TICKS) return;
    this.quietFrame ??= silentFrame(this.sampleRate);
    for (let i = 0; i < due; i += 1) for (const q of this.inputs) q.push(this.quietFrame);
  }

  /** Our tick threw (a socket fault): the pacer took us off; the call's media ends, readers see the end. */
  onTickError(): void {
    this.detach = null;
    this.close();
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.detach?.();
    this.output.clear();
    this.beforeClose();
    for (const q of this.inputs) q.end();
    this.inputs.clear();
    this.release();
  }

  /** Last words in: frames still held (a jitter buffer) are delivered here. */
  protected beforeClose(): void {}
}
