/**
 * G.711 mu-law and A-law (ITU-T G.711), table-driven: decode is one lookup
 * per byte, encode one lookup per sample in a 64 Ki-entry table built once.
 */
import { pooledInt16 } from "../util/pool.js";

const BIAS = 0x84;
const CLIP = 32635;

function linearToUlaw(sample: number): number {
  let s = sample;
  const sign = s < 0 ? 0x80 : 0;
  if (s < 0) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent -= 1;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function ulawToLinear(byte: number): number {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

function linearToAlaw(sample: number): number {
  let s = sample;
  const sign = s >= 0 ? 0x80 : 0;
  if (s < 0) s = -s - 1;
  if (s > 32767) s = 32767;
  let out: number;
  if (s < 256) {
    out = s >> 4;
  } else {
    let exponent = 7;
    for (let mask = 0x4000; (s & mask) === 0 && exponent > 1; mask >>= 1) exponent -= 1;
    out = (exponent << 4) | ((s >> (exponent + 3)) & 0x0f);
  }
  return (out | sign) ^ 0x55;
}

function alawToLinear(byte: number): number {
  const a = byte ^ 0x55;
  const exponent = (a >> 4) & 0x07;
  const mantissa = a & 0x0f;
  let magnitude = exponent === 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1);
  if ((a & 0x80) === 0) magnitude = -magnitude;
  return magnitude;
}

const ULAW_DECODE = Int16Array.from({ length: 256 }, (_, b) => ulawToLinear(b));
const ALAW_DECODE = Int16Array.from({ length: 256 }, (_, b) => alawToLinear(b));
let ulawEncode: Uint8Array | undefined;
let alawEncode: Uint8Array | undefined;

function table(fn: (s: number) => number): Uint8Array {
  const t = new Uint8Array(65536);
  for (let i = 0; i < 65536; i += 1) t[i] = fn(i - 32768);
  return t;
}

export type G711Law = "ulaw" | "alaw";

/** Decodes into pooled memory (see util/pool.ts): no backing store per frame. */
export function decodeG711(law: G711Law, bytes: Uint8Array): Int16Array {
  const lut = law === "ulaw" ? ULAW_DECODE : ALAW_DECODE;
  const out = pooledInt16(bytes.length);
  for (let i = 0; i < bytes.length; i += 1) out[i] = lut[bytes[i]!]!;
  return out;
}

/** Encodes `pcm`; into `out` (from `offset`) when given, so a packet is built in one allocation. */
export function encodeG711(law: G711Law, pcm: Int16Array, out: Uint8Array = new Uint8Array(pcm.length), offset = 0): Uint8Array {
  const lut = law === "ulaw" ? (ulawEncode ??= table(linearToUlaw)) : (alawEncode ??= table(linearToAlaw));
  for (let i = 0; i < pcm.length; i += 1) out[offset + i] = lut[pcm[i]! + 32768]!;
  return out;
}
