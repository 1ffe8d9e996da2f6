/**
 * The pocketsphinx decoder core, run inside the recognition worker: 100 ms
 * chunks of 16 kHz audio in, transcript events out. Synchronous, as the
 * library is; the worker keeps it off the main thread.
 */
import { createRequire } from "node:module";
import { SpeechError, type Expectation, type TranscriptEvent } from "./types.js";

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
  ps_set_jsgf_string: (ps: unknown, name: string, jsgf: string) => number;
  ps_set_search: (ps: unknown, name: string) => number;
  ps_get_search: (ps: unknown) => string | null;
  ps_get_feat: (ps: unknown) => unknown;
  decode: (ptr: unknown, offset: number, type: string, len?: number) => unknown;
  encode: (ptr: unknown, offset: number, type: string, value: unknown, len?: number) => void;
}

/**
 * Where sphinxbase 5prealpha's feat_t (x86_64) keeps its cepstrum size and
 * its CMN state: the library has no call to reach the CMN of a decoder, and a
 * decoder lent to another caller must start from that caller's means (live
 * CMN adapts to a voice and a line). Checked at run time (cepsize must read
 * 13); where the layout differs, decoders are lent without it.
 */
const FEAT_CEPSIZE_OFFSET = 16;
const FEAT_CMN_STRUCT_OFFSET = 88;
/** cmn_t: mfcc_t *cmn_mean, *cmn_var, *sum; int32 nframe, veclen. */
const CMN_MEAN_OFFSET = 0;
const CMN_SUM_OFFSET = 16;
const CMN_NFRAME_OFFSET = 24;
const CMN_VECLEN_OFFSET = 28;
const CEPSTRA = 13;

let lib: PsLib | undefined;

function load(): PsLib {
  if (lib) return lib;
  let base;
  let ps;
  let koffi: typeof import("koffi");
  try {
    // Loaded on first use, so a service that never recognises speech never loads the FFI.
    koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
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
    ps_set_jsgf_string: ps.func("int ps_set_jsgf_string(void *ps, const char *name, const char *jsgf)"),
    ps_set_search: ps.func("int ps_set_search(void *ps, const char *name)"),
    ps_get_search: ps.func("const char *ps_get_search(void *ps)"),
    ps_get_feat: ps.func("void *ps_get_feat(void *ps)"),
    decode: (ptr: unknown, offset: number, type: string, len?: number) => (len === undefined ? koffi.decode(ptr, offset, type) : koffi.decode(ptr, offset, type, len)),
    encode: (ptr: unknown, offset: number, type: string, value: unknown, len?: number) =>
      len === undefined ? koffi.encode(ptr, offset, type, value) : koffi.encode(ptr, offset, type, value, len),
  } as unknown as PsLib;
  return lib;
}

/** Confirms the libraries load (on the calling thread). */
export function probePocketsphinx(): void {
  load();
}

/** Built-in grammars for IVR-style answers (JSGF); recognised far better than open speech. */
export const GRAMMARS: Record<Expectation, string> = {
  digits: `#JSGF V1.0;
grammar digits;
public <digits> = <digit>+;
<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;
`,
  yesno: `#JSGF V1.0;
grammar yesno;
public <answer> = yes | no | yeah | yep | nope | correct | right | wrong;
`,
};

const DIGIT_WORDS: Record<string, string> = {
  zero: "0", oh: "0", one: "1", two: "2", three: "3", four: "4", five: "5", six: "6", seven: "7", eight: "8", nine: "9",
};

/** A digits-grammar result as the digits themselves ("four seven" -> "47"). */
export function digitsOf(words: string): string {
  return words.split(/\s+/).map((w) => DIGIT_WORDS[w] ?? "").join("");
}

export class SphinxDecoder {
  private readonly ps: PsLib;
  private decoder: unknown;
  private inSpeech = false;
  private lastPartial = "";
  private readonly defaultSearch: string;
  private grammar: Expectation | undefined;
  /** The live CMN state, where this library build lets us reach it. */
  private readonly cmn: unknown;
  /** The state a new caller starts from: the model's -cmninit means, nothing summed yet. */
  private readonly initialMeans: Float32Array | undefined;

  constructor(args: string[]) {
    this.ps = load();
    const config = this.ps.cmd_ln_parse_r(null, this.ps.ps_args(), args.length, args, 1);
    if (!config) throw new SpeechError("SPEECH_FAILED", "pocketsphinx rejected its configuration");
    this.decoder = this.ps.ps_init(config);
    if (!this.decoder) throw new SpeechError("SPEECH_FAILED", "pocketsphinx could not load its model");
    this.defaultSearch = this.ps.ps_get_search(this.decoder) ?? "_default";
    for (const [name, jsgf] of Object.entries(GRAMMARS)) {
      if (this.ps.ps_set_jsgf_string(this.decoder, name, jsgf) !== 0) throw new SpeechError("SPEECH_FAILED", `pocketsphinx rejected the ${name} grammar`);
    }
    // Adding a search makes it current; decoding starts with the configured one.
    this.ps.ps_set_search(this.decoder, this.defaultSearch);
    this.cmn = this.findCmn();
    this.initialMeans = this.saveMeans();
    this.ps.ps_start_utt(this.decoder);
  }

  private findCmn(): unknown {
    const feat = this.ps.ps_get_feat(this.decoder);
    if (!feat || this.ps.decode(feat, FEAT_CEPSIZE_OFFSET, "int32") !== CEPSTRA) return undefined;
    const cmn = this.ps.decode(feat, FEAT_CMN_STRUCT_OFFSET, "void *");
    if (!cmn || this.ps.decode(cmn, CMN_VECLEN_OFFSET, "int32") !== CEPSTRA) return undefined;
    return cmn;
  }

  /**
   * This caller's live CMN state (to resume it later): the means, the running
   * sum and its frame count, read straight from cmn_t (the library's
   * cmn_live_get recomputes the means, changing what it reads, and
   * cmn_live_set cannot restore a count). Undefined where it cannot be read.
   */
  saveMeans(): Float32Array | undefined {
    if (!this.cmn) return undefined;
    const mean = this.ps.decode(this.cmn, CMN_MEAN_OFFSET, "void *");
    const sum = this.ps.decode(this.cmn, CMN_SUM_OFFSET, "void *");
    const state = new Float32Array(2 * CEPSTRA + 1);
    state.set(this.ps.decode(mean, 0, "float", CEPSTRA) as ArrayLike<number>, 0);
    state.set(this.ps.decode(sum, 0, "float", CEPSTRA) as ArrayLike<number>, CEPSTRA);
    state[2 * CEPSTRA] = this.ps.decode(this.cmn, CMN_NFRAME_OFFSET, "int32") as number;
    return state;
  }

  /** Resumes a caller's saved CMN state, or a new caller's (the model's initial one). */
  loadMeans(saved: Float32Array | undefined): void {
    const state = saved ?? this.initialMeans;
    if (!this.cmn || !state) return;
    const mean = this.ps.decode(this.cmn, CMN_MEAN_OFFSET, "void *");
    const sum = this.ps.decode(this.cmn, CMN_SUM_OFFSET, "void *");
    this.ps.encode(mean, 0, "float", Array.from(state.subarray(0, CEPSTRA)), CEPSTRA);
    this.ps.encode(sum, 0, "float", Array.from(state.subarray(CEPSTRA, 2 * CEPSTRA)), CEPSTRA);
    this.ps.encode(this.cmn, CMN_NFRAME_OFFSET, "int32", state[2 * CEPSTRA]);
  }

  /** Decodes what comes next with a built-in grammar, or the configured model (undefined). */
  expect(grammar: Expectation | undefined): TranscriptEvent[] {
    if (grammar === this.grammar) return [];
    const out = this.inSpeech ? this.endUtterance() : [];
    this.ps.ps_end_utt(this.decoder);
    if (this.ps.ps_set_search(this.decoder, grammar ?? this.defaultSearch) !== 0) throw new SpeechError("SPEECH_FAILED", `pocketsphinx has no search ${grammar}`);
    this.grammar = grammar;
    this.ps.ps_start_utt(this.decoder);
    return out;
  }

  /** Decodes one chunk; returns what it made the recogniser say. */
  process(chunk: Int16Array): TranscriptEvent[] {
    const out: TranscriptEvent[] = [];
    this.ps.ps_process_raw(this.decoder, chunk, chunk.length, 0, 0);
    const speaking = this.ps.ps_get_in_speech(this.decoder) !== 0;
    if (speaking && !this.inSpeech) {
      this.inSpeech = true;
      out.push({ type: "speech_started" });
    }
    if (speaking) {
      const partial = (this.ps.ps_get_hyp(this.decoder, null) ?? "").trim();
      if (partial && partial !== this.lastPartial) {
        this.lastPartial = partial;
        out.push({ type: "interim", text: partial });
      }
    } else if (this.inSpeech) {
      out.push(...this.endUtterance());
    }
    return out;
  }

  /** Ends the current utterance now (end of input, or an explicit flush). */
  endUtterance(): TranscriptEvent[] {
    const out: TranscriptEvent[] = [];
    this.ps.ps_end_utt(this.decoder);
    const words = (this.ps.ps_get_hyp(this.decoder, null) ?? "").trim();
    const text = this.grammar === "digits" ? digitsOf(words) : words;
    if (text) out.push({ type: "final", text });
    if (this.inSpeech) out.push({ type: "speech_ended" });
    this.inSpeech = false;
    this.lastPartial = "";
    this.ps.ps_start_utt(this.decoder);
    return out;
  }

  free(): void {
    if (this.decoder) this.ps.ps_free(this.decoder);
    this.decoder = null;
  }
}
