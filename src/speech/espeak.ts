/**
 * Offline text-to-speech with Debian's espeak-ng: it streams (first audio in
 * about 12 ms) and speaks 100+ languages, but it is far less intelligible
 * over an 8 kHz phone line than flite (see README), so it is an option, not
 * the default. It writes a WAV stream to stdout (22.05 kHz PCM16).
 */
import { spawn, spawnSync } from "node:child_process";
import type { SampleRate } from "../audio/frame.js";
import { PcmFramer, sentenceFrames } from "./cloud.js";
import { SpeechError, sentences, type SpokenFrame, type SynthesizeOptions, type Synthesizer } from "./types.js";

export interface EspeakOptions {
  /** espeak-ng voice, e.g. "en-us", "de", "fr". */
  voice?: string;
  /** Words per minute (espeak-ng's default is 175). */
  speed?: number;
  binary?: string;
}

const WAV_HEADER = 44;

export class EspeakSynthesizer implements Synthesizer {
  readonly id = "espeak-ng";
  private readonly voice: string;
  private readonly binary: string;

  constructor(private readonly options: EspeakOptions = {}) {
    this.voice = options.voice ?? "en-us";
    this.binary = options.binary ?? "espeak-ng";
    const probe = spawnSync(this.binary, ["--voices"], { encoding: "utf8" });
    if (probe.error || probe.status !== 0) {
      throw new SpeechError("SPEECH_UNAVAILABLE", `espeak-ng is not installed (apt-get install espeak-ng): ${probe.error?.message ?? probe.stderr}`);
    }
    const known = probe.stdout.split("\n").slice(1).flatMap((line) => line.trim().split(/\s+/).slice(1, 2));
    if (!known.includes(this.voice)) throw new SpeechError("SPEECH_UNAVAILABLE", `espeak-ng has no voice "${this.voice}"`);
  }

  async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    for (const sentence of sentences(text)) {
      if (options.signal?.aborted) return;
      yield* this.sentence(sentence, options);
    }
  }

  private async *sentence(sentence: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    const args = ["--stdout", "-v", this.voice, ...(this.options.speed ? ["-s", String(this.options.speed)] : []), "--", sentence];
    const child = spawn(this.binary, args, { stdio: ["ignore", "pipe", "pipe"], signal: options.signal });
    child.on("error", () => undefined); // an abort kills it; failures show as a missing header below
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    let framer: PcmFramer | undefined;
    try {
      const chunks = (child.stdout as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      let header: Buffer = Buffer.alloc(0);
      while (header.length < WAV_HEADER) {
        const next = await chunks.next();
        if (next.done) break;
        header = Buffer.concat([header, next.value]);
      }
      if (options.signal?.aborted) return;
      if (header.length < WAV_HEADER || header.toString("ascii", 0, 4) !== "RIFF") {
        throw new SpeechError("SPEECH_FAILED", `espeak-ng produced no audio${stderr ? `: ${stderr.trim()}` : ""}`);
      }
      framer = await PcmFramer.create(header.readUInt32LE(24), options.sampleRate as SampleRate);
      const body = async function* () {
        yield header.subarray(WAV_HEADER);
        for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
      };
      yield* sentenceFrames(body(), framer, sentence, options.signal);
    } catch (err) {
      if (options.signal?.aborted) return;
      throw err;
    } finally {
      framer?.destroy();
      if (child.exitCode === null) child.kill();
    }
  }
}
