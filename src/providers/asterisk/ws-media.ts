/**
 * externalMedia over a WebSocket (Asterisk's chan_websocket): Asterisk
 * creates the channel and waits at /media/<connection id> on its HTTP port;
 * we connect there with the ARI credentials. Audio is raw frames both ways
 * (G.711, or slin16 in the host's byte order, little-endian), control is
 * text ("MEDIA_START …" from Asterisk, "FLUSH_MEDIA" from us to drop what
 * Asterisk still holds on barge-in). Unlike RTP, it carries wideband both
 * ways: Asterisk 22 ignores slin16 it receives over externalMedia RTP.
 */
import WebSocket from "ws";
import { decodeG711, encodeG711 } from "../../audio/g711.js";
import { samplesPerFrame, silentFrame, type AudioFrame } from "../../audio/frame.js";
import { sharedPacer, type FramePacer } from "../../audio/pacer.js";
import { PacedTransport } from "../../audio/transport.js";

export type WsMediaCodec = "ulaw" | "alaw" | "slin16";

export class WebSocketMedia extends PacedTransport {
  private pending = new Int16Array(0);
  private silence: Buffer | undefined;

  private constructor(
    private readonly ws: WebSocket,
    private readonly codec: WsMediaCodec,
    pacer: FramePacer,
  ) {
    super(codec === "slin16" ? 16000 : 8000, pacer);
    ws.on("message", (data, isBinary) => {
      if (isBinary) this.onAudio(data as Buffer);
    });
    // Asterisk closes the socket when the channel goes away.
    ws.on("close", () => this.close());
    ws.on("error", () => this.close());
    this.startClock();
  }

  /** Connects to the media socket of the externalMedia channel `connectionId`. */
  static async connect(options: { url: string; authorization: string; codec: WsMediaCodec; timeoutMs?: number; pacer?: FramePacer }): Promise<WebSocketMedia> {
    const ws = new WebSocket(options.url, ["media"], { headers: { authorization: options.authorization }, handshakeTimeout: options.timeoutMs ?? 5000 });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", (err) => reject(new Error(`media WebSocket ${options.url}: ${err.message}`)));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`media WebSocket ${options.url}: HTTP ${res.statusCode}`)));
    });
    return new WebSocketMedia(ws, options.codec, options.pacer ?? sharedPacer);
  }

  override clear(): void {
    super.clear();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send("FLUSH_MEDIA");
  }

  protected send(frame: AudioFrame | undefined): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(frame ? this.encode(frame.pcm) : (this.silence ??= this.encode(silentFrame(this.sampleRate).pcm)));
  }

  protected release(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }

  /** Asterisk's frames need not be 20 ms each: they are re-cut into frames. */
  private onAudio(bytes: Buffer): void {
    const pcm = this.decode(bytes);
    const joined = new Int16Array(this.pending.length + pcm.length);
    joined.set(this.pending);
    joined.set(pcm, this.pending.length);
    const n = samplesPerFrame(this.sampleRate);
    let offset = 0;
    for (; offset + n <= joined.length; offset += n) this.received({ pcm: joined.slice(offset, offset + n), sampleRate: this.sampleRate });
    this.pending = joined.slice(offset);
  }

  private decode(bytes: Buffer): Int16Array {
    if (this.codec !== "slin16") return decodeG711(this.codec, bytes);
    const pcm = new Int16Array(bytes.length >> 1);
    for (let i = 0; i < pcm.length; i += 1) pcm[i] = bytes.readInt16LE(i * 2);
    return pcm;
  }

  private encode(pcm: Int16Array): Buffer {
    if (this.codec !== "slin16") return Buffer.from(encodeG711(this.codec, pcm));
    const out = Buffer.alloc(pcm.length * 2);
    for (let i = 0; i < pcm.length; i += 1) out.writeInt16LE(pcm[i]!, i * 2);
    return out;
  }
}
