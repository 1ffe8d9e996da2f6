/**
 * A call's recording from our own audio bus: the caller's frames as they
 * arrived (left) and ours as they went out on each 20 ms tick (right), as a
 * 16-bit WAV at the line's rate; mono mixes the two. Each side is kept on
 * the wall clock: a side that falls behind it by more than SLACK_MS (the far
 * side sends nothing while its caller is quiet) gets silence where the gap
 * was, so the two stay aligned within SLACK_MS and neither drifts. A write
 * that fails (a full disk) stops the recording, never the call: what was
 * written stays a valid WAV.
 */
import { closeSync, createWriteStream, openSync, writeSync, type WriteStream } from "node:fs";
import { wavHeader } from "../speech/wav.js";
import { samplesPerFrame, type AudioFrame, type SampleRate } from "./frame.js";

export type RecordingChannels = "stereo" | "mono";

/** What a transport hands a recorder: both directions, as heard. */
export interface TransportTap {
  /** The caller's audio (idle silence included, as readers get it). */
  caller(frame: AudioFrame): void;
  /** Ours, one per tick: undefined is a tick with nothing to say. */
  ours(frame: AudioFrame | undefined): void;
}

export interface RecordingSummary {
  path: string;
  channels: RecordingChannels;
  sampleRate: SampleRate;
  durationMs: number;
  bytes: number;
  /** Why it stopped early (the disk, a closed file), if it did. */
  failed?: string;
}

/** A side may lag the clock this much (a far side's jitter) before the gap is filled with silence. */
const SLACK_MS = 100;
/** Audio buffered before a write (a second). */
const FLUSH_FRAMES = 50;
const HEADER_BYTES = 44;

export class CallRecorder implements TransportTap {
  private readonly out: WriteStream;
  private left: Int16Array[] = [];
  private right: Int16Array[] = [];
  /** Samples queued on each side and not yet written. */
  private leftSamples = 0;
  private rightSamples = 0;
  /** Samples each side has had since the start (written or not). */
  private leftTotal = 0;
  private rightTotal = 0;
  private readonly startedAt = performance.now();
  private pending: Buffer[] = [];
  private pendingFrames = 0;
  private dataBytes = 0;
  private failure?: string;
  private stopped = false;
  private readonly slack: number;
  private readonly frameSamples: number;
  /** A tick with nothing of ours: one silent frame, shared (sides are only read from, never written into). */
  private readonly quiet: Int16Array;

  constructor(
    readonly path: string,
    readonly sampleRate: SampleRate,
    readonly channels: RecordingChannels,
    /** Told once when a write fails: the recording stops there. */
    private readonly onFailure: (reason: string) => void = () => undefined,
  ) {
    this.slack = (sampleRate * SLACK_MS) / 1000;
    this.frameSamples = samplesPerFrame(sampleRate);
    this.quiet = new Int16Array(this.frameSamples);
    this.out = createWriteStream(path, { flags: "w" });
    this.out.on("error", (err) => this.fail(err));
    this.out.write(wavHeader(sampleRate, channels === "stereo" ? 2 : 1, 0));
  }

  caller(frame: AudioFrame): void {
    if (this.stopped) return;
    this.catchUp("left", frame.pcm.length);
    this.push("left", frame.pcm);
    this.drain();
  }

  ours(frame: AudioFrame | undefined): void {
    if (this.stopped) return;
    const pcm = frame?.pcm ?? this.quiet;
    this.catchUp("right", pcm.length);
    this.push("right", pcm);
    // A caller who sends nothing (a far side quiet while its caller is) is silence meanwhile, not audio held back.
    this.catchUp("left", 0);
    this.drain();
  }

  /**
   * Silence for a side's gap. A frame about to be added (`coming`) that
   * would land more than two frames before its time gets silence up to a
   * frame before it; with nothing coming (the clock's own check) a side is
   * kept within the slack of the clock, so frames arriving a little late
   * (jitter) still fit where they belong.
   */
  private catchUp(side: "left" | "right", coming: number): void {
    const due = ((performance.now() - this.startedAt) * this.sampleRate) / 1000;
    const had = side === "left" ? this.leftTotal : this.rightTotal;
    const lag = due - had - coming;
    const gap = coming > 0 ? (lag > 2 * this.frameSamples ? lag - this.frameSamples : 0) : lag > this.slack ? lag - this.slack : 0;
    if (gap >= 1) this.push(side, new Int16Array(Math.floor(gap)));
  }

  private push(side: "left" | "right", pcm: Int16Array): void {
    if (side === "left") {
      this.left.push(pcm);
      this.leftSamples += pcm.length;
      this.leftTotal += pcm.length;
    } else {
      this.right.push(pcm);
      this.rightSamples += pcm.length;
      this.rightTotal += pcm.length;
    }
  }

  /** Ends the recording: what is buffered is written, then the header gets its sizes. */
  async close(): Promise<RecordingSummary> {
    if (!this.stopped) {
      // The side behind is padded to the other's length: both end together.
      const behind = this.rightSamples - this.leftSamples;
      if (behind > 0) this.push("left", new Int16Array(behind));
      else if (behind < 0) this.push("right", new Int16Array(-behind));
      this.drain();
      this.flush();
      this.stopped = true;
    }
    if (this.out.destroyed) {
      // A failed write destroyed the stream: nothing more goes to the file.
    } else {
      await new Promise<void>((resolve) => {
        this.out.once("close", () => resolve());
        this.out.end();
      });
    }
    if (!this.failure) this.patchHeader();
    const perSample = this.channels === "stereo" ? 4 : 2;
    return {
      path: this.path,
      channels: this.channels,
      sampleRate: this.sampleRate,
      durationMs: Math.round(((this.dataBytes / perSample) * 1000) / this.sampleRate),
      bytes: HEADER_BYTES + this.dataBytes,
      ...(this.failure ? { failed: this.failure } : {}),
    };
  }

  /** Writes out what both sides have. */
  private drain(): void {
    const n = Math.min(this.leftSamples, this.rightSamples);
    if (n === 0) return;
    const left = take(this.left, n);
    const right = take(this.right, n);
    this.leftSamples -= n;
    this.rightSamples -= n;
    const block = Buffer.alloc(n * (this.channels === "stereo" ? 4 : 2));
    for (let i = 0; i < n; i += 1) {
      if (this.channels === "stereo") {
        block.writeInt16LE(left[i]!, i * 4);
        block.writeInt16LE(right[i]!, i * 4 + 2);
      } else {
        block.writeInt16LE(Math.max(-32768, Math.min(32767, left[i]! + right[i]!)), i * 2);
      }
    }
    this.pending.push(block);
    this.pendingFrames += n / this.frameSamples;
    if (this.pendingFrames >= FLUSH_FRAMES) this.flush();
  }

  private flush(): void {
    if (this.pending.length === 0 || this.failure) return;
    const chunk = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingFrames = 0;
    this.dataBytes += chunk.length;
    this.out.write(chunk);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err.message;
    this.stopped = true;
    this.pending = [];
    this.left = [];
    this.right = [];
    this.onFailure(err.message);
  }

  /** RIFF and data sizes, now that they are known. */
  private patchHeader(): void {
    let fd: number | undefined;
    try {
      fd = openSync(this.path, "r+");
      writeSync(fd, wavHeader(this.sampleRate, this.channels === "stereo" ? 2 : 1, this.dataBytes), 0, HEADER_BYTES, 0);
    } catch (err) {
      this.failure ??= (err as Error).message;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}

/** The first `n` samples of a side's frames, removed from it. */
function take(side: Int16Array[], n: number): Int16Array {
  const out = new Int16Array(n);
  let at = 0;
  while (at < n) {
    const head = side[0]!;
    const want = n - at;
    if (head.length <= want) {
      out.set(head, at);
      at += head.length;
      side.shift();
    } else {
      out.set(head.subarray(0, want), at);
      side[0] = head.subarray(want);
      at += want;
    }
  }
  return out;
}
