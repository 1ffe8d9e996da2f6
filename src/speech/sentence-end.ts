/**
 * How likely the words so far end a sentence, from pocketsphinx's own
 * language model (the en-us trigram the recogniser decodes with): the
 * log10 probability of the sentence end after the last two words. "What
 * time do you close tonight" ends one (-0.4); "a table for" (-1.8) and
 * "my name is" (-1.6) do not. A recogniser without punctuation gives turn-
 * taking no other sign that a sentence is over; an n-gram is the small,
 * offline form of the language models that end-of-turn detectors use.
 *
 * Read through koffi from libsphinxbase (already loaded for recognition),
 * on first use: ~35 ms and ~60 MB once per process; each lookup is a table
 * read in microseconds, so it runs on the call's thread.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";

interface LmLib {
  logmath_init: (base: number, shift: number, useTable: number) => unknown;
  ngram_model_read: (config: null, file: string, type: number, lmath: unknown) => unknown;
  ngram_wid: (model: unknown, word: string) => number;
  ngram_unknown_wid: (model: unknown) => number;
  ngram_tg_score: (model: unknown, w3: number, w2: number, w1: number, used: number[]) => number;
  ngram_score_to_prob: (model: unknown, score: number) => number;
  logmath_log_to_ln: (lmath: unknown, score: number) => number;
}

const DEFAULT_LM = "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin";
/** ngram_file_type_t NGRAM_AUTO: the library reads the format from the file. */
const NGRAM_AUTO = 0;

export class SentenceEnd {
  private readonly lib: LmLib;
  private readonly lmath: unknown;
  private readonly model: unknown;
  private readonly end: number;
  private readonly start: number;
  private readonly unknown: number;

  private constructor(file: string) {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    const base = koffi.load("libsphinxbase.so.3");
    this.lib = {
      logmath_init: base.func("void *logmath_init(double base, int shift, int use_table)"),
      ngram_model_read: base.func("void *ngram_model_read(void *config, const char *file, int type, void *lmath)"),
      ngram_wid: base.func("int ngram_wid(void *model, const char *word)"),
      ngram_unknown_wid: base.func("int ngram_unknown_wid(void *model)"),
      ngram_tg_score: base.func("int ngram_tg_score(void *model, int w3, int w2, int w1, _Out_ int *n_used)"),
      ngram_score_to_prob: base.func("int ngram_score_to_prob(void *model, int score)"),
      logmath_log_to_ln: base.func("double logmath_log_to_ln(void *lmath, int score)"),
    };
    this.lmath = this.lib.logmath_init(1.0001, 0, 0);
    this.model = this.lib.ngram_model_read(null, file, NGRAM_AUTO, this.lmath);
    if (!this.model) throw new Error(`pocketsphinx could not read its language model ${file}`);
    this.end = this.lib.ngram_wid(this.model, "</s>");
    this.start = this.lib.ngram_wid(this.model, "<s>");
    this.unknown = this.lib.ngram_unknown_wid(this.model);
  }

  private static readonly loaded = new Map<string, SentenceEnd | null>();

  /** The model in `file`, loaded once; undefined where pocketsphinx or its model is not installed. */
  static load(file = DEFAULT_LM): SentenceEnd | undefined {
    if (!SentenceEnd.loaded.has(file)) {
      let model: SentenceEnd | null = null;
      try {
        if (existsSync(file)) model = new SentenceEnd(file);
      } catch {
        model = null;
      }
      SentenceEnd.loaded.set(file, model);
    }
    return SentenceEnd.loaded.get(file) ?? undefined;
  }

  /** log10 P(sentence end | the last two words); undefined for no words. */
  log10(text: string): number | undefined {
    const words = text.toLowerCase().replace(/[^\p{L}\p{N}' ]+/gu, " ").trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return undefined;
    const id = (w: string | undefined) => (w === undefined ? this.start : this.lib.ngram_wid(this.model, w));
    const [w1, w2] = [id(words.at(-2)), id(words.at(-1))];
    // A word the model does not know says nothing either way.
    if (w2 === this.unknown) return undefined;
    const score = this.lib.ngram_tg_score(this.model, this.end, w2, w1 === this.unknown ? this.start : w1, [0]);
    return this.lib.logmath_log_to_ln(this.lmath, this.lib.ngram_score_to_prob(this.model, score)) / Math.LN10;
  }
}
