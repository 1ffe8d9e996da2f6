/**
 * What every carrier's media path looks like to the rest of the project:
 * caller audio in as PCM16 frames, our audio out through a paced queue,
 * `clear()` for barge-in, and marks that tell what has really been sent.
 */
import { AsyncQueue } from "../util/async-queue.js";
import type { AudioFrame, SampleRate } from "./frame.js";

export interface MediaTransport {
  readonly sampleRate: SampleRate;
  /** Caller audio, in order, until the transport closes. */
  frames(): AsyncIterable<AudioFrame>;
  /** Queues a frame to send; frames go out one per 20 ms tick. */
  write(frame: AudioFrame): void;
  /** Resolves true once everything written before it was sent, false if cleared or closed first. */
  mark(): Promise<boolean>;
  /** Drops everything queued (barge-in); pending marks resolve false. */
  clear(): void;
  close(): void;
  readonly closed: boolean;
}

type Item = { frame: AudioFrame } | { mark: (sent: boolean) => void };

/** The outgoing half shared by transports: a queue drained one frame per tick. */
export class OutputQueue {
  private items: Item[] = [];
  private head = 0;

  write(frame: AudioFrame): void {
    this.items.push({ frame });
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
    this.settleMarks();
    this.compact();
    return item.frame;
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
