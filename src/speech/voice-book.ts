/**
 * Per-number voices (`numbers.<n>.tts`): one engine per number that has its
 * own voice, each behind its own sentence cache, and the default engine for
 * everything else. What is said picks its voice with `voice` (the number the
 * caller dialled), so one service can be several lines, each with its voice.
 */
import type { SpokenFrame, SynthesizeOptions, Synthesizer } from "./types.js";

export class VoiceBook implements Synthesizer {
  constructor(
    private readonly fallback: Synthesizer,
    private readonly voices: ReadonlyMap<string, Synthesizer>,
  ) {}

  get id(): string {
    return this.fallback.id;
  }

  synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    const engine = (options.voice !== undefined && this.voices.get(options.voice)) || this.fallback;
    return engine.synthesize(text, options);
  }
}
