/**
 * ElevenLabs text-to-speech, streamed: raw PCM at the transport's own rate
 * (8, 16 or 24 kHz), one request per sentence so the first sentence plays
 * while the rest is still being made.
 */
import { z } from "zod";
import type { SampleRate } from "../audio/frame.js";
import { streamedSpeech } from "./cloud.js";
import { sentences, withAliases, type SpokenFrame, type SynthesizeOptions, type Synthesizer } from "./types.js";

export const ElevenLabsOptions = withAliases(z.strictObject({
  apiKey: z.string({ error: "required (or set ELEVENLABS_API_KEY)" }).min(1, "required (or set ELEVENLABS_API_KEY)").describe("ElevenLabs API key"),
  baseUrl: z.url().default("https://api.elevenlabs.io/v1").describe("API base"),
  voiceId: z.string().min(1).default("21m00Tcm4TlvDq8ikWAM").describe("voice (the reference's speakerVoiceId is taken too)"),
  modelId: z.string().min(1).default("eleven_flash_v2_5").describe("speech model"),
  timeoutMs: z.number().int().positive().default(10_000).describe("the first audio must come within this"),
}), { speakerVoiceId: "voiceId" });
export type ElevenLabsOptions = z.infer<typeof ElevenLabsOptions>;

export class ElevenLabsSynthesizer implements Synthesizer {
  readonly id = "elevenlabs";

  constructor(private readonly options: ElevenLabsOptions) {}

  async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    const { apiKey, baseUrl, voiceId, modelId, timeoutMs } = this.options;
    const rate = options.sampleRate as SampleRate;
    for (const sentence of sentences(text)) {
      if (options.signal?.aborted) return;
      yield* streamedSpeech(
        "ElevenLabs",
        `${baseUrl.replace(/\/$/, "")}/text-to-speech/${encodeURIComponent(voiceId)}/stream?output_format=pcm_${rate}`,
        { headers: { "xi-api-key": apiKey, "Content-Type": "application/json" }, body: JSON.stringify({ text: sentence, model_id: modelId }) },
        { inRate: rate, outRate: rate },
        { signal: options.signal, timeoutMs, sentence },
      );
    }
  }
}
