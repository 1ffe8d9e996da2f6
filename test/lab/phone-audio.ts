/**
 * The phone's ear for PBX tests: a UDP socket on the port a sipp phone
 * offers in its SDP, collecting the RTP Asterisk sends to that phone.
 */
import { createSocket, type Socket } from "node:dgram";
import { decodeG711 } from "../../src/audio/g711.js";
import { parseRtp } from "../../src/rtp/packet.js";

export class PhoneEar {
  private readonly socket: Socket;
  private chunks: Array<{ at: number; pcm: Int16Array }> = [];
  /** RFC 4733 events heard, one entry per distinct event (by RTP timestamp). */
  private events = new Map<number, number>();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("message", (msg) => {
      const packet = parseRtp(msg);
      if (packet.payloadType === 0) this.chunks.push({ at: performance.now(), pcm: decodeG711("ulaw", packet.payload) });
      else if (packet.payloadType === 101 && packet.payload.length >= 4) this.events.set(packet.timestamp, packet.payload[0]!);
    });
  }

  static async open(port: number): Promise<PhoneEar> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, "127.0.0.1", () => resolve());
    });
    return new PhoneEar(socket);
  }

  get packets(): number {
    return this.chunks.length;
  }

  /** Everything heard so far as one PCM buffer. */
  audio(): Int16Array {
    const total = this.chunks.reduce((n, c) => n + c.pcm.length, 0);
    const out = new Int16Array(total);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c.pcm, offset);
      offset += c.pcm.length;
    }
    return out;
  }

  /** DTMF digits received as telephone-events, in order. */
  dtmf(): string {
    return [...this.events.values()].map((code) => "0123456789*#ABCD"[code] ?? "?").join("");
  }

  close(): void {
    this.socket.close();
  }
}
