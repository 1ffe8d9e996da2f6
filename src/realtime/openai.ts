/**
 * OpenAI's GA Realtime API over a WebSocket, our own client: one session
 * per call at `<baseUrl as ws(s)>/realtime?model=...`, configured with
 * `session.update` (audio in and out as G.711 mu-law on 8 kHz lines, PCM16
 * 24 kHz otherwise; its semantic VAD (or a fixed-silence one) that answers and lets the caller cut in; the
 * caller's words transcribed; our tools). Server events become
 * RealtimeEvents; a session the server closes is over (it is not reopened:
 * the model's conversation would be lost, so the call ends with the reason).
 * `baseUrl` points it at any server that speaks the protocol.
 */
import { randomUUID } from "node:crypto";
import type WebSocket from "ws";
import { z } from "zod";
import { openVendorSocket } from "../speech/cloud.js";
import { keepsServerVad, OPENAI_TURN_DETECTION, wsUrl } from "../speech/openai.js";
import { AsyncQueue } from "../util/async-queue.js";
import type { RealtimeEvent, RealtimeSessionConfig, RealtimeVoice, RealtimeVoiceSession } from "./types.js";

/** Loose: the reference's other keys for this provider (e.g. azureEndpoint) load, and those named here are checked. */
export const OpenAiRealtimeOptions = z.preprocess(keepsServerVad, z.looseObject({
  apiKey: z.string({ error: "required (or set OPENAI_API_KEY)" }).min(1, "required (or set OPENAI_API_KEY)").describe("OpenAI API key"),
  baseUrl: z.url().default("https://api.openai.com/v1").describe("API base; the realtime socket is <baseUrl as wss://>/realtime?model=..."),
  model: z.string().min(1).default("gpt-realtime").describe("realtime model"),
  voice: z.string().min(1).default("marin").describe("the model's voice"),
  transcriptionModel: z.string().min(1).default("gpt-4o-mini-transcribe").describe("transcribes the caller's words for the call's transcript"),
  ...OPENAI_TURN_DETECTION,
  silenceDurationMs: z.number().int().min(100).max(5000).default(500).describe("server VAD: the silence that ends the caller's turn"),
  vadThreshold: z.number().min(0).max(1).default(0.5).describe("server VAD: speech probability threshold"),
  connectTimeoutMs: z.number().int().positive().default(10_000).describe("the socket must open within this"),
}));
export type OpenAiRealtimeOptions = z.infer<typeof OpenAiRealtimeOptions>;

const VENDOR = "OpenAI realtime";

export class OpenAiRealtime implements RealtimeVoice {
  readonly id = "openai";

  constructor(private readonly options: OpenAiRealtimeOptions) {}

  async open(config: RealtimeSessionConfig): Promise<RealtimeVoiceSession> {
    const { apiKey, baseUrl, model, connectTimeoutMs } = this.options;
    const ws = await openVendorSocket({
      vendor: VENDOR,
      url: wsUrl(baseUrl, `/realtime?model=${encodeURIComponent(model)}`),
      headers: { Authorization: `Bearer ${apiKey}` },
      connectTimeoutMs,
    });
    return new OpenAiRealtimeSession(ws, this.options, config);
  }
}

/** What the client sends the server: events named by the GA protocol. */
type ClientEvent = { type: string; [key: string]: unknown };

/** The server events read here (every other one is ignored). */
interface ServerEvent {
  type?: string;
  item_id?: string;
  delta?: string;
  transcript?: string;
  audio_start_ms?: number;
  call_id?: string;
  name?: string;
  arguments?: string;
  response?: { status?: string; status_details?: { error?: { message?: string } } };
  error?: { message?: string; code?: string };
}

class OpenAiRealtimeSession implements RealtimeVoiceSession {
  readonly id = randomUUID();
  private readonly queue = new AsyncQueue<RealtimeEvent>();
  private closedBy: string | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly options: OpenAiRealtimeOptions,
    config: RealtimeSessionConfig,
  ) {
    ws.on("message", (data, isBinary) => {
      if (!isBinary) this.onMessage(data.toString());
    });
    ws.on("close", (code, reason) => this.end(this.closedBy ?? `${VENDOR} closed the session (${code}${reason.length ? ` ${reason.toString()}` : ""})`));
    ws.on("error", (err) => this.end(`${VENDOR}: ${err.message}`));
    const format = config.audio === "pcmu" ? { type: "audio/pcmu" } : { type: "audio/pcm", rate: 24000 };
    this.send({
      type: "session.update",
      session: {
        type: "realtime",
        model: options.model,
        instructions: config.instructions,
        output_modalities: ["audio"],
        audio: {
          input: {
            format,
            transcription: { model: options.transcriptionModel },
            turn_detection: {
              ...(options.turnDetection === "semantic_vad"
                ? { type: "semantic_vad", eagerness: options.eagerness }
                : { type: "server_vad", threshold: options.vadThreshold, silence_duration_ms: options.silenceDurationMs }),
              create_response: true,
              interrupt_response: true,
            },
          },
          output: { format, voice: options.voice },
        },
        tools: config.tools.map((t) => ({ type: "function", name: t.name, description: t.description, parameters: t.parameters })),
        tool_choice: "auto",
      },
    });
  }

  events(): AsyncIterable<RealtimeEvent> {
    return this.queue.iterate();
  }

  appendAudio(audio: Buffer): void {
    this.send({ type: "input_audio_buffer.append", audio: audio.toString("base64") });
  }

  truncate(itemId: string, audioEndMs: number): void {
    this.send({ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: Math.max(0, Math.round(audioEndMs)) });
  }

  cancelResponse(): void {
    this.send({ type: "response.cancel" });
  }

  toolResult(callId: string, output: unknown, respond = true): void {
    this.send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: callId, output: typeof output === "string" ? output : JSON.stringify(output) } });
    if (respond) this.send({ type: "response.create" });
  }

  respond(instructions?: string): void {
    this.send({ type: "response.create", ...(instructions ? { response: { instructions } } : {}) });
  }

  close(): void {
    this.closedBy ??= "closed by us";
    this.ws.close(1000);
    this.end(this.closedBy);
  }

  private send(event: ClientEvent): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(event));
  }

  private end(reason: string): void {
    if (this.queue.isEnded) return;
    this.queue.push({ type: "closed", reason });
    this.queue.end();
  }

  private onMessage(data: string): void {
    let event: ServerEvent;
    try {
      event = JSON.parse(data) as ServerEvent;
    } catch {
      return;
    }
    const push = (e: RealtimeEvent) => this.queue.push(e);
    switch (event.type) {
      case "response.output_audio.delta":
        if (event.delta) push({ type: "audio", itemId: event.item_id ?? "", audio: Buffer.from(event.delta, "base64") });
        return;
      case "input_audio_buffer.speech_started":
        return push({ type: "speech_started", audioStartMs: event.audio_start_ms ?? 0 });
      case "input_audio_buffer.speech_stopped":
        return push({ type: "speech_stopped" });
      case "conversation.item.input_audio_transcription.completed":
        if (event.transcript?.trim()) push({ type: "input_transcript", itemId: event.item_id ?? "", text: event.transcript.trim() });
        return;
      case "response.output_audio_transcript.done":
        if (event.transcript?.trim()) push({ type: "output_transcript", itemId: event.item_id ?? "", text: event.transcript.trim() });
        return;
      case "response.function_call_arguments.done":
        if (event.call_id && event.name) push({ type: "tool_call", callId: event.call_id, name: event.name, arguments: event.arguments ?? "{}" });
        return;
      case "response.done":
        return push({ type: "response_done", status: event.response?.status ?? "completed" });
      case "error":
        return push({ type: "error", message: `${VENDOR}: ${event.error?.message ?? "error"}${event.error?.code ? ` (${event.error.code})` : ""}` });
      default:
        return;
    }
  }
}
