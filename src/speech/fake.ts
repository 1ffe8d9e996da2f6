/** A synthesizer for tests: a sine tone, `msPerChar` long per character of text. */
import type { AudioFrame } from "../audio/frame.js";
import type { SynthesizeOptions, Synthesizer } from "./types.js";

export class ToneSynthesizer implements Synthesizer {
  readonly id = "tone";
  constructor(
    private readonly frequency = 440,
    private readonly msPerChar = 40,
    private readonly maxMs = 800,
  ) {}

  async *synthesize(text: string, { sampleRate, signal }: SynthesizeOptions): AsyncIterable<AudioFrame> {
    const n = sampleRate / 50;
    const frames = Math.max(1, Math.round(Math.min(this.maxMs, text.length * this.msPerChar) / 20));
    for (let f = 0; f < frames && !signal?.aborted; f += 1) {
      const pcm = new Int16Array(n);
      for (let i = 0; i < n; i += 1) pcm[i] = Math.round(9000 * Math.sin((2 * Math.PI * this.frequency * (f * n + i)) / sampleRate));
      yield { pcm, sampleRate };
    }
  }
}
