/**
 * A MediaTransport over RTP/UDP: the thin I/O shell around the sans-IO
 * packet codec and jitter buffer. It sends only to the peer it was given and
 * accepts packets only from that address, dropping anything else. Our sender
 * keeps its own 20 ms clock (the shared pacer) and sends silence when idle,
 * because the far side sends nothing while its caller is silent.
 */
import { createSocket, type Socket } from "node:dgram";
import { randomInt } from "node:crypto";
import { decodeG711, encodeG711 } from "../audio/g711.js";
import { samplesPerFrame, silentFrame, type AudioFrame } from "../audio/frame.js";
import { sharedPacer, type FramePacer } from "../audio/pacer.js";
import { PacedTransport } from "../audio/transport.js";
import { JitterBuffer } from "./jitter.js";
import { pooledBytes } from "../util/pool.js";
import { PAYLOAD_TYPES, RTP_HEADER_BYTES, RtpError, parseRtp, writeRtpHeader } from "./packet.js";

export type RtpCodec = "ulaw" | "alaw" | "slin16";

export interface RtpTransportStats {
  sent: number;
  received: number;
  /** Socket errors such as ECONNREFUSED after the peer went away. */
  errors: number;
  /** Packets from an address other than the peer's. */
  foreign: number;
  malformed: number;
  lost: number;
}

export interface RtpTransportOptions {
  codec: RtpCodec;
  bindHost: string;
  portMin: number;
  portMax: number;
  pacer?: FramePacer;
}

export class RtpUdpTransport extends PacedTransport {
  private readonly socket: Socket;
  private readonly jitter = new JitterBuffer(3);
  private peer: { host: string; port: number } | undefined;
  private seq = randomInt(0, 0x10000);
  private ts = randomInt(0, 0x100000000);
  private readonly ssrc = randomInt(1, 0x100000000);
  private socketErrors = 0;
  /** The encoded silence payload, built once. */
  private silence: Uint8Array | undefined;
  private malformed = 0;
  private foreign = 0;
  private sent = 0;

  private constructor(private readonly codec: RtpCodec, socket: Socket, pacer: FramePacer) {
    super(codec === "slin16" ? 16000 : 8000, pacer);
    this.socket = socket;
    socket.on("message", (msg, rinfo) => this.onPacket(msg, rinfo.address, rinfo.port));
    // A connected UDP socket reports the peer's ICMP "port unreachable" as an
    // error (ECONNREFUSED) once the far side has gone; that is not fatal here.
    socket.on("error", () => {
      this.socketErrors += 1;
    });
  }

  /** Binds a UDP port in [portMin, portMax], starting at a random one. */
  static async open(options: RtpTransportOptions): Promise<RtpUdpTransport> {
    const span = options.portMax - options.portMin + 1;
    const first = randomInt(0, span);
    for (let i = 0; i < span; i += 1) {
      const port = options.portMin + ((first + i) % span);
      const socket = createSocket({ type: options.bindHost.includes(":") ? "udp6" : "udp4" });
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once("error", reject);
          socket.bind(port, options.bindHost, () => {
            socket.off("error", reject);
            resolve();
          });
        });
        return new RtpUdpTransport(options.codec, socket, options.pacer ?? sharedPacer);
      } catch (err) {
        socket.close();
        if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
      }
    }
    throw new Error(`no free UDP port in ${options.portMin}-${options.portMax} on ${options.bindHost}`);
  }

  get localPort(): number {
    return this.socket.address().port;
  }

  /**
   * Where to send, and the only source accepted; starts the 20 ms clock.
   * The socket is connected, so the kernel drops other sources too and each
   * send skips the address lookup.
   */
  async connect(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once("error", reject);
      this.socket.connect(port, host, () => {
        this.socket.off("error", reject);
        resolve();
      });
    });
    this.peer = { host, port };
    this.startClock();
  }

  get stats(): RtpTransportStats {
    return { sent: this.sent, received: this.jitter.stats.received, errors: this.socketErrors, foreign: this.foreign, malformed: this.malformed, lost: this.jitter.stats.lost };
  }

  protected send(frame: AudioFrame | undefined): void {
    // Header and payload in one pooled buffer (this runs 50 times a second
    // for every call); every byte of it is written below.
    const packet = pooledBytes(RTP_HEADER_BYTES + (frame ? this.payloadBytes(frame.pcm.length) : (this.silence ??= this.encode(silentFrame(this.sampleRate).pcm)).length));
    writeRtpHeader(packet, this.sent === 0, PAYLOAD_TYPES[this.codec], this.seq, this.ts, this.ssrc);
    if (frame) this.encodeInto(frame.pcm, packet, RTP_HEADER_BYTES);
    else packet.set(this.silence!, RTP_HEADER_BYTES);
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + samplesPerFrame(this.sampleRate)) >>> 0;
    this.sent += 1;
    this.socket.send(packet);
  }

  protected override beforeClose(): void {
    for (const p of this.jitter.flush()) this.received(this.decode(p.payload));
  }

  protected release(): void {
    this.socket.close();
  }

  private onPacket(msg: Buffer, host: string, port: number): void {
    const peer = this.peer;
    // The connected socket already filters by source; this also covers the time before connect.
    if (!peer || host !== peer.host || port !== peer.port) {
      this.foreign += 1;
      return;
    }
    let packet;
    try {
      packet = parseRtp(msg);
    } catch (err) {
      if (!(err instanceof RtpError)) throw err;
      this.malformed += 1;
      return;
    }
    if (packet.payloadType !== PAYLOAD_TYPES[this.codec]) return;
    for (const p of this.jitter.push(packet)) this.received(this.decode(p.payload));
  }

  private decode(payload: Uint8Array): AudioFrame {
    if (this.codec === "slin16") {
      const pcm = new Int16Array(payload.length >> 1);
      const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      for (let i = 0; i < pcm.length; i += 1) pcm[i] = view.getInt16(i * 2, false);
      return { pcm, sampleRate: 16000 };
    }
    return { pcm: decodeG711(this.codec, payload), sampleRate: 8000 };
  }

  private payloadBytes(samples: number): number {
    return this.codec === "slin16" ? samples * 2 : samples;
  }

  private encode(pcm: Int16Array): Uint8Array {
    return this.encodeInto(pcm, new Uint8Array(this.payloadBytes(pcm.length)), 0);
  }

  /** G.711, or slin16 in network byte order, written into `out` at `offset`. */
  private encodeInto(pcm: Int16Array, out: Uint8Array, offset: number): Uint8Array {
    if (this.codec !== "slin16") return encodeG711(this.codec, pcm, out, offset);
    for (let i = 0; i < pcm.length; i += 1) {
      out[offset + i * 2] = (pcm[i]! >> 8) & 0xff;
      out[offset + i * 2 + 1] = pcm[i]! & 0xff;
    }
    return out;
  }
}
