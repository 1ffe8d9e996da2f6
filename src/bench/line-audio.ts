/**
 * What a phone line sends, for the bench's labelled sets: speech laid over
 * faint line noise at 8 kHz, silences and tones between the parts.
 */
import { decodeG711, encodeG711 } from "../audio/g711.js";

export const LINE_RATE = 8000;

/** Through the phone: mu-law at 8 kHz, as every carrier sends it. */
export const throughPhone = (pcm: Int16Array): Int16Array => decodeG711("ulaw", encodeG711("ulaw", pcm));

/** Faint deterministic line noise (about -60 dBFS). */
export function lineNoise(samples: number, seed: number): Int16Array {
  const out = new Int16Array(samples);
  let x = seed;
  for (let i = 0; i < samples; i += 1) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = ((x >> 16) % 61) - 30;
  }
  return out;
}

export function silence(ms: number): Int16Array {
  return new Int16Array((LINE_RATE * ms) / 1000);
}

export function tone(hz: number, ms: number): Int16Array {
  const n = (LINE_RATE * ms) / 1000;
  return Int16Array.from({ length: n }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / LINE_RATE)));
}

/** The parts one after another, over line noise. */
export function onLine(parts: Int16Array[], seed: number): Int16Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = lineNoise(total, seed);
  let at = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i += 1) out[at + i] = Math.max(-32768, Math.min(32767, out[at + i]! + p[i]!));
    at += p.length;
  }
  return out;
}

/** Speech without the silence a synthesizer leaves before and after it (so a pause is exactly as long as asked). */
export function trimSilence(pcm: Int16Array, threshold = 300): Int16Array {
  let start = 0;
  let end = pcm.length;
  while (start < end && Math.abs(pcm[start]!) < threshold) start += 1;
  while (end > start && Math.abs(pcm[end - 1]!) < threshold) end -= 1;
  return pcm.subarray(start, end);
}
