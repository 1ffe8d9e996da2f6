/** Audio inside the project is PCM16 mono; codecs live only at the edges. */
export type SampleRate = 8000 | 16000 | 24000;

export interface AudioFrame {
  pcm: Int16Array;
  sampleRate: SampleRate;
}

export const FRAME_MS = 20;

export function samplesPerFrame(sampleRate: SampleRate): number {
  return (sampleRate * FRAME_MS) / 1000;
}

export function silentFrame(sampleRate: SampleRate): AudioFrame {
  return { pcm: new Int16Array(samplesPerFrame(sampleRate)), sampleRate };
}

/** Pieces of PCM joined into one buffer. */
export function concatPcm(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Splits PCM into whole 20 ms frames; a short tail is padded with silence. */
export function toFrames(pcm: Int16Array, sampleRate: SampleRate): AudioFrame[] {
  const n = samplesPerFrame(sampleRate);
  const frames: AudioFrame[] = [];
  for (let i = 0; i < pcm.length; i += n) {
    const chunk = new Int16Array(n);
    chunk.set(pcm.subarray(i, Math.min(i + n, pcm.length)));
    frames.push({ pcm: chunk, sampleRate });
  }
  return frames;
}
