/**
 * Goertzel power of one frequency in a block of PCM16: the cheap way to ask
 * "is this tone present" (DTMF detection, tests of audio paths).
 */
export function goertzelPower(pcm: Int16Array, sampleRate: number, frequency: number): number {
  const k = (2 * Math.cos((2 * Math.PI * frequency) / sampleRate));
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < pcm.length; i += 1) {
    const s0 = pcm[i]! / 32768 + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return power / (pcm.length * pcm.length);
}

/** Share of the block's energy at `frequency` (0..1, about 0.5 for a pure tone). */
export function toneRatio(pcm: Int16Array, sampleRate: number, frequency: number): number {
  let energy = 0;
  for (let i = 0; i < pcm.length; i += 1) energy += (pcm[i]! / 32768) ** 2;
  if (energy === 0) return 0;
  return (goertzelPower(pcm, sampleRate, frequency) * pcm.length) / energy;
}
