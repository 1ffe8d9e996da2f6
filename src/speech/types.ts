/**
 * Speech on the audio bus. A Synthesizer turns text into PCM frames as they
 * are produced, at the rate the caller's transport runs at, and stops when
 * its signal aborts (barge-in).
 */
import { z } from "zod";
import { concatPcm, type AudioFrame, type SampleRate } from "../audio/frame.js";

export interface SynthesizeOptions {
  sampleRate: SampleRate;
  signal?: AbortSignal;
  /** The number whose own voice says it (numbers.<n>.tts); the default voice otherwise. */
  voice?: string;
}

/** A frame of synthesized speech. */
export interface SpokenFrame extends AudioFrame {
  /** Set on the last frame of a sentence: the sentence it completes (for marks of what was heard). */
  completes?: string;
}

export interface Synthesizer {
  readonly id: string;
  synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame>;
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

/** Everything `synthesizer` says for `text`, as one buffer (recordings, tests, the bench). */
export async function synthesizeAll(synthesizer: Synthesizer, text: string, sampleRate: SampleRate): Promise<Int16Array> {
  const parts: Int16Array[] = [];
  for await (const f of synthesizer.synthesize(text, { sampleRate })) parts.push(f.pcm);
  return concatPcm(parts);
}

/** Splits text into sentences, so the first one can play while the rest is synthesized. */
export function sentences(text: string): string[] {
  // A sentence ends at punctuation followed by a space (so "3.50" and "10:30" stay whole), or at a line break.
  const parts = text.split(/(?<=[.!?;:]["')\]]*)\s+|\n+/);
  return parts.map((s) => s.trim()).filter((s) => /[\p{L}\p{N}]/u.test(s));
}

/** Kinds of answer a prompt can ask for. */
export type Expectation = "digits" | "yesno";

export type TranscriptEvent =
  | { type: "speech_started" }
  | { type: "interim"; text: string }
  | { type: "final"; text: string }
  | { type: "speech_ended" }
  /** Speech the recogniser could not get to (it fell behind), with why; never dropped silently. */
  | { type: "unrecognised"; reason: string }
  /** The engine gave up (after its own retries); the stream ends after this. */
  | { type: "error"; message: string };

export interface StreamOptions {
  sampleRate: number;
  narrowband?: boolean;
}

/** One recognition stream: frames pushed in, events iterated out. */
export interface TranscriberStream {
  pushFrame(frame: AudioFrame): void;
  /**
   * What the next answers are expected to be; engines with grammars decode
   * them with one (undefined returns to open speech). Others ignore it.
   */
  expect?(kind: Expectation | undefined): void;
  /** Ends the current utterance now and emits its final result. */
  flush(): void;
  /** No more audio: flushes, then ends the event stream. */
  endInput(): void;
  close(): void;
  events(): AsyncIterable<TranscriptEvent>;
}

export interface Transcriber {
  readonly id: string;
  /**
   * "bus": the engine hears only utterances found by the bus's voice
   * detector, each flushed at its end; "engine": every frame, and the engine
   * finds utterance ends itself.
   */
  readonly endpointing: "bus" | "engine";
  /**
   * Its finals are ends of turns, judged by a model of its own (Deepgram
   * Flux's EndOfTurn, OpenAI's semantic VAD): turn-taking takes them as they
   * come rather than holding one that trails off.
   */
  readonly endsTurns?: boolean;
  /**
   * How likely `text` ends a sentence (log10), from the engine's own language
   * model, for engines whose words carry no punctuation; undefined: it cannot say.
   */
  sentenceEnd?(text: string): number | undefined;
  /**
   * Opens a stream for audio at `sampleRate` (resampled inside as the engine
   * needs). `narrowband`: the far end is a telephone-band line (G.711) even
   * if the stream runs at 16 kHz; engines tuned for phone audio use it.
   */
  stream(options: StreamOptions): Promise<TranscriberStream>;
}

/**
 * An engine's options schema that also takes the reference plugin's spelling
 * of some keys (`speakerVoice` for `voice`, ...); the current key wins when
 * both are given.
 */
export function withAliases<S extends z.ZodType>(schema: S, aliases: Record<string, string>) {
  return z.preprocess((value) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
    const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const [alias, key] of Object.entries(aliases)) {
      if (!(alias in out)) continue;
      out[key] ??= out[alias];
      delete out[alias];
    }
    return out;
  }, schema);
}
