/**
 * Deepgram streaming recognition over a WebSocket: PCM16 frames in, interim
 * and final results out; Deepgram's endpointing finds utterance ends and its
 * VAD events mark speech starts. Keep-alives hold the stream open while the
 * caller is silent (Deepgram closes idle streams after about 10 s).
 */
import type WebSocket from "ws";
import { z } from "zod";
import type { AudioFrame } from "../audio/frame.js";
import { WsTranscriberStream } from "./cloud.js";
import type { Transcriber, TranscriberStream } from "./types.js";

export const DeepgramOptions = z.strictObject({
  apiKey: z.string({ error: "required (or set DEEPGRAM_API_KEY)" }).min(1, "required (or set DEEPGRAM_API_KEY)").describe("Deepgram API key"),
  baseUrl: z.url().default("wss://api.deepgram.com/v1").describe("streaming API base"),
  model: z.string().min(1).default("nova-3").describe("recognition model"),
  language: z.string().min(2).default("en").describe("the callers' language"),
  endpointingMs: z.number().int().min(10).max(5000).default(300).describe("the silence that ends an utterance"),
  connectTimeoutMs: z.number().int().positive().default(10_000).describe("the socket must open within this"),
});
export type DeepgramOptions = z.infer<typeof DeepgramOptions>;

const KEEPALIVE_MS = 5000;

export class DeepgramTranscriber implements Transcriber {
  readonly id = "deepgram";
  readonly endpointing = "engine" as const;

  constructor(private readonly options: DeepgramOptions) {}

  async stream(options: { sampleRate: number }): Promise<TranscriberStream> {
    const stream = new DeepgramStream(this.options, options.sampleRate);
    await stream.open();
    return stream;
  }
}

class DeepgramStream extends WsTranscriberStream {
  private keepAlive?: NodeJS.Timeout;
  private lastAudio = 0;
  /** Final pieces of the utterance so far (Deepgram finalises in segments). */
  private segments: string[] = [];

  constructor(
    opts: DeepgramOptions,
    private readonly rate: number,
  ) {
    const query = new URLSearchParams({
      model: opts.model,
      language: opts.language,
      encoding: "linear16",
      sample_rate: String(rate),
      channels: "1",
      interim_results: "true",
      vad_events: "true",
      endpointing: String(opts.endpointingMs),
      smart_format: "true",
    });
    super({
      vendor: "Deepgram",
      url: `${opts.baseUrl.replace(/^http/, "ws").replace(/\/$/, "")}/listen?${query}`,
      headers: { Authorization: `Token ${opts.apiKey}` },
      connectTimeoutMs: opts.connectTimeoutMs,
      maxReconnects: 5,
    });
  }

  protected onOpen(ws: WebSocket): void {
    clearInterval(this.keepAlive);
    this.keepAlive = setInterval(() => {
      if (Date.now() - this.lastAudio >= KEEPALIVE_MS && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: "KeepAlive" }));
    }, KEEPALIVE_MS);
    this.keepAlive.unref();
  }

  protected sendAudio(ws: WebSocket, frame: AudioFrame): void {
    if (frame.sampleRate !== this.rate) throw new Error(`frame at ${frame.sampleRate} Hz on a ${this.rate} Hz stream`);
    this.lastAudio = Date.now();
    ws.send(Buffer.from(frame.pcm.buffer, frame.pcm.byteOffset, frame.pcm.byteLength));
  }

  protected sendFlush(ws: WebSocket): void {
    ws.send(JSON.stringify({ type: "Finalize" }));
  }

  protected sendEnd(ws: WebSocket): void {
    ws.send(JSON.stringify({ type: "CloseStream" }));
  }

  override close(): void {
    clearInterval(this.keepAlive);
    super.close();
  }

  protected onMessage(data: string): void {
    let msg: {
      type?: string;
      is_final?: boolean;
      speech_final?: boolean;
      from_finalize?: boolean;
      channel?: { alternatives?: Array<{ transcript?: string }> };
      description?: string;
    };
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === "SpeechStarted") return this.queue.push({ type: "speech_started" });
    if (msg.type === "UtteranceEnd") return this.endUtterance();
    if (msg.type === "Error") return this.fail(`Deepgram: ${msg.description ?? "error"}`);
    if (msg.type !== "Results") return;
    const text = msg.channel?.alternatives?.[0]?.transcript?.trim() ?? "";
    if (!msg.is_final) {
      if (text) this.queue.push({ type: "interim", text: [...this.segments, text].join(" ") });
      return;
    }
    if (text) this.segments.push(text);
    if (msg.speech_final || msg.from_finalize) this.endUtterance();
  }

  private endUtterance(): void {
    if (this.segments.length === 0) return;
    this.queue.push({ type: "final", text: this.segments.join(" ") });
    this.queue.push({ type: "speech_ended" });
    this.segments = [];
  }
}
