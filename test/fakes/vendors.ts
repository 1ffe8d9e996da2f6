/**
 * Local servers that speak the speech vendors' wire protocols, for tests:
 * OpenAI realtime transcription (WebSocket), text-to-speech (streamed
 * HTTP) and chat completions (the auto-responder's endpoint), Deepgram streaming (WebSocket; PCM16 or
 * G.711 mu-law, as the gateway's Deepgram provider sends), ElevenLabs streamed TTS. They check
 * keys and request shapes the way the vendors do, find utterances in the
 * audio they receive by its energy, and answer with scripted transcripts.
 * Speech they "synthesize" is a tone as long as the text, sent in odd-sized
 * chunks so clients must reassemble samples split across chunks.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { decodeG711 } from "../../src/audio/g711.js";

export const GOOD_KEY = "test-key-good";

export interface VendorRequest {
  path: string;
  body?: unknown;
}

/** Energy-based utterance finder: 20 ms blocks above -40 dBFS are speech; 500 ms below ends it. */
export class Utterances {
  private inSpeech = false;
  private quietMs = 0;
  constructor(private readonly onEdge: (edge: "start" | "end") => void) {}

  push(pcm: Int16Array, rate: number): void {
    const block = rate / 50;
    for (let i = 0; i + block <= pcm.length; i += block) {
      let sum = 0;
      for (let j = i; j < i + block; j += 1) sum += pcm[j]! * pcm[j]!;
      const loud = 10 * Math.log10(sum / block / 32768 ** 2) > -40;
      if (loud && !this.inSpeech) {
        this.inSpeech = true;
        this.onEdge("start");
      }
      this.quietMs = loud ? 0 : this.quietMs + 20;
      if (this.inSpeech && this.quietMs >= 500) this.end();
    }
  }

  end(): void {
    if (!this.inSpeech) return;
    this.inSpeech = false;
    this.quietMs = 0;
    this.onEdge("end");
  }
}

export class FakeVendors {
  readonly requests: VendorRequest[] = [];
  /** What the chat endpoint answers, given the messages it was sent. */
  chatReply: (messages: Array<{ role: string; content: string }>) => string = (messages) =>
    JSON.stringify({ spoken: `You said: ${messages.at(-1)?.content ?? ""}` });
  chatDelayMs = 0;
  private lines: string[] = ["hello"];
  private scriptIndex = 0;

  /** Transcripts handed out, one per utterance, in order (cycled); setting it starts from its first line. */
  get script(): string[] {
    return this.lines;
  }

  set script(lines: string[]) {
    this.lines = lines;
    this.scriptIndex = 0;
  }
  private readonly sockets = new Set<WebSocket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeVendors> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const vendors = new FakeVendors(server, (server.address() as AddressInfo).port);
    server.on("request", (req, res) => void vendors.onHttp(req, res));
    const wss = new WebSocketServer({ noServer: true });
    server.on("upgrade", (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://x");
      const ok =
        url.pathname === "/v1/realtime"
          ? req.headers.authorization === `Bearer ${GOOD_KEY}`
          : url.pathname === "/v1/listen" || url.pathname === "/v2/listen"
            ? req.headers.authorization === `Token ${GOOD_KEY}`
            : false;
      if (!ok) {
        const body = JSON.stringify({ error: { message: "Incorrect API key provided" } });
        socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        vendors.sockets.add(ws);
        ws.on("close", () => vendors.sockets.delete(ws));
        vendors.requests.push({ path: `${url.pathname}${url.search}` });
        if (url.pathname === "/v1/realtime") vendors.openAiRealtime(ws);
        else if (url.pathname === "/v2/listen") vendors.flux(ws, url.searchParams);
        else vendors.deepgram(ws, url.searchParams);
      });
    });
    return vendors;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  /** Drops every open WebSocket, as a vendor ending a session does. */
  dropSockets(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  async close(): Promise<void> {
    this.dropSockets();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private nextTranscript(): string {
    return this.lines[this.scriptIndex++ % this.lines.length]!;
  }

  // ------------------------------------------------------------ OpenAI

  private openAiRealtime(ws: WebSocket): void {
    let format = "pcm16";
    let item = 0;
    const utterances = new Utterances((edge) => {
      if (edge === "start") return send({ type: "input_audio_buffer.speech_started", audio_start_ms: 0, item_id: `item_${item}` });
      send({ type: "input_audio_buffer.speech_stopped", item_id: `item_${item}` });
      complete();
    });
    const send = (event: object) => ws.send(JSON.stringify(event));
    const complete = () => {
      const id = `item_${item++}`;
      const text = this.nextTranscript();
      send({ type: "input_audio_buffer.committed", item_id: id });
      const words = text.split(" ");
      for (let i = 0; i < words.length; i += 1) send({ type: "conversation.item.input_audio_transcription.delta", item_id: id, delta: (i ? " " : "") + words[i] });
      send({ type: "conversation.item.input_audio_transcription.completed", item_id: id, transcript: text });
    };
    send({ type: "transcription_session.created", session: {} });
    ws.on("message", (data) => {
      const event = JSON.parse(data.toString()) as { type: string; session?: { input_audio_format?: string }; audio?: string };
      this.requests.push({ path: "/v1/realtime#event", body: event.type === "input_audio_buffer.append" ? { type: event.type } : event });
      if (event.type === "transcription_session.update") {
        format = event.session?.input_audio_format ?? "pcm16";
        send({ type: "transcription_session.updated", session: event.session });
      } else if (event.type === "input_audio_buffer.append") {
        const bytes = Buffer.from(event.audio ?? "", "base64");
        const pcm = format === "g711_ulaw" ? decodeG711("ulaw", bytes) : new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length >> 1);
        utterances.push(pcm, format === "g711_ulaw" ? 8000 : 24000);
      } else if (event.type === "input_audio_buffer.commit") {
        utterances.end();
      } else {
        send({ type: "error", error: { type: "invalid_request_error", code: "unknown_event", message: `unknown event ${event.type}` } });
      }
    });
  }

  // ----------------------------------------------------------- Deepgram

  private deepgram(ws: WebSocket, query: URLSearchParams): void {
    const rate = Number(query.get("sample_rate"));
    const encoding = query.get("encoding");
    if ((encoding !== "linear16" && encoding !== "mulaw") || !rate) {
      ws.close(1008, "encoding and sample_rate are required for raw audio");
      return;
    }
    const pcmOf = (bytes: Buffer) =>
      encoding === "mulaw" ? decodeG711("ulaw", bytes) : new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    let words: string[] = [];
    let heard = 0;
    const results = (text: string, isFinal: boolean, speechFinal: boolean, fromFinalize = false) =>
      ws.send(
        JSON.stringify({
          type: "Results",
          is_final: isFinal,
          speech_final: speechFinal,
          ...(fromFinalize ? { from_finalize: true } : {}),
          channel: { alternatives: [{ transcript: text, confidence: 0.99 }] },
        }),
      );
    const finish = (fromFinalize: boolean) => {
      if (words.length === 0) return;
      // Two final segments, as Deepgram sends for longer speech.
      const half = Math.ceil(words.length / 2);
      results(words.slice(0, half).join(" "), true, false);
      results(words.slice(half).join(" "), true, !fromFinalize, fromFinalize);
      ws.send(JSON.stringify({ type: "UtteranceEnd", last_word_end: 1.0 }));
      words = [];
    };
    const utterances = new Utterances((edge) => {
      if (edge === "start") {
        words = this.nextTranscript().split(" ");
        heard = 0;
        ws.send(JSON.stringify({ type: "SpeechStarted", timestamp: 0 }));
      } else finish(false);
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        const bytes = data as Buffer;
        utterances.push(pcmOf(bytes), rate);
        // An interim result every 10 frames while speech goes on.
        if (words.length > 0 && ++heard % 10 === 0) results(words.slice(0, Math.min(words.length, heard / 10)).join(" "), false, false);
        return;
      }
      const msg = JSON.parse(data.toString()) as { type: string };
      this.requests.push({ path: "/v1/listen#control", body: msg });
      if (msg.type === "Finalize") {
        utterances.end();
        finish(true);
      } else if (msg.type === "CloseStream") {
        utterances.end();
        ws.close(1000);
      }
    });
  }

  /**
   * Deepgram Flux (v2): TurnInfo events. A transcript ending in "and" is not
   * the end of a turn to its model: the turn goes on into the next utterance.
   */
  private flux(ws: WebSocket, query: URLSearchParams): void {
    const rate = Number(query.get("sample_rate"));
    if (query.get("encoding") !== "linear16" || !rate || !query.get("model")?.startsWith("flux")) {
      ws.close(1008, "flux takes linear16 at a sample_rate");
      return;
    }
    let words: string[] = [];
    let inTurn = false;
    let heard = 0;
    const turnInfo = (event: string) => ws.send(JSON.stringify({ type: "TurnInfo", event, turn_index: 0, transcript: words.join(" "), end_of_turn_confidence: 0.9 }));
    const endTurn = () => {
      if (!inTurn) return;
      turnInfo("EndOfTurn");
      inTurn = false;
      words = [];
    };
    const utterances = new Utterances((edge) => {
      if (edge === "start") {
        if (!inTurn) turnInfo("StartOfTurn");
        inTurn = true;
        words.push(...this.nextTranscript().split(" "));
        heard = 0;
      } else if (words.at(-1) !== "and") endTurn();
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        const bytes = data as Buffer;
        utterances.push(new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)), rate);
        if (inTurn && ++heard % 10 === 0) turnInfo("Update");
        return;
      }
      const msg = JSON.parse(data.toString()) as { type: string };
      this.requests.push({ path: "/v2/listen#control", body: msg });
      if (msg.type === "ForceEndTurn") endTurn();
      else if (msg.type === "CloseStream") {
        endTurn();
        ws.close(1000);
      }
    });
  }

  // ---------------------------------------------------------- HTTP TTS

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    this.requests.push({ path: `${url.pathname}${url.search}`, body });
    const refuse = (status: number, payload: object) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(payload));
    };
    if (req.method === "POST" && url.pathname === "/v1/audio/speech") {
      if (req.headers.authorization !== `Bearer ${GOOD_KEY}`) return refuse(401, { error: { message: "Incorrect API key provided" } });
      if (body?.response_format !== "pcm" || typeof body.input !== "string") return refuse(400, { error: { message: "expected input and response_format pcm" } });
      return this.streamTone(res, body.input, 24000);
    }
    if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
      if (req.headers.authorization && req.headers.authorization !== `Bearer ${GOOD_KEY}`) return refuse(401, { error: { message: "Incorrect API key provided" } });
      const messages = body?.messages as Array<{ role: string; content: string }> | undefined;
      if (typeof body?.model !== "string" || !Array.isArray(messages)) return refuse(400, { error: { message: "model and messages are required" } });
      await new Promise((r) => setTimeout(r, this.chatDelayMs));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: this.chatReply(messages) }, finish_reason: "stop" }] }));
      return;
    }
    const eleven = url.pathname.match(/^\/v1\/text-to-speech\/([^/]+)\/stream$/);
    if (req.method === "POST" && eleven) {
      if (req.headers["xi-api-key"] !== GOOD_KEY) return refuse(401, { detail: { status: "invalid_api_key", message: "Invalid API key" } });
      const format = url.searchParams.get("output_format") ?? "";
      const rate = Number(format.replace("pcm_", ""));
      if (!format.startsWith("pcm_") || ![8000, 16000, 22050, 24000, 44100].includes(rate)) return refuse(422, { detail: { message: `bad output_format ${format}` } });
      if (typeof body?.text !== "string") return refuse(422, { detail: { message: "text is required" } });
      return this.streamTone(res, body.text, rate);
    }
    refuse(404, { error: { message: `no route ${req.method} ${url.pathname}` } });
  }

  /** 60 ms of 440 Hz per character, in 1001-byte chunks (samples split across chunks). */
  private async streamTone(res: ServerResponse, text: string, rate: number): Promise<void> {
    const samples = Math.round((text.length * 60 * rate) / 1000);
    const pcm = Int16Array.from({ length: samples }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)));
    const bytes = Buffer.from(pcm.buffer);
    res.writeHead(200, { "content-type": "application/octet-stream" });
    for (let i = 0; i < bytes.length; i += 1001) {
      if (!res.write(bytes.subarray(i, i + 1001))) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  }
}
