/**
 * A small reordering jitter buffer, sans-IO. Packets go in as they arrive;
 * `push` returns those now due in sequence order. A gap is waited for until
 * `depth` newer packets have arrived, then skipped (counted as lost).
 * Duplicates and packets older than the playout point are dropped. A new
 * source starts the buffer over: another SSRC at once, and numbering that
 * jumped back further than any reordering goes (MAX_MISORDER) once two
 * packets in a row follow on from there (RFC 3550 A.1); without that, a
 * sender whose numbering restarted behind ours would be dropped as late
 * until its numbers caught up (up to 65,536 packets, 22 minutes of audio).
 */
import type { RtpPacket } from "./packet.js";

export interface JitterStats {
  received: number;
  lost: number;
  late: number;
  duplicate: number;
}

/** Further behind the playout point than this is not a late packet but numbering that started over. */
const MAX_MISORDER = 100;

export class JitterBuffer {
  private readonly held = new Map<number, RtpPacket>();
  private next: number | undefined;
  private ssrc: number | undefined;
  /** After a packet far behind: the number that, arriving next, shows a new numbering. */
  private restartAt: number | undefined;
  readonly stats: JitterStats = { received: 0, lost: 0, late: 0, duplicate: 0 };

  constructor(private readonly depth = 3) {}

  push(packet: RtpPacket): RtpPacket[] {
    this.stats.received += 1;
    const seq = packet.sequenceNumber;
    if (this.ssrc !== undefined && packet.ssrc !== this.ssrc) return this.startOver(packet);
    this.ssrc = packet.ssrc;
    if (this.next === undefined) this.next = seq;
    const ahead = seqDistance(this.next, seq);
    if (ahead < 0) {
      if (-ahead > MAX_MISORDER) {
        if (seq === this.restartAt) return this.startOver(packet);
        this.restartAt = (seq + 1) & 0xffff;
      }
      this.stats.late += 1;
      return [];
    }
    this.restartAt = undefined;
    // The usual case, in order with nothing held: no map traffic (this runs for every packet of every call).
    if (ahead === 0 && this.held.size === 0) {
      this.next = (seq + 1) & 0xffff;
      return [packet];
    }
    if (this.held.has(seq)) {
      this.stats.duplicate += 1;
      return [];
    }
    this.held.set(seq, packet);
    return this.drain();
  }

  /** A new source from `packet` on: what the old one left is played out first. */
  private startOver(packet: RtpPacket): RtpPacket[] {
    const left = this.flush();
    this.ssrc = packet.ssrc;
    this.next = (packet.sequenceNumber + 1) & 0xffff;
    this.restartAt = undefined;
    return [...left, packet];
  }

  /** Everything still held, in order (end of stream). */
  flush(): RtpPacket[] {
    const out: RtpPacket[] = [];
    while (this.held.size > 0 && this.next !== undefined) {
      const p = this.held.get(this.next);
      if (p) {
        this.held.delete(this.next);
        out.push(p);
      } else {
        this.stats.lost += 1;
      }
      this.next = (this.next + 1) & 0xffff;
    }
    return out;
  }

  private drain(): RtpPacket[] {
    const out: RtpPacket[] = [];
    for (;;) {
      const next = this.next!;
      const p = this.held.get(next);
      if (p) {
        this.held.delete(next);
        out.push(p);
        this.next = (next + 1) & 0xffff;
        continue;
      }
      if (this.held.size >= this.depth) {
        this.stats.lost += 1;
        this.next = (next + 1) & 0xffff;
        continue;
      }
      return out;
    }
  }
}

/** Signed distance from a to b in 16-bit sequence space (RFC 3550 A.1). */
export function seqDistance(a: number, b: number): number {
  const d = (b - a) & 0xffff;
  return d >= 0x8000 ? d - 0x10000 : d;
}
