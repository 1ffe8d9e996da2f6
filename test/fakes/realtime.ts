/**
 * A local server speaking OpenAI's GA Realtime protocol, for realtime voice
 * sessions: `session.update`, `input_audio_buffer.append` (G.711 mu-law or
 * PCM16 at 24 kHz, as the session says), server VAD by energy
 * (`input_audio_buffer.speech_started` / `speech_stopped`, the caller's words
 * transcribed from a script), responses with flite speech as
 * `response.output_audio.delta` (sent twice as fast as it plays, as the real
 * service sends ahead), output transcripts, function calls and their
 * outputs, `conversation.item.truncate`, `response.cancel`, and a response
 * cut off when the caller speaks over it. Records what each session sent.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { decodeG711, encodeG711 } from "../../src/audio/g711.js";
import { FliteSynthesizer } from "../../src/speech/flite.js";
import { synthesizeAll } from "../../src/speech/types.js";
import { GOOD_KEY, Utterances } from "./vendors.js";

/** What the model does next: say something, call a tool, or both (its words first, as a model says goodbye and hangs up). */
export interface RealtimeAnswer {
  say?: string;
  toolCall?: { name: string; arguments: Record<string, unknown> };
}

/** Why the model answers: the caller's words, a tool's output, or a response.create of the client's. */
export type AnswerCause = { heard: string } | { toolOutput: string } | { instructions: string | undefined };

/** What one session sent, for tests to check. */
export interface RealtimeSessionLog {
  url: string;
  updates: Array<Record<string, any>>;
  audioInBytes: number;
  /** When each input_audio_buffer.append arrived (performance.now()). */
  appendsAt: number[];
  truncates: Array<{ item_id: string; content_index: number; audio_end_ms: number }>;
  /** When each truncate arrived (performance.now()). */
  truncatesAt: number[];
  cancels: number;
  toolOutputs: Array<{ call_id: string; output: string }>;
  /** Items the model spoke, with how many ms of audio were sent for each. */
  spoken: Array<{ itemId: string; text: string; audioMs: number; cut: boolean; firstDeltaAt?: number }>;
}

const SEND_AHEAD = 2;

export class FakeRealtimeVoice {
  readonly sessions: RealtimeSessionLog[] = [];
  private words: string[] = ["hello"];
  /** The model's answer; unset: it says "You said: <words>." */
  answer: (cause: AnswerCause) => RealtimeAnswer | undefined = (cause) => ("heard" in cause ? { say: `You said: ${cause.heard}.` } : undefined);
  private scriptIndex = 0;
  /** How long the socket's handshake takes, as a far service's does. */
  readyDelayMs = 0;

  /** The caller's words, one per utterance, in order (cycled from the first when set). */
  get script(): string[] {
    return this.words;
  }
  set script(words: string[]) {
    this.words = words;
    this.scriptIndex = 0;
  }
  private seq = 0;
  private readonly sockets = new Set<WebSocket>();
  private readonly flite = new FliteSynthesizer();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeRealtimeVoice> {
    const server = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const fake = new FakeRealtimeVoice(server, (server.address() as AddressInfo).port);
    const wss = new WebSocketServer({ noServer: true });
    server.on("upgrade", (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname !== "/v1/realtime" || !url.searchParams.get("model") || req.headers.authorization !== `Bearer ${GOOD_KEY}`) {
        const body = JSON.stringify({ error: { message: "Incorrect API key provided" } });
        socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        return;
      }
      const upgrade = () =>
        wss.handleUpgrade(req, socket, head, (ws) => {
          fake.sockets.add(ws);
          ws.on("close", () => fake.sockets.delete(ws));
          fake.session(ws, `${url.pathname}${url.search}`);
        });
      if (fake.readyDelayMs > 0) setTimeout(upgrade, fake.readyDelayMs);
      else upgrade();
    });
    return fake;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  /** Closes every session from the server's side, as the service ending a session does. */
  dropSessions(code = 1011, reason = "server error"): void {
    for (const ws of this.sockets) ws.close(code, reason);
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private session(ws: WebSocket, url: string): void {
    const log: RealtimeSessionLog = { url, updates: [], audioInBytes: 0, appendsAt: [], truncates: [], truncatesAt: [], cancels: 0, toolOutputs: [], spoken: [] };
    this.sessions.push(log);
    const send = (event: Record<string, unknown>) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event_id: `event_${++this.seq}`, ...event }));
    };
    let format: "pcmu" | "pcm24k" = "pcm24k";
    let speaking: { cancel(): void } | undefined;
    let audioMs = 0;
    let told: string | undefined;
    const respond = (cause: AnswerCause) => {
      const answer = this.answer(cause);
      if (!answer) return;
      speaking?.cancel();
      speaking = this.speak(answer, format, send, log, () => (speaking = undefined));
    };
    const utterances = new Utterances((edge) => {
      if (edge === "start") {
        send({ type: "input_audio_buffer.speech_started", audio_start_ms: audioMs, item_id: `item_in_${this.seq}` });
        // interrupt_response: the caller's speech cuts off the response being made.
        speaking?.cancel();
        return;
      }
      send({ type: "input_audio_buffer.speech_stopped", audio_end_ms: audioMs });
      const heard = this.words[this.scriptIndex++ % this.words.length]!;
      const itemId = `item_in_${++this.seq}`;
      send({ type: "input_audio_buffer.committed", item_id: itemId });
      send({ type: "conversation.item.input_audio_transcription.completed", item_id: itemId, content_index: 0, transcript: heard });
      respond({ heard });
    });
    send({ type: "session.created", session: { type: "realtime", id: `sess_${this.seq}` } });
    ws.on("message", (data) => {
      const event = JSON.parse(data.toString()) as Record<string, any>;
      switch (event.type) {
        case "session.update": {
          log.updates.push(event.session);
          // A later update may change only part of the session (turn detection): the format stays.
          const type = event.session?.audio?.input?.format?.type;
          if (type) format = type === "audio/pcmu" ? "pcmu" : "pcm24k";
          send({ type: "session.updated", session: event.session });
          return;
        }
        case "input_audio_buffer.append": {
          const bytes = Buffer.from(String(event.audio), "base64");
          log.audioInBytes += bytes.length;
          log.appendsAt.push(performance.now());
          const pcm = format === "pcmu" ? decodeG711("ulaw", bytes) : new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
          const rate = format === "pcmu" ? 8000 : 24000;
          audioMs += (pcm.length / rate) * 1000;
          utterances.push(pcm, rate);
          return;
        }
        case "conversation.item.truncate":
          log.truncates.push({ item_id: event.item_id, content_index: event.content_index, audio_end_ms: event.audio_end_ms });
          log.truncatesAt.push(performance.now());
          send({ type: "conversation.item.truncated", item_id: event.item_id, content_index: event.content_index, audio_end_ms: event.audio_end_ms });
          return;
        case "response.cancel":
          log.cancels += 1;
          speaking?.cancel();
          return;
        case "conversation.item.create":
          if (event.item?.type === "function_call_output") log.toolOutputs.push({ call_id: event.item.call_id, output: event.item.output });
          // A client's words as a user message (how some clients ask for a greeting): what the next response is told.
          if (event.item?.type === "message" && event.item.role === "user") told = event.item.content?.find((c: { type?: string }) => c.type === "input_text")?.text;
          return;
        case "response.create": {
          const output = log.toolOutputs.at(-1);
          const instructions = event.response?.instructions ?? told;
          told = undefined;
          respond(output && !(output as { answered?: boolean }).answered ? (Object.assign(output, { answered: true }), { toolOutput: output.output }) : { instructions });
          return;
        }
        default:
          send({ type: "error", error: { type: "invalid_request_error", message: `unknown event ${String(event.type)}` } });
      }
    });
  }

  /** One response: audio of `say` in 100 ms deltas at twice real time, then its transcript; or a function call. */
  private speak(answer: RealtimeAnswer, format: "pcmu" | "pcm24k", send: (e: Record<string, unknown>) => void, log: RealtimeSessionLog, done: () => void): { cancel(): void } {
    const responseId = `resp_${++this.seq}`;
    const itemId = `item_out_${this.seq}`;
    let cancelled = false;
    let finished = false;
    /** The response's items, listed again in response.done (where some clients read function calls). */
    const output: Array<Record<string, unknown>> = [];
    const finish = (status: string) => {
      if (finished) return;
      finished = true;
      send({ type: "response.done", response: { id: responseId, status, output } });
      done();
    };
    send({ type: "response.created", response: { id: responseId, status: "in_progress" } });
    const callTool = (call: NonNullable<RealtimeAnswer["toolCall"]>) => {
      const callId = `call_${++this.seq}`;
      const toolItem = `item_out_${this.seq}`;
      send({ type: "response.output_item.added", response_id: responseId, item: { id: toolItem, type: "function_call", call_id: callId, name: call.name } });
      send({ type: "response.function_call_arguments.done", response_id: responseId, item_id: toolItem, call_id: callId, name: call.name, arguments: JSON.stringify(call.arguments) });
      output.push({ id: toolItem, type: "function_call", status: "completed", call_id: callId, name: call.name, arguments: JSON.stringify(call.arguments) });
    };
    if (answer.toolCall && answer.say === undefined) {
      callTool(answer.toolCall);
      finish("completed");
      return { cancel: () => undefined };
    }
    const text = answer.say ?? "";
    const entry: RealtimeSessionLog["spoken"][number] = { itemId, text, audioMs: 0, cut: false };
    log.spoken.push(entry);
    send({ type: "response.output_item.added", response_id: responseId, item: { id: itemId, type: "message", role: "assistant" } });
    output.push({ id: itemId, type: "message", role: "assistant" });
    void (async () => {
      const rate = format === "pcmu" ? 8000 : 24000;
      const pcm = await synthesizeAll(this.flite, text, rate);
      const chunk = rate / 10;
      for (let i = 0; i < pcm.length && !cancelled; i += chunk) {
        const piece = pcm.subarray(i, Math.min(pcm.length, i + chunk));
        const bytes = format === "pcmu" ? Buffer.from(encodeG711("ulaw", piece)) : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        entry.firstDeltaAt ??= performance.now();
        send({ type: "response.output_audio.delta", response_id: responseId, item_id: itemId, content_index: 0, delta: bytes.toString("base64") });
        entry.audioMs += (piece.length / rate) * 1000;
        await new Promise((r) => setTimeout(r, 100 / SEND_AHEAD));
      }
      if (cancelled) return;
      send({ type: "response.output_audio.done", response_id: responseId, item_id: itemId });
      send({ type: "response.output_audio_transcript.done", response_id: responseId, item_id: itemId, transcript: text });
      if (answer.toolCall) callTool(answer.toolCall);
      finish("completed");
    })();
    return {
      cancel: () => {
        if (finished) return;
        cancelled = true;
        entry.cut = true;
        finish("cancelled");
      },
    };
  }
}
