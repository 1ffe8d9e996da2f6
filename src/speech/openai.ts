/**
 * OpenAI speech: realtime transcription over a WebSocket (its semantic VAD,
 * or a fixed-silence server VAD, finds utterance ends; phone audio goes as G.711 mu-law, wideband as PCM16 at
 * 24 kHz), and text-to-speech over streamed HTTP (raw PCM16 at 24 kHz).
 * `baseUrl` points both at any server that speaks the same protocol.
 */
import type WebSocket from "ws";
import { z } from "zod";
import type { AudioFrame, SampleRate } from "../audio/frame.js";
import { encodeG711 } from "../audio/g711.js";
import { Resampler } from "../audio/resample.js";
import { streamedSpeech, WsTranscriberStream } from "./cloud.js";
import { sentences, withAliases, type SpokenFrame, type SynthesizeOptions, type Synthesizer, type Transcriber, type TranscriberStream } from "./types.js";

/**
 * A config that tunes the fixed-silence VAD (the reference's silenceDurationMs
 * or vadThreshold) keeps it: semantic_vad is the default only where neither is set.
 */
export const keepsServerVad = (value: unknown) => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const v = value as Record<string, unknown>;
  return v.turnDetection === undefined && (v.silenceDurationMs !== undefined || v.vadThreshold !== undefined) ? { ...v, turnDetection: "server_vad" } : v;
};

/** How OpenAI's sessions (transcription and realtime) end the caller's turn. */
export const OPENAI_TURN_DETECTION = {
  turnDetection: z
    .enum(["semantic_vad", "server_vad"])
    .default("semantic_vad")
    .describe("how OpenAI ends the caller's turn: semantic_vad (by what was said: waits through a trailing \"and ...\") or server_vad (a fixed silence)"),
  eagerness: z.enum(["low", "medium", "high", "auto"]).default("auto").describe("semantic_vad: how soon it ends a turn (low waits longest)"),
};

export const OpenAiSttOptions = z.preprocess(keepsServerVad, z.strictObject({
  apiKey: z.string({ error: "required (or set OPENAI_API_KEY)" }).min(1, "required (or set OPENAI_API_KEY)").describe("OpenAI API key"),
  baseUrl: z.url().default("https://api.openai.com/v1").describe("API base; the realtime transcription socket is its wss:// form"),
  model: z.string().min(1).default("gpt-4o-transcribe").describe("transcription model"),
  language: z.string().min(2).optional().describe("the callers' language (ISO 639-1); unset: detected"),
  ...OPENAI_TURN_DETECTION,
  silenceDurationMs: z.number().int().min(100).max(5000).default(500).describe("server VAD: the silence that ends an utterance"),
  vadThreshold: z.number().min(0).max(1).default(0.5).describe("server VAD: speech probability threshold"),
  connectTimeoutMs: z.number().int().positive().default(10_000).describe("the socket must open within this"),
}));
export type OpenAiSttOptions = z.infer<typeof OpenAiSttOptions>;

export const OpenAiTtsOptions = withAliases(z.strictObject({
  apiKey: z.string({ error: "required (or set OPENAI_API_KEY)" }).min(1, "required (or set OPENAI_API_KEY)").describe("OpenAI API key"),
  baseUrl: z.url().default("https://api.openai.com/v1").describe("API base (POST <baseUrl>/audio/speech)"),
  model: z.string().min(1).default("gpt-4o-mini-tts").describe("speech model"),
  voice: z.string().min(1).default("alloy").describe("voice (the reference's speakerVoice is taken too)"),
  instructions: z.string().min(1).optional().describe("how to speak (tone, pace), for models that take it"),
  timeoutMs: z.number().int().positive().default(10_000).describe("the first audio must come within this"),
}), { speakerVoice: "voice" });
export type OpenAiTtsOptions = z.infer<typeof OpenAiTtsOptions>;

const REALTIME_RATE = 24000;

export function wsUrl(baseUrl: string, path: string): string {
  const url = new URL(`${baseUrl.replace(/\/$/, "")}${path}`);
  url.protocol = url.protocol === "https:" ? "wss:" : url.protocol === "http:" ? "ws:" : url.protocol;
  return url.toString();
}

export class OpenAiTranscriber implements Transcriber {
  readonly id = "openai";
  readonly endpointing = "engine" as const;
  /** Its semantic VAD ends utterances by what was said. */
  readonly endsTurns: boolean;

  constructor(private readonly options: OpenAiSttOptions) {
    this.endsTurns = options.turnDetection === "semantic_vad";
  }

  async stream(options: { sampleRate: number }): Promise<TranscriberStream> {
    const resampler = options.sampleRate === 8000 ? undefined : await Resampler.create(options.sampleRate, REALTIME_RATE);
    const stream = new OpenAiStream(this.options, options.sampleRate, resampler);
    try {
      await stream.open();
    } catch (err) {
      resampler?.destroy();
      throw err;
    }
    return stream;
  }
}

class OpenAiStream extends WsTranscriberStream {
  private partial = "";
  /** The server heard speech stop; speech_ended follows the transcript, as with every engine. */
  private stopped = false;

  constructor(
    private readonly opts: OpenAiSttOptions,
    private readonly rate: number,
    private readonly resampler: Resampler | undefined,
  ) {
    super({
      vendor: "OpenAI realtime transcription",
      url: wsUrl(opts.baseUrl, "/realtime?intent=transcription"),
      headers: { Authorization: `Bearer ${opts.apiKey}`, "OpenAI-Beta": "realtime=v1" },
      connectTimeoutMs: opts.connectTimeoutMs,
      maxReconnects: 5,
    });
  }

  protected onOpen(ws: WebSocket): void {
    const { model, language, silenceDurationMs, vadThreshold, turnDetection, eagerness } = this.opts;
    const turn_detection =
      turnDetection === "semantic_vad"
        ? { type: "semantic_vad", eagerness }
        : { type: "server_vad", threshold: vadThreshold, prefix_padding_ms: 300, silence_duration_ms: silenceDurationMs };
    ws.send(
      JSON.stringify({
        type: "transcription_session.update",
        session: {
          input_audio_format: this.resampler ? "pcm16" : "g711_ulaw",
          input_audio_transcription: { model, ...(language ? { language } : {}) },
          turn_detection,
        },
      }),
    );
  }

  protected sendAudio(ws: WebSocket, frame: AudioFrame): void {
    if (frame.sampleRate !== this.rate) throw new Error(`frame at ${frame.sampleRate} Hz on a ${this.rate} Hz stream`);
    const bytes = this.resampler
      ? Buffer.from(this.resampler.process(frame.pcm).buffer)
      : Buffer.from(encodeG711("ulaw", frame.pcm));
    ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: bytes.toString("base64") }));
  }

  protected sendFlush(ws: WebSocket): void {
    ws.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
  }

  protected sendEnd(ws: WebSocket): void {
    this.sendFlush(ws);
    // The result of the last commit arrives before the server closes; close after a grace period.
    setTimeout(() => ws.close(), 1500).unref();
  }

  override close(): void {
    super.close();
    this.resampler?.destroy();
  }

  protected onMessage(data: string): void {
    let event: { type?: string; delta?: string; transcript?: string; error?: { message?: string; code?: string } };
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    switch (event.type) {
      case "input_audio_buffer.speech_started":
        this.partial = "";
        return this.queue.push({ type: "speech_started" });
      case "input_audio_buffer.speech_stopped":
        this.stopped = true;
        return;
      case "conversation.item.input_audio_transcription.delta":
        this.partial += event.delta ?? "";
        if (this.partial.trim()) this.queue.push({ type: "interim", text: this.partial.trim() });
        return;
      case "conversation.item.input_audio_transcription.completed":
      case "conversation.item.input_audio_transcription.failed":
        this.partial = "";
        if (event.transcript?.trim()) this.queue.push({ type: "final", text: event.transcript.trim() });
        if (this.stopped) this.queue.push({ type: "speech_ended" });
        this.stopped = false;
        return;
      case "error":
        // An empty commit is not a failure of the stream.
        if (event.error?.code === "input_audio_buffer_commit_empty") return;
        return this.fail(`OpenAI realtime transcription: ${event.error?.message ?? "error"}`);
    }
  }
}

export class OpenAiSynthesizer implements Synthesizer {
  readonly id = "openai";

  constructor(private readonly options: OpenAiTtsOptions) {}

  async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    const { apiKey, baseUrl, model, voice, instructions, timeoutMs } = this.options;
    // One request per sentence: the first one's audio is playing before the rest is requested.
    for (const sentence of sentences(text)) {
      if (options.signal?.aborted) return;
      yield* streamedSpeech(
        "OpenAI text-to-speech",
        `${baseUrl.replace(/\/$/, "")}/audio/speech`,
        {
          headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
          body: JSON.stringify({ model, voice, input: sentence, response_format: "pcm", ...(instructions ? { instructions } : {}) }),
        },
        { inRate: REALTIME_RATE, outRate: options.sampleRate as SampleRate },
        { signal: options.signal, timeoutMs, sentence },
      );
    }
  }
}
