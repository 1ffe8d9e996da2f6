/**
 * RTP packets (RFC 3550 section 5.1), sans-IO: bytes in, typed packet out,
 * and back. Every length is checked; malformed input raises RtpError with a
 * stable code instead of reading past the buffer.
 */
import { pooledBytes } from "../util/pool.js";

export type RtpErrorCode = "RTP_TOO_SHORT" | "RTP_BAD_VERSION" | "RTP_BAD_LENGTH" | "RTP_BAD_PADDING";

export class RtpError extends Error {
  constructor(readonly code: RtpErrorCode, message: string) {
    super(message);
    this.name = "RtpError";
  }
}

export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrcs: readonly number[];
  /** Header extension (profile + data), if the X bit was set. */
  extension?: { profile: number; data: Uint8Array };
  payload: Uint8Array;
}

const HEADER = 12;
const NO_CSRCS: readonly number[] = Object.freeze([]);

/**
 * Writes a plain RTP header (no CSRCs, no extension) into the first 12 bytes
 * of `out`: the sender's hot path builds header and payload in one buffer.
 */
export function writeRtpHeader(out: Uint8Array, marker: boolean, payloadType: number, sequenceNumber: number, timestamp: number, ssrc: number): void {
  out[0] = 0x80;
  out[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  out[2] = (sequenceNumber >>> 8) & 0xff;
  out[3] = sequenceNumber & 0xff;
  out[4] = (timestamp >>> 24) & 0xff;
  out[5] = (timestamp >>> 16) & 0xff;
  out[6] = (timestamp >>> 8) & 0xff;
  out[7] = timestamp & 0xff;
  out[8] = (ssrc >>> 24) & 0xff;
  out[9] = (ssrc >>> 16) & 0xff;
  out[10] = (ssrc >>> 8) & 0xff;
  out[11] = ssrc & 0xff;
}

export const RTP_HEADER_BYTES = HEADER;


export function parseRtp(buf: Uint8Array): RtpPacket {
  if (buf.length < HEADER) throw new RtpError("RTP_TOO_SHORT", `RTP packet of ${buf.length} bytes is shorter than the 12-byte header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const b0 = buf[0]!;
  const version = b0 >> 6;
  if (version !== 2) throw new RtpError("RTP_BAD_VERSION", `RTP version ${version}, expected 2`);
  const padding = (b0 & 0x20) !== 0;
  const hasExtension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  const b1 = buf[1]!;
  let offset = HEADER + csrcCount * 4;
  if (buf.length < offset) throw new RtpError("RTP_BAD_LENGTH", `RTP header announces ${csrcCount} CSRCs but the packet ends at ${buf.length} bytes`);
  // Almost every packet has none: share one empty list instead of making one per packet.
  const csrcs: readonly number[] = csrcCount === 0 ? NO_CSRCS : Array.from({ length: csrcCount }, (_, i) => view.getUint32(HEADER + i * 4));
  let extension: RtpPacket["extension"];
  if (hasExtension) {
    if (buf.length < offset + 4) throw new RtpError("RTP_BAD_LENGTH", "RTP header extension is cut short");
    const profile = view.getUint16(offset);
    const words = view.getUint16(offset + 2);
    const end = offset + 4 + words * 4;
    if (buf.length < end) throw new RtpError("RTP_BAD_LENGTH", `RTP header extension of ${words * 4} bytes runs past the packet`);
    extension = { profile, data: buf.subarray(offset + 4, end) };
    offset = end;
  }
  let end = buf.length;
  if (padding) {
    const pad = buf[buf.length - 1]!;
    if (pad === 0 || offset + pad > buf.length) throw new RtpError("RTP_BAD_PADDING", `RTP padding of ${pad} bytes does not fit the packet`);
    end -= pad;
  }
  return {
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequenceNumber: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    csrcs,
    ...(extension ? { extension } : {}),
    payload: buf.subarray(offset, end),
  };
}

export function buildRtp(p: Omit<RtpPacket, "csrcs"> & { csrcs?: readonly number[] }): Uint8Array {
  const csrcs = p.csrcs ?? [];
  if (csrcs.length > 15) throw new RtpError("RTP_BAD_LENGTH", `at most 15 CSRCs, got ${csrcs.length}`);
  const extLen = p.extension ? 4 + p.extension.data.length : 0;
  if (p.extension && p.extension.data.length % 4 !== 0) throw new RtpError("RTP_BAD_LENGTH", "RTP header extension length must be a multiple of 4");
  const out = pooledBytes(HEADER + csrcs.length * 4 + extLen + p.payload.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = 0x80 | (p.extension ? 0x10 : 0) | csrcs.length;
  out[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  view.setUint16(2, p.sequenceNumber & 0xffff);
  view.setUint32(4, p.timestamp >>> 0);
  view.setUint32(8, p.ssrc >>> 0);
  let offset = HEADER;
  for (const c of csrcs) {
    view.setUint32(offset, c >>> 0);
    offset += 4;
  }
  if (p.extension) {
    view.setUint16(offset, p.extension.profile);
    view.setUint16(offset + 2, p.extension.data.length / 4);
    out.set(p.extension.data, offset + 4);
    offset += extLen;
  }
  out.set(p.payload, offset);
  return out;
}

/** Static payload types (RFC 3551) and Asterisk's dynamic one for slin16. */
export const PAYLOAD_TYPES = { ulaw: 0, alaw: 8, slin16: 118 } as const;
