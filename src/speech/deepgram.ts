/**
 * Deepgram streaming recognition over a WebSocket: PCM16 frames in, interim
 * and final results out; Deepgram's endpointing finds utterance ends and its
 * VAD events mark speech starts (nova models), or its Flux models' own
 * end-of-turn events end the caller's turns. Keep-alives hold the stream open while the
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
  endpointingMs: z.number().int().min(10).max(5000).default(300).describe("the silence that ends an utterance (nova models)"),
  eotThreshold: z.number().min(0.5).max(1).default(0.7).describe("flux models: how sure its end-of-turn model must be that the caller finished"),
  eotTimeoutMs: z.number().int().min(500).max(60_000).default(5000).describe("flux models: the longest silence before a turn ends anyway"),
  connectTimeoutMs: z.number().int().positive().default(10_000).describe("the socket must open within this"),
});
export type DeepgramOptions = z.infer<typeof DeepgramOptions>;

const KEEPALIVE_MS = 5000;

export class DeepgramTranscriber implements Transcriber {
  readonly id = "deepgram";
  readonly endpointing = "engine" as const;
  /** Flux models (flux-general-en, ...) end turns with their own end-of-turn model, on Deepgram's v2 API. */
  readonly endsTurns: boolean;

  constructor(private readonly options: DeepgramOptions) {
    this.endsTurns = options.model.startsWith("flux");
  }

  async stream(options: { sampleRate: number }): Promise<TranscriberStream> {
    const stream = this.endsTurns ? new FluxStream(this.options, options.sampleRate) : new DeepgramStream(this.options, options.sampleRate);
    await stream.open();
    return stream;
  }
}

const sendPcm = (ws: WebSocket, frame: AudioFrame, rate: number) => {
  if (frame.sampleRate !== rate) throw new Error(`frame at ${frame.sampleRate} Hz on a ${rate} Hz stream`);
  ws.send(Buffer.from(frame.pcm.buffer, frame.pcm.byteOffset, frame.pcm.byteLength));
};

/**
 * Deepgram Flux: one TurnInfo message stream per turn (StartOfTurn, Updates
 * with the words so far, EndOfTurn when its model judges the caller done, or
 * after eotTimeoutMs of silence). A flush is a ForceEndTurn.
 */
class FluxStream extends WsTranscriberStream {
  constructor(
    opts: DeepgramOptions,
    private readonly rate: number,
  ) {
    const query = new URLSearchParams({
      model: opts.model,
      encoding: "linear16",
      sample_rate: String(rate),
      eot_threshold: String(opts.eotThreshold),
      eot_timeout_ms: String(opts.eotTimeoutMs),
    });
    // Flux is on v2 of the same API: a base of .../v1 becomes .../v2.
    const base = opts.baseUrl.replace(/^http/, "ws").replace(/\/$/, "").replace(/\/v1$/, "/v2");
    super({ vendor: "Deepgram", url: `${base}/listen?${query}`, headers: { Authorization: `Token ${opts.apiKey}` }, connectTimeoutMs: opts.connectTimeoutMs, maxReconnects: 5 });
  }

  protected onOpen(): void {}

  protected sendAudio(ws: WebSocket, frame: AudioFrame): void {
    sendPcm(ws, frame, this.rate);
  }

  protected sendFlush(ws: WebSocket): void {
    ws.send(JSON.stringify({ type: "ForceEndTurn" }));
  }

  protected sendEnd(ws: WebSocket): void {
    ws.send(JSON.stringify({ type: "CloseStream" }));
  }

  protected onMessage(data: string): void {
    let msg: { type?: string; event?: string; transcript?: string; description?: string };
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === "Error") return this.fail(`Deepgram: ${msg.description ?? "error"}`);
    if (msg.type !== "TurnInfo") return;
    const text = msg.transcript?.trim() ?? "";
    if (msg.event === "StartOfTurn") this.queue.push({ type: "speech_started" });
    else if (msg.event === "EndOfTurn") {
      if (text) this.queue.push({ type: "final", text });
      this.queue.push({ type: "speech_ended" });
    } else if (text) this.queue.push({ type: "interim", text });
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
    this.lastAudio = Date.now();
    sendPcm(ws, frame, this.rate);
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
