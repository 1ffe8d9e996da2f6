/**
 * Speech on the audio bus. A Synthesizer turns text into PCM frames as they
 * are produced, at the rate the caller's transport runs at, and stops when
 * its signal aborts (barge-in).
 */
import type { AudioFrame, SampleRate } from "../audio/frame.js";

export interface SynthesizeOptions {
  sampleRate: SampleRate;
  signal?: AbortSignal;
}

export interface Synthesizer {
  readonly id: string;
  synthesize(text: string, options: SynthesizeOptions): AsyncIterable<AudioFrame>;
}

export class SpeechError extends Error {
  constructor(
    readonly code: "SPEECH_UNAVAILABLE" | "SPEECH_FAILED",
    message: string,
  ) {
    super(message);
    this.name = "SpeechError";
  }
}

/** Splits text into sentences, so the first one can play while the rest is synthesized. */
export function sentences(text: string): string[] {
  const parts = text.match(/[^.!?;:\n]+[.!?;:]*|[.!?;:]+/g) ?? [];
  return parts.map((s) => s.trim()).filter((s) => /[\p{L}\p{N}]/u.test(s));
}
