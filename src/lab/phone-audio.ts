/**
 * The lab phone's ear and mouth (PBX tests, voicecall lab): a UDP socket on the port a sipp
 * phone offers in its SDP. It collects the RTP Asterisk sends to that phone,
 * with arrival times, and can talk back from the same port (where Asterisk
 * expects the phone's audio), so a test controls exactly when the caller speaks.
 */
import { createSocket, type Socket } from "node:dgram";
import { concatPcm } from "../audio/frame.js";
import { frameDbfs } from "../audio/vad.js";
import { decodeG711, encodeG711 } from "../audio/g711.js";
import { buildRtp, parseRtp } from "../rtp/packet.js";

export class PhoneAudio {
  private readonly socket: Socket;
  private chunks: Array<{ at: number; pcm: Int16Array }> = [];
  /** RFC 4733 events heard, one entry per distinct event (by RTP timestamp). */
  private events = new Map<number, number>();
  /** Where Asterisk sends from: the phone's audio goes back there. */
  private far?: { address: string; port: number };
  private readonly ssrc = (Math.random() * 0xffffffff) >>> 0;
  private seq = 0;
  private closed = false;
  private clockStart?: number;
  /** The RTP timestamp after the last frame or key sent. */
  private nextTimestamp = 0;
  /** When the last frame louder than -40 dBFS went out (the end of what the phone said). */
  lastVoicedAt?: number;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("message", (msg, rinfo) => {
      this.far ??= { address: rinfo.address, port: rinfo.port };
      const packet = parseRtp(msg);
      if (packet.payloadType === 0) this.chunks.push({ at: performance.now(), pcm: decodeG711("ulaw", packet.payload) });
      else if (packet.payloadType === 101 && packet.payload.length >= 4) this.events.set(packet.timestamp, packet.payload[0]!);
    });
  }

  static async open(port: number): Promise<PhoneAudio> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, "127.0.0.1", () => resolve());
    });
    return new PhoneAudio(socket);
  }

  get packets(): number {
    return this.chunks.length;
  }

  /** Arrival time (performance.now()) of the first audio packet: the call is answered and bridged. */
  get firstPacketAt(): number | undefined {
    return this.chunks[0]?.at;
  }

  /** Everything heard so far as one PCM buffer. */
  audio(): Int16Array {
    return concatPcm(this.chunks.map((c) => c.pcm));
  }

  /** Arrival time (performance.now()) of the last 20 ms heard louder than `dbfs`, after `since`. */
  lastLoud(since: number, dbfs = -45): number | undefined {
    let last: number | undefined;
    for (const c of this.chunks) if (c.at >= since && frameDbfs(c.pcm) > dbfs) last = c.at;
    return last;
  }

  /**
   * Where the far end went quiet after `since`: the arrival of the last loud
   * 20 ms before the first `quietMs` without any (what a barge-in stop looks
   * like at the phone, even if the far end talks again later).
   */
  quietAfter(since: number, quietMs = 100, dbfs = -45): number | undefined {
    let last: number | undefined;
    let quietSince: number | undefined;
    for (const c of this.chunks) {
      if (c.at < since) continue;
      if (frameDbfs(c.pcm) > dbfs) {
        last = c.at;
        quietSince = undefined;
      } else {
        quietSince ??= c.at;
        if (c.at - quietSince >= quietMs) return last ?? since;
      }
    }
    return undefined;
  }

  /** Arrival time of the first 20 ms louder than `dbfs`, after `since`. */
  firstLoud(since: number, dbfs = -45): number | undefined {
    return this.chunks.find((c) => c.at >= since && frameDbfs(c.pcm) > dbfs)?.at;
  }

  /** The RTP clock at the start of a talk spurt: the time since the first one, never behind what was sent. */
  private spurtStart(now: number): number {
    this.clockStart ??= now;
    return Math.max(this.nextTimestamp, Math.round(((now - this.clockStart) * 8000) / 1000));
  }

  /**
   * Speaks 8 kHz PCM into the call, one 20 ms packet per 20 ms; resolves with
   * the time (performance.now()) its first frame louder than -40 dBFS went out.
   */
  async say(pcm: Int16Array): Promise<number> {
    const far = this.far;
    if (!far) throw new Error("the phone has heard nothing yet, so it does not know where to talk");
    // One stream for the whole call, as a phone sends: same SSRC, sequence and clock across talk spurts.
    const start = performance.now();
    // Within a talk spurt the clock moves 160 per frame, as a phone's does, whenever the packet leaves: a
    // test process that falls behind sends the late frames together, never with overlapping timestamps.
    const base = this.spurtStart(start);
    let onset: number | undefined;
    for (let i = 0, n = 0; i < pcm.length; i += 160, n += 1) {
      const wait = start + n * 20 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const frame = new Int16Array(160);
      frame.set(pcm.subarray(i, i + 160));
      const payload = encodeG711("ulaw", frame);
      const timestamp = (base + n * 160) >>> 0;
      this.nextTimestamp = base + (n + 1) * 160;
      const packet = buildRtp({ payloadType: 0, marker: n === 0, sequenceNumber: this.seq++ & 0xffff, timestamp, ssrc: this.ssrc, payload });
      this.socket.send(packet, far.port, far.address);
      if (frameDbfs(frame) > -40) {
        onset ??= performance.now();
        this.lastVoicedAt = performance.now();
      }
    }
    return onset ?? performance.now();
  }

  /**
   * Presses `key` as a phone does: RFC 4733 telephone-events (payload type
   * 101, as offered) on the audio stream, 100 ms of tone then three end packets.
   */
  async press(key: string): Promise<void> {
    const far = this.far;
    const event = "0123456789*#ABCD".indexOf(key);
    if (!far) throw new Error("the phone has heard nothing yet, so it does not know where to send keys");
    if (event < 0) throw new Error(`not a key: ${key}`);
    const timestamp = this.spurtStart(performance.now()) >>> 0;
    this.nextTimestamp = timestamp + 800;
    const send = (duration: number, end: boolean, first: boolean) => {
      const payload = Buffer.from([event, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff]);
      this.socket.send(buildRtp({ payloadType: 101, marker: first, sequenceNumber: this.seq++ & 0xffff, timestamp, ssrc: this.ssrc, payload }), far.port, far.address);
    };
    for (let n = 1; n <= 5; n += 1) {
      send(n * 160, false, n === 1);
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let n = 0; n < 3; n += 1) send(800, true, false);
  }

  /** DTMF digits received as telephone-events, in order. */
  dtmf(): string {
    return [...this.events.values()].map((code) => "0123456789*#ABCD"[code] ?? "?").join("");
  }

  /** Stops listening; closing again does nothing. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}
