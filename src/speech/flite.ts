/**
 * Offline text-to-speech with Debian's flite. Sentence by sentence: the first
 * sentence plays while the next is synthesized. flite writes to a temp file,
 * because writing to a pipe under Node's spawn fails (stdout is a socket).
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toFrames, type SampleRate } from "../audio/frame.js";
import { Resampler } from "../audio/resample.js";
import { SpeechError, sentences, type SpokenFrame, type SynthesizeOptions, type Synthesizer } from "./types.js";
import { readWavPcm16 } from "./wav.js";

export interface FliteOptions {
  /** flite voice: rms (default), awb, slt, kal16, kal. */
  voice?: string;
  binary?: string;
}

export class FliteSynthesizer implements Synthesizer {
  readonly id = "flite";
  private readonly voice: string;
  private readonly binary: string;

  constructor(options: FliteOptions = {}) {
    this.voice = options.voice ?? "rms";
    this.binary = options.binary ?? "flite";
    const probe = spawnSync(this.binary, ["-lv"], { encoding: "utf8" });
    if (probe.error || probe.status !== 0) {
      throw new SpeechError("SPEECH_UNAVAILABLE", `flite is not installed (apt-get install flite): ${probe.error?.message ?? probe.stderr}`);
    }
    if (!probe.stdout.split(/\s+/).includes(this.voice)) {
      throw new SpeechError("SPEECH_UNAVAILABLE", `flite has no voice "${this.voice}" (it has: ${probe.stdout.replace("Voices available:", "").trim()})`);
    }
  }

  async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    const parts = sentences(text);
    if (parts.length === 0) return;
    const dir = mkdtempSync(join(tmpdir(), "voicecall-flite-"));
    let resampler: Resampler | undefined;
    // Stops the sentence being rendered ahead when the reader stops early (a hang-up, not only an abort).
    const own = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, own.signal]) : own.signal;
    let pending: Promise<{ pcm: Int16Array; sampleRate: number }> | undefined;
    try {
      pending = this.render(parts[0]!, join(dir, "0.wav"), signal);
      for (let i = 0; i < parts.length; i += 1) {
        const wav = await pending;
        if (options.signal?.aborted) return;
        if (i + 1 < parts.length) pending = this.render(parts[i + 1]!, join(dir, `${i + 1}.wav`), signal);
        let pcm = wav.pcm;
        if (wav.sampleRate !== options.sampleRate) {
          resampler ??= await Resampler.create(wav.sampleRate, options.sampleRate);
          pcm = resampler.process(pcm);
        }
        const frames: SpokenFrame[] = toFrames(pcm, options.sampleRate as SampleRate);
        if (frames.length > 0) frames[frames.length - 1]!.completes = parts[i];
        for (const frame of frames) {
          if (options.signal?.aborted) return;
          yield frame;
        }
      }
    } finally {
      own.abort();
      // Its outcome no longer matters; it must not become an unhandled rejection.
      pending?.catch(() => undefined);
      resampler?.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private render(sentence: string, out: string, signal?: AbortSignal): Promise<{ pcm: Int16Array; sampleRate: number }> {
    return new Promise((resolve, reject) => {
      execFile(this.binary, ["-voice", this.voice, "-t", sentence, "-o", out], { signal, timeout: 20_000 }, (err) => {
        if (err) {
          if (signal?.aborted) return resolve({ pcm: new Int16Array(0), sampleRate: 16000 });
          return reject(new SpeechError("SPEECH_FAILED", `flite failed: ${err.message}`));
        }
        try {
          resolve(readWavPcm16(readFileSync(out)));
        } catch (e) {
          reject(new SpeechError("SPEECH_FAILED", `flite wrote an unreadable WAV: ${(e as Error).message}`));
        }
      });
    });
  }
}
