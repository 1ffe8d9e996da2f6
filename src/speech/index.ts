/** Builds the configured speech engines. */
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import { FliteSynthesizer } from "./flite.js";
import { SpeechError, type Synthesizer } from "./types.js";

export function createSynthesizer(config: VoiceCallConfig): Synthesizer {
  const options = config.tts.providers[config.tts.provider] ?? {};
  try {
    switch (config.tts.provider) {
      case "flite":
        return new FliteSynthesizer({ voice: typeof options.voice === "string" ? options.voice : undefined });
    }
  } catch (err) {
    if (err instanceof SpeechError) throw new VoiceCallError("UNAVAILABLE", `tts.provider ${config.tts.provider}: ${err.message}`);
    throw err;
  }
}
