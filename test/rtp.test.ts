import { describe, expect, it } from "vitest";
import { decodeG711, encodeG711 } from "../src/audio/g711.js";
import { JitterBuffer, seqDistance } from "../src/rtp/jitter.js";
import { RtpError, buildRtp, parseRtp, type RtpPacket } from "../src/rtp/packet.js";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));

describe("RTP packets", () => {
  it("reads every header field of a plain packet", () => {
    const p = parseRtp(hex("80 00 3039 000003e8 deadbeef ffff7f00"));
    expect(p).toEqual({ marker: false, payloadType: 0, sequenceNumber: 12345, timestamp: 1000, ssrc: 0xdeadbeef, csrcs: [], payload: hex("ffff7f00") });
  });

  it("reads marker, CSRCs, a header extension and padding", () => {
    // V=2 P=1 X=1 CC=2 | M=1 PT=8 | seq 65535 | ts 2^32-1 | ssrc 1 | 2 CSRCs | ext profile 0xbede, 1 word | payload 3 bytes | 2 bytes padding
    const p = parseRtp(hex("b2 88 ffff ffffffff 00000001 00000002 00000003 bede0001 11223344 aabbcc 0002"));
    expect(p.marker).toBe(true);
    expect(p.payloadType).toBe(8);
    expect(p.sequenceNumber).toBe(65535);
    expect(p.timestamp).toBe(0xffffffff);
    expect(p.csrcs).toEqual([2, 3]);
    expect(p.extension).toEqual({ profile: 0xbede, data: hex("11223344") });
    expect(p.payload).toEqual(hex("aabbcc"));
  });

  it.each([
    ["shorter than a header", "80 00 3039", "RTP_TOO_SHORT"],
    ["version 1", "40 00 3039 000003e8 deadbeef", "RTP_BAD_VERSION"],
    ["CSRCs past the end", "83 00 3039 000003e8 deadbeef 00000001", "RTP_BAD_LENGTH"],
    ["extension past the end", "90 00 3039 000003e8 deadbeef bede0004 0000", "RTP_BAD_LENGTH"],
    ["padding larger than the packet", "a0 00 3039 000003e8 deadbeef 09", "RTP_BAD_PADDING"],
    ["zero padding length", "a0 00 3039 000003e8 deadbeef 00", "RTP_BAD_PADDING"],
  ])("rejects a packet %s with a typed error", (_what, bytes, code) => {
    try {
      parseRtp(hex(bytes));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RtpError);
      expect((err as RtpError).code).toBe(code);
    }
  });

  it("round-trips through build and parse", () => {
    const packet: RtpPacket = {
      marker: true,
      payloadType: 118,
      sequenceNumber: 7,
      timestamp: 123456789,
      ssrc: 42,
      csrcs: [9],
      extension: { profile: 0x1000, data: hex("01020304") },
      payload: hex("0102030405"),
    };
    expect(parseRtp(buildRtp(packet))).toEqual(packet);
    expect(Buffer.from(buildRtp({ marker: false, payloadType: 0, sequenceNumber: 12345, timestamp: 1000, ssrc: 0xdeadbeef, payload: hex("ff") })).toString("hex")).toBe(
      "80003039000003e8deadbeefff",
    );
  });
});

describe("G.711", () => {
  it("matches the standard's reference points", () => {
    expect([...encodeG711("ulaw", Int16Array.from([0, -1, 32767, -32768]))]).toEqual([0xff, 0x7f, 0x80, 0x00]);
    expect([...decodeG711("ulaw", Uint8Array.from([0xff, 0x80, 0x00]))]).toEqual([0, 32124, -32124]);
    expect([...encodeG711("alaw", Int16Array.from([0, 32767, -32768]))]).toEqual([0xd5, 0xaa, 0x2a]);
    expect([...decodeG711("alaw", Uint8Array.from([0xd5, 0xaa, 0x2a]))]).toEqual([8, 32256, -32256]);
  });

  it.each(["ulaw", "alaw"] as const)("%s keeps a signal within its quantisation error", (law) => {
    const pcm = Int16Array.from({ length: 800 }, (_, i) => Math.round(12000 * Math.sin((2 * Math.PI * 440 * i) / 8000)));
    const back = decodeG711(law, encodeG711(law, pcm));
    let err = 0;
    let sig = 0;
    for (let i = 0; i < pcm.length; i += 1) {
      err += (pcm[i]! - back[i]!) ** 2;
      sig += pcm[i]! ** 2;
    }
    // G.711 gives roughly 35-38 dB SNR on a loud sine.
    expect(10 * Math.log10(sig / err)).toBeGreaterThan(30);
  });
});

describe("jitter buffer", () => {
  const pkt = (seq: number): RtpPacket => ({ marker: false, payloadType: 0, sequenceNumber: seq & 0xffff, timestamp: seq * 160, ssrc: 1, csrcs: [], payload: Uint8Array.of(seq & 0xff) });
  const seqs = (ps: RtpPacket[]) => ps.map((p) => p.sequenceNumber);

  it("puts reordered packets back in order", () => {
    const jb = new JitterBuffer(3);
    expect(seqs(jb.push(pkt(10)))).toEqual([10]);
    expect(seqs(jb.push(pkt(12)))).toEqual([]);
    expect(seqs(jb.push(pkt(11)))).toEqual([11, 12]);
  });

  it("skips a lost packet once depth newer ones have arrived", () => {
    const jb = new JitterBuffer(3);
    jb.push(pkt(1));
    expect(seqs(jb.push(pkt(3)))).toEqual([]);
    expect(seqs(jb.push(pkt(4)))).toEqual([]);
    expect(seqs(jb.push(pkt(5)))).toEqual([3, 4, 5]);
    expect(jb.stats.lost).toBe(1);
    // The lost one arriving late is dropped, as is a duplicate.
    expect(jb.push(pkt(2))).toEqual([]);
    jb.push(pkt(7));
    expect(jb.push(pkt(7))).toEqual([]);
    expect(jb.stats).toMatchObject({ late: 1, duplicate: 1 });
  });

  it("starts over for a new source: another SSRC at once, numbering that restarted far behind once two packets follow on", () => {
    const jb = new JitterBuffer(3);
    jb.push(pkt(30_000));
    jb.push(pkt(30_001));
    // Far behind, once: a stray packet, dropped as late.
    expect(jb.push(pkt(500))).toEqual([]);
    expect(seqs(jb.push(pkt(30_002)))).toEqual([30_002]);
    // Far behind, and the next one follows on: the sender's numbering started over.
    expect(jb.push(pkt(1000))).toEqual([]);
    expect(seqs(jb.push(pkt(1001)))).toEqual([1001]);
    expect(seqs(jb.push(pkt(1002)))).toEqual([1002]);
    // Another SSRC: its first packet is played at once, whatever its number.
    expect(seqs(jb.push({ ...pkt(7), ssrc: 2 }))).toEqual([7]);
    expect(seqs(jb.push({ ...pkt(8), ssrc: 2 }))).toEqual([8]);
    // A little behind is still a late packet.
    expect(jb.push({ ...pkt(3), ssrc: 2 })).toEqual([]);
  });

  it("crosses the 16-bit sequence wrap", () => {
    const jb = new JitterBuffer(3);
    expect(seqs(jb.push(pkt(65534)))).toEqual([65534]);
    expect(seqs(jb.push(pkt(0)))).toEqual([]);
    expect(seqs(jb.push(pkt(65535)))).toEqual([65535, 0]);
    expect(seqDistance(65535, 0)).toBe(1);
    expect(seqDistance(0, 65535)).toBe(-1);
  });
});
