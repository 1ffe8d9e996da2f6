/**
 * A media transport with no socket: the far side is this object. What we
 * send is kept with the time it went out (one frame per tick of the shared
 * pacer, as on a real line); `feed` plays caller audio into it.
 */
import { sharedPacer } from "../../src/audio/pacer.js";
import { toFrames, type AudioFrame, type SampleRate } from "../../src/audio/frame.js";
import { PacedTransport } from "../../src/audio/transport.js";

export class LoopTransport extends PacedTransport {
  /** Every tick's frame (undefined: silence), with when it went out (performance.now()). */
  readonly sent: Array<{ at: number; frame?: AudioFrame }> = [];

  constructor(sampleRate: SampleRate) {
    super(sampleRate, sharedPacer);
    this.startClock();
  }

  protected send(frame: AudioFrame | undefined): void {
    this.sent.push({ at: performance.now(), ...(frame ? { frame } : {}) });
  }

  protected release(): void {}

  /** Caller audio, as fast as it is given (the far side's frames arrive in order). */
  feed(pcm: Int16Array): void {
    for (const frame of toFrames(pcm, this.sampleRate)) this.received(frame);
  }

  /** Milliseconds of our audio that went out after `since` (ticks with a frame of ours, not idle silence). */
  ourMsAfter(since: number): number {
    return this.sent.filter((s) => s.at >= since && s.frame).length * 20;
  }
}
