/**
 * The pocketsphinx decoder core, run inside the recognition worker: 100 ms
 * chunks of 16 kHz audio in, transcript events out. Synchronous, as the
 * library is; the worker keeps it off the main thread.
 */
import { createRequire } from "node:module";
import { SpeechError, type TranscriptEvent } from "./types.js";

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

/** Confirms the libraries load (on the calling thread). */
export function probePocketsphinx(): void {
  load();
}

export class SphinxDecoder {
  private readonly ps: PsLib;
  private decoder: unknown;
  private inSpeech = false;
  private lastPartial = "";

  constructor(args: string[]) {
    this.ps = load();
    const config = this.ps.cmd_ln_parse_r(null, this.ps.ps_args(), args.length, args, 1);
    if (!config) throw new SpeechError("SPEECH_FAILED", "pocketsphinx rejected its configuration");
    this.decoder = this.ps.ps_init(config);
    if (!this.decoder) throw new SpeechError("SPEECH_FAILED", "pocketsphinx could not load its model");
    this.ps.ps_start_utt(this.decoder);
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
    const text = (this.ps.ps_get_hyp(this.decoder, null) ?? "").trim();
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
