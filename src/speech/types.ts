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

export type TranscriptEvent =
  | { type: "speech_started" }
  | { type: "interim"; text: string }
  | { type: "final"; text: string }
  | { type: "speech_ended" };

/** One recognition stream: frames pushed in, events iterated out. */
export interface TranscriberStream {
  pushFrame(frame: AudioFrame): void;
  /** Ends the current utterance now and emits its final result. */
  flush(): void;
  /** No more audio: flushes, then ends the event stream. */
  endInput(): void;
  close(): void;
  events(): AsyncIterable<TranscriptEvent>;
}

export interface Transcriber {
  readonly id: string;
  /** Opens a stream for audio at `sampleRate` (resampled inside as the engine needs). */
  stream(options: { sampleRate: number }): Promise<TranscriberStream>;
}
