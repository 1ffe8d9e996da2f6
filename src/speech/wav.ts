/** Minimal RIFF/WAVE reading and writing for PCM16 (what flite writes, lab and call recordings). */

/** Every channel of a PCM16 WAV, de-interleaved. */
export function readWav(buf: Uint8Array): { channels: Int16Array[]; sampleRate: number } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = (o: number) => String.fromCharCode(buf[o]!, buf[o + 1]!, buf[o + 2]!, buf[o + 3]!);
  if (buf.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("not a RIFF/WAVE file");
  let offset = 12;
  let sampleRate = 0;
  let bits = 0;
  let channels = 0;
  let format = 0;
  while (offset + 8 <= buf.length) {
    const id = tag(offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === "fmt ") {
      format = view.getUint16(body, true);
      channels = view.getUint16(body + 2, true);
      sampleRate = view.getUint32(body + 4, true);
      bits = view.getUint16(body + 14, true);
    } else if (id === "data") {
      if (format !== 1 || bits !== 16 || channels < 1) throw new Error(`WAV is not PCM16 (format ${format}, ${bits} bit, ${channels} ch)`);
      const end = Math.min(buf.length, body + size);
      const frames = Math.floor((end - body) / (2 * channels));
      const out = Array.from({ length: channels }, () => new Int16Array(frames));
      for (let i = 0; i < frames; i += 1) for (let c = 0; c < channels; c += 1) out[c]![i] = view.getInt16(body + (i * channels + c) * 2, true);
      return { channels: out, sampleRate };
    }
    offset = body + size + (size & 1);
  }
  throw new Error("WAV has no data chunk");
}

/** A PCM16 mono WAV's samples. */
export function readWavPcm16(buf: Uint8Array): { pcm: Int16Array; sampleRate: number } {
  const { channels, sampleRate } = readWav(buf);
  if (channels.length !== 1) throw new Error(`WAV is not PCM16 mono (${channels.length} ch)`);
  return { pcm: channels[0]!, sampleRate };
}

/** How long a PCM16 WAV (any channels) plays, in ms; nothing when it cannot be read as one. */
export function wavDurationMs(buf: Uint8Array): number | undefined {
  try {
    const { channels, sampleRate } = readWav(buf);
    return sampleRate > 0 ? Math.round((channels[0]!.length / sampleRate) * 1000) : undefined;
  } catch {
    return undefined;
  }
}

/** A canonical 44-byte PCM16 WAV header for `dataBytes` of samples. */
export function wavHeader(sampleRate: number, channels: number, dataBytes: number): Buffer {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write("WAVEfmt ", 8, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * channels * 2, 28);
  header.writeUInt16LE(channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

/** PCM16 mono as a RIFF/WAVE file. */
export function writeWavPcm16(pcm: Int16Array, sampleRate: number): Buffer {
  const out = Buffer.alloc(44 + pcm.length * 2);
  wavHeader(sampleRate, 1, pcm.length * 2).copy(out, 0);
  for (let i = 0; i < pcm.length; i += 1) out.writeInt16LE(pcm[i]!, 44 + i * 2);
  return out;
}
