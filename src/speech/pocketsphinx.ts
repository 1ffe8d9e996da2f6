/**
 * Offline speech recognition with Debian's pocketsphinx (libpocketsphinx3 +
 * pocketsphinx-en-us), called through koffi. It streams: partial results
 * while the caller speaks, a final one when its own endpointer hears the
 * utterance end. Phone audio (8 kHz) is resampled to the model's 16 kHz.
 * Accuracy on open conversation is modest (see README); grammar mode and
 * cloud recognition are the better choices where they fit.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import type { AudioFrame } from "../audio/frame.js";
import { Resampler } from "../audio/resample.js";
import { AsyncQueue } from "../util/async-queue.js";
import { SpeechError, type TranscriptEvent, type Transcriber, type TranscriberStream } from "./types.js";

const MODEL_DIR = "/usr/share/pocketsphinx/model/en-us";
const MODEL_RATE = 16000;
/**
 * Cepstral means of phone audio (8 kHz, upsampled), measured on flite speech
 * sent through the 8 kHz path. The stock model starts its live normalisation from
 * wideband means and then misreads short phone utterances entirely; its
 * feat.params overrides the command line, so phone streams use a copy of the
 * model whose feat.params carries these values.
 */
const PHONE_CMNINIT = "42.9,31.9,-26.4,49.7,-12.5,3.2,21.7,-31.2,4.2,-12.3,2.6,17.5,-13.0";
/** Decode in 100 ms chunks: fewer calls into the library, same latency class. */
const CHUNK_SAMPLES = MODEL_RATE / 10;

interface PsLib {
  ps_args: () => unknown;
  cmd_ln_parse_r: (inout: unknown, defn: unknown, argc: number, argv: string[], strict: number) => unknown;
  ps_init: (config: unknown) => unknown;
  ps_start_utt: (ps: unknown) => number;
  ps_end_utt: (ps: unknown) => number;
  ps_process_raw: (ps: unknown, data: Int16Array, n: number, noSearch: number, fullUtt: number) => number;
  ps_get_in_speech: (ps: unknown) => number;
  ps_get_hyp: (ps: unknown, score: null) => string | null;
  ps_free: (ps: unknown) => number;
}

let lib: PsLib | undefined;

function load(): PsLib {
  if (lib) return lib;
  let base;
  let ps;
  try {
    // Loaded on first use, so a service that never recognises speech never loads the FFI.
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    base = koffi.load("libsphinxbase.so.3");
    ps = koffi.load("libpocketsphinx.so.3");
  } catch (err) {
    throw new SpeechError("SPEECH_UNAVAILABLE", `pocketsphinx is not installed (apt-get install libpocketsphinx3 pocketsphinx-en-us): ${(err as Error).message}`);
  }
  lib = {
    ps_args: ps.func("void *ps_args()"),
    cmd_ln_parse_r: base.func("void *cmd_ln_parse_r(void *inout, void *defn, int argc, const char **argv, int strict)"),
    ps_init: ps.func("void *ps_init(void *config)"),
    ps_start_utt: ps.func("int ps_start_utt(void *ps)"),
    ps_end_utt: ps.func("int ps_end_utt(void *ps)"),
    ps_process_raw: ps.func("int ps_process_raw(void *ps, const int16_t *data, size_t n, int no_search, int full_utt)"),
    ps_get_in_speech: ps.func("uint8_t ps_get_in_speech(void *ps)"),
    ps_get_hyp: ps.func("const char *ps_get_hyp(void *ps, void *score)"),
    ps_free: ps.func("int ps_free(void *ps)"),
  } as unknown as PsLib;
  return lib;
}

export interface PocketsphinxOptions {
  modelDir?: string;
  /** A JSGF grammar (digits, yes/no, menu choices) instead of the open language model. */
  jsgf?: string;
}

export class PocketsphinxTranscriber implements Transcriber {
  readonly id = "pocketsphinx";
  private readonly dir: string;

  constructor(private readonly options: PocketsphinxOptions = {}) {
    this.dir = options.modelDir ?? MODEL_DIR;
    if (!existsSync(join(this.dir, "en-us", "feat.params"))) {
      throw new SpeechError("SPEECH_UNAVAILABLE", `no pocketsphinx model in ${this.dir} (apt-get install pocketsphinx-en-us)`);
    }
    load();
  }

  async stream(options: { sampleRate: number }): Promise<TranscriberStream> {
    const phone = options.sampleRate < MODEL_RATE;
    const resampler = phone ? await Resampler.create(options.sampleRate, MODEL_RATE) : undefined;
    const args = [
      "-hmm", phone ? phoneModel(this.dir) : join(this.dir, "en-us"),
      "-dict", join(this.dir, "cmudict-en-us.dict"),
      ...(this.options.jsgf ? ["-jsgf", this.options.jsgf] : ["-lm", join(this.dir, "en-us.lm.bin")]),
      "-samprate", String(MODEL_RATE),
      // Fast settings measured on phone speech: same accuracy class at a fraction of the time.
      "-fwdflat", "no", "-bestpath", "yes", "-maxhmmpf", "5000", "-maxwpf", "10", "-pl_window", "3",
      "-logfn", "/dev/null",
    ];
    const ps = load();
    const config = ps.cmd_ln_parse_r(null, ps.ps_args(), args.length, args, 1);
    if (!config) throw new SpeechError("SPEECH_FAILED", "pocketsphinx rejected its configuration");
    const decoder = ps.ps_init(config);
    if (!decoder) throw new SpeechError("SPEECH_FAILED", "pocketsphinx could not load its model");
    return new PocketsphinxStream(ps, decoder, options.sampleRate, resampler);
  }
}

/** The phone copy of the acoustic model: links to every file but a rewritten feat.params. */
function phoneModel(dir: string): string {
  const source = join(dir, "en-us");
  const target = join(tmpdir(), "openclaw-voice-call", "pocketsphinx-phone", "en-us");
  const params = readFileSync(join(source, "feat.params"), "utf8").replace(/^-cmninit .*$/m, `-cmninit ${PHONE_CMNINIT}`);
  if (existsSync(join(target, "feat.params")) && readFileSync(join(target, "feat.params"), "utf8") === params) return target;
  mkdirSync(target, { recursive: true });
  for (const file of readdirSync(source)) {
    if (file === "feat.params" || existsSync(join(target, file))) continue;
    symlinkSync(join(source, file), join(target, file));
  }
  writeFileSync(join(target, "feat.params"), params);
  return target;
}

class PocketsphinxStream implements TranscriberStream {
  private readonly queue = new AsyncQueue<TranscriptEvent>();
  private inSpeech = false;
  private pending = new Int16Array(CHUNK_SAMPLES);
  private filled = 0;
  private lastPartial = "";

  constructor(
    private readonly ps: PsLib,
    private decoder: unknown,
    private readonly sampleRate: number,
    private readonly resampler: Resampler | undefined,
  ) {
    ps.ps_start_utt(decoder);
  }

  pushFrame(frame: AudioFrame): void {
    if (this.queue.isEnded || !this.decoder) return;
    if (frame.sampleRate !== this.sampleRate) {
      throw new SpeechError("SPEECH_FAILED", `frame at ${frame.sampleRate} Hz on a ${this.sampleRate} Hz stream`);
    }
    const pcm = this.resampler ? this.resampler.process(frame.pcm) : frame.pcm;
    let offset = 0;
    while (offset < pcm.length) {
      const n = Math.min(CHUNK_SAMPLES - this.filled, pcm.length - offset);
      this.pending.set(pcm.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === CHUNK_SAMPLES) this.decodeChunk();
    }
  }

  flush(): void {
    if (!this.decoder) return;
    if (this.filled > 0) this.decodeChunk();
    this.finishUtterance(true);
  }

  endInput(): void {
    if (this.queue.isEnded) return;
    this.flush();
    this.queue.end();
  }

  close(): void {
    this.queue.end();
    if (this.decoder) this.ps.ps_free(this.decoder);
    this.decoder = null;
    this.resampler?.destroy();
  }

  events(): AsyncIterable<TranscriptEvent> {
    return this.queue.iterate();
  }

  private decodeChunk(): void {
    const chunk = this.pending.subarray(0, this.filled);
    this.ps.ps_process_raw(this.decoder, chunk, chunk.length, 0, 0);
    this.filled = 0;
    const speaking = this.ps.ps_get_in_speech(this.decoder) !== 0;
    if (speaking && !this.inSpeech) {
      this.inSpeech = true;
      this.emit({ type: "speech_started" });
    }
    if (speaking) {
      const partial = (this.ps.ps_get_hyp(this.decoder, null) ?? "").trim();
      if (partial && partial !== this.lastPartial) {
        this.lastPartial = partial;
        this.emit({ type: "interim", text: partial });
      }
    } else if (this.inSpeech) {
      this.finishUtterance(false);
    }
  }

  private finishUtterance(force: boolean): void {
    if (!this.inSpeech && !force) return;
    this.ps.ps_end_utt(this.decoder);
    const text = (this.ps.ps_get_hyp(this.decoder, null) ?? "").trim();
    if (text) this.emit({ type: "final", text });
    if (this.inSpeech) this.emit({ type: "speech_ended" });
    this.inSpeech = false;
    this.lastPartial = "";
    this.ps.ps_start_utt(this.decoder);
  }

  private emit(e: TranscriptEvent): void {
    this.queue.push(e);
  }
}
