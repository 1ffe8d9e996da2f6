/** Builds the configured speech engines. */
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import { FliteSynthesizer } from "./flite.js";
import { PocketsphinxTranscriber } from "./pocketsphinx.js";
import { SpeechError, type Synthesizer, type Transcriber } from "./types.js";

function unavailable(what: string, err: unknown): never {
  if (err instanceof SpeechError) throw new VoiceCallError("UNAVAILABLE", `${what}: ${err.message}`);
  throw err;
}

export function createSynthesizer(config: VoiceCallConfig): Synthesizer {
  const options = config.tts.providers[config.tts.provider] ?? {};
  try {
    return new FliteSynthesizer({ voice: typeof options.voice === "string" ? options.voice : undefined });
  } catch (err) {
    unavailable(`tts.provider ${config.tts.provider}`, err);
  }
}

/** Offline recognition unless streaming.provider names another engine. */
export function createTranscriber(config: VoiceCallConfig): Transcriber {
  const id = config.streaming.provider ?? "pocketsphinx";
  if (id !== "pocketsphinx") {
    throw new VoiceCallError("INVALID_CONFIG", `streaming.provider: ${id} is not available in this version (available: pocketsphinx)`, [
      { path: "streaming.provider", message: `${id} is not available in this version` },
    ]);
  }
  const options = config.streaming.providers.pocketsphinx ?? {};
  try {
    return new PocketsphinxTranscriber({
      modelDir: typeof options.modelDir === "string" ? options.modelDir : undefined,
      jsgf: typeof options.jsgf === "string" ? options.jsgf : undefined,
    });
  } catch (err) {
    unavailable(`streaming.provider ${id}`, err);
  }
}
