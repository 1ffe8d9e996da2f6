/**
 * When has the caller finished? A silence-only rule ends the turn after a
 * fixed pause, so it either waits long after every complete sentence or cuts
 * off everyone who pauses to think. Here the recogniser's words decide how
 * long the pause must be: a turn that sounds complete (a punctuated
 * sentence from a cloud recogniser, a yes or no to a yes/no question, words
 * the recogniser's own language model gives a likely sentence end) ends
 * after a short pause; one that trails off
 * (a filler, a conjunction, a preposition or article waiting for its noun:
 * "a table for ...", "and ...", "um") is held for a long one and joined with
 * what the caller says next; anything else takes the middle wait.
 *
 * Sans-IO: driven by the call's frames (the transport hands silence when the
 * far side goes quiet, so frames keep coming), the voice detector's edges and
 * the recogniser's finals; no timers of its own.
 */
import type { Expectation } from "../speech/types.js";

export type TurnCue = "complete" | "open" | "trailing";

export interface TurnTakingOptions {
  /** "semantic": the words pick the wait; "silence": every utterance ends the turn (a fixed pause). */
  mode: "semantic" | "silence";
  /** Silence that ends a turn that sounds complete. */
  completeMs: number;
  /** Silence that ends one with no cue either way. */
  openMs: number;
  /** The longest pause held for a turn that trails off. */
  trailingMs: number;
}

/** How long a flushed recogniser's final may take (tens of ms as a rule) before the turn goes on without it. */
const FINAL_WAIT_MS = 2000;

export const DEFAULT_TURN_TAKING: TurnTakingOptions = { mode: "semantic", completeMs: 200, openMs: 1000, trailingMs: 1500 };

/**
 * Words a thought does not end on: conjunctions, prepositions, articles and
 * possessives waiting for their noun, and fillers. Pronouns and auxiliaries
 * are left out ("thank you", "yes I do", "it is" end turns).
 */
const TRAILING = new Set([
  // conjunctions and clause openers
  "and", "but", "or", "nor", "so", "because", "cause", "if", "then", "that", "which", "who", "whose", "where", "when", "while",
  "although", "though", "unless", "until", "since", "than", "whether", "plus", "also",
  // prepositions
  "to", "for", "of", "in", "on", "at", "with", "from", "by", "about", "into", "onto", "like", "after", "before", "between",
  "without", "through", "over", "under", "around", "near", "via", "per", "towards", "toward",
  // articles, possessives, quantifiers
  "the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "this", "these", "those", "some", "any", "every", "each",
  "another", "very", "more", "most",
  // fillers
  "um", "umm", "uh", "uhm", "er", "erm", "em", "ah", "hmm", "mm", "eh",
]);
/** Pronouns: after one, an auxiliary is a whole short answer ("it is", "I do", "we can"). */
const PRONOUN = "i|you|we|they|he|she|it|that|there";
const AUXILIARY = "is|are|was|were|am|be|been|have|has|had|do|does|did|will|would|can|could|should|shall|may|might|must";
/**
 * Phrases that hold the floor: "let me see", "I mean"; a verb still waiting
 * for its object ("I need", "I'd like", "I was wondering"); an auxiliary after
 * a noun, whose predicate is still to come ("my name is", "the problem was").
 */
const HOLDING = [
  /\blet me( see| think| check)?$/,
  /\bi mean$/,
  /\bwhat (is|was) it$/,
  /\bhang on$/,
  /\bone (second|moment|sec)$/,
  /\b(i|we)('d| would)? (want|need|like|wanted|needed|wish)$/,
  /\b(i'm|we're|i am|we are|i was|we were) (wondering|hoping|trying|going|planning|wanting|calling to)$/,
  // As recognisers often spell "wondering".
  /\b(i was|we were) wandering$/,
  new RegExp(`\\b(?!(?:${PRONOUN})\\b)[\\p{L}']+ (?:${AUXILIARY})$`, "u"),
];
const YES_NO = /\b(yes|yeah|yep|no|nope|nah|sure|correct|right)\b/;

/**
 * log10 P(sentence end | the last two words) at or above which words with no
 * other cue sound complete, and below which they trail off
 * (src/speech/sentence-end.ts). Complete sentences of the bench's pause set
 * score -0.4 to -1.0, its words before a pause -1.2 to -2.5 where they were
 * heard right (docs/speech.md).
 */
const LIKELY_END = -0.9;
const UNLIKELY_END = -1.3;

/** How likely the words so far end a sentence (log10), where the recogniser's language model can say. */
export type SentenceEndScore = (text: string) => number | undefined;

/** What the words so far say about the turn: over, held, or neither. */
export function turnCue(text: string, expect?: Expectation, sentenceEnd?: SentenceEndScore): TurnCue {
  const raw = text.trim();
  if (raw === "") return "open";
  // Cloud recognisers punctuate: a comma, a dash or an ellipsis trails; a full stop or a question ends.
  if (/(,|-|\.\.\.|…)$/.test(raw)) return "trailing";
  const words = raw.toLowerCase().replace(/[^\p{L}\p{N}' ]+/gu, " ").trim().replace(/\s+/g, " ");
  // Recognisers spell a filler "um" as "'em" too.
  const last = (words.split(" ").at(-1) ?? "").replace(/^'/, "");
  if (TRAILING.has(last) || HOLDING.some((re) => re.test(words))) return "trailing";
  if (/[.?!]["')\]]*$/.test(raw)) return "complete";
  // A yes or no to a yes/no question is the whole answer. A bare "no" elsewhere often goes on ("no, thank you"): open.
  if (expect === "yesno" && YES_NO.test(words)) return "complete";
  const end = sentenceEnd?.(words);
  if (end !== undefined && end >= LIKELY_END) return "complete";
  if (end !== undefined && end < UNLIKELY_END) return "trailing";
  return "open";
}

/** A turn the caller finished: their words, and the turn they answer (the one current when they began). */
export interface EndedTurn {
  text: string;
  turnToken?: string;
  cue: TurnCue;
}

export interface TurnTakerOptions extends TurnTakingOptions {
  /**
   * "bus": the recogniser ends an utterance when told (`flush`); "engine": it
   * finds utterance ends itself and its finals come on their own.
   */
  endpointing: "bus" | "engine";
  /** The silence the voice detector needs before it reports the caller stopped. */
  detectorSilenceMs: number;
  /** The engine's finals are already ends of turns (its own end-of-turn model): none is held. */
  endsTurns?: boolean;
  /** The recogniser's language model on whether the words end a sentence. */
  sentenceEnd?: SentenceEndScore;
}

export interface TurnTakerEvents {
  /** The caller's turn is over. */
  turn(turn: EndedTurn): void;
  /** The caller stopped talking with nothing left to wait for (barge-in's "quiet"). */
  quiet(): void;
  /** Bus recognisers: end the utterance now; its final is the turn. */
  flush(): void;
}

/**
 * One call's turn-taking. The cascade tells it each frame's length, the
 * detector's edges and the recogniser's words.
 *
 * On the bus (semantic mode) the recogniser's utterance stays open through a
 * pause: the newest partial result picks the wait, and only when it is over
 * is the recogniser flushed, so a sentence said with a pause is decoded as
 * one (a flush at every pause would decode "tell me if" as a sentence of its
 * own, and the language model's sentence end turns its last word into
 * another). Engines that end utterances themselves send finals on their
 * own: a trailing one is held and joined with the next.
 */
export class TurnTaker {
  /** ms of audio seen on the call: the clock every wait runs on. */
  private now = 0;
  /** The caller is talking (between the detector's onset and its end). */
  private speaking = false;
  /** When the current silence began (the detector fires `detectorSilenceMs` into it). */
  private silentSince = 0;
  /** Finals of this turn not yet handed on. */
  private held: string[] = [];
  /** The turn the words answer: the one current when the caller began. */
  private token?: string;
  private tokenSet = false;
  /** The recogniser's newest partial result (bus): the words so far of the open utterance. */
  private partial = "";
  /** Words were heard since the last flush (bus): there is an utterance to end. */
  private open = false;
  /** When the wait ends: the utterance is flushed (bus) or the held words handed on. */
  private due?: number;
  /** A flush was asked for: its final ends the turn. */
  private flushed = false;
  /** When the caller counts as quiet if the bus's final has not come. */
  private quietDue?: number;
  private expectation?: Expectation;

  constructor(
    private readonly options: TurnTakerOptions,
    private readonly events: TurnTakerEvents,
  ) {}

  private get semanticBus(): boolean {
    return this.options.mode === "semantic" && this.options.endpointing === "bus";
  }

  /** The turn's expected answer (a grammar): a yes or no to a yes/no question ends it at once. */
  expect(kind: Expectation | undefined): void {
    this.expectation = kind;
  }

  /** A frame of `ms` went by; ends a wait that is over. */
  tick(ms: number): void {
    this.now += ms;
    if (this.quietDue !== undefined && this.now >= this.quietDue) {
      // No final came (a recogniser that reports nothing for noise): the caller did stop.
      this.quietDue = undefined;
      this.flushed = false;
      if (this.held.length > 0) this.release();
      else if (!this.speaking) this.events.quiet();
    }
    if (this.due === undefined || this.speaking || this.now < this.due) return;
    this.due = undefined;
    if (this.semanticBus) this.flush();
    else this.release();
  }

  /** The detector heard the caller start (again): a pending turn goes on. `turnToken`: the turn current now. */
  started(turnToken?: string): void {
    this.speaking = true;
    this.due = undefined;
    this.quietDue = undefined;
    if (!this.tokenSet) {
      this.token = turnToken;
      this.tokenSet = true;
    }
    this.open = true;
  }

  /** The detector heard the caller stop. */
  stopped(): void {
    this.speaking = false;
    this.silentSince = this.now - this.options.detectorSilenceMs;
    if (this.options.endpointing === "engine") {
      if (this.held.length > 0) this.schedule();
      else this.events.quiet();
      return;
    }
    if (this.semanticBus) return this.schedule();
    // Silence mode on the bus: the gate flushed the recogniser; the final is the turn.
    this.flushed = true;
    this.quietDue = this.now + FINAL_WAIT_MS;
  }

  /** The recogniser's words so far (bus): a pause is judged by them. */
  interim(text: string): void {
    this.partial = text;
    if (this.semanticBus && !this.speaking && this.due !== undefined) this.schedule();
  }

  /** A recogniser final, for the turn `turnToken` (used when no onset named one). */
  final(text: string, turnToken: string | undefined): void {
    const words = text.trim();
    if (words !== "") {
      if (!this.tokenSet) {
        this.token = turnToken;
        this.tokenSet = true;
      }
      this.held.push(words);
    }
    this.partial = "";
    // Bus: a final we asked for ends the turn; one the recogniser made itself (its own endpointer) is held.
    if (this.options.endpointing === "bus" && (this.flushed || this.options.mode === "silence")) {
      this.flushed = false;
      this.quietDue = undefined;
      // The final can show a trailing word its partial had not yet (the last word of a partial lags): then it is held after all.
      if (this.semanticBus && !this.speaking && this.held.length > 0 && this.cue(this.held.join(" ")) === "trailing" && this.now < this.silentSince + this.options.trailingMs) {
        this.due = this.silentSince + this.options.trailingMs;
        return;
      }
      if (this.held.length > 0) this.release();
      else if (!this.speaking) this.events.quiet();
      return;
    }
    if (this.held.length === 0) return;
    if (this.options.mode === "silence" || this.options.endsTurns) return this.release();
    if (this.options.endpointing === "engine") {
      // An engine's final came after its own pause: silence counts from now if our detector still hears speech.
      if (this.speaking) this.silentSince = this.now;
      this.schedule();
    } else if (!this.speaking) this.schedule();
  }

  /**
   * The recogniser closed an utterance (its speech_ended, after any final).
   * A flush it answered with no words at all (it heard only a filler or
   * noise) is over now, not after FINAL_WAIT_MS.
   */
  recognised(): void {
    if (!this.flushed) return;
    this.flushed = false;
    this.quietDue = undefined;
    if (this.held.length > 0) this.release();
    else if (!this.speaking) this.events.quiet();
  }

  /** No more audio: whatever is held is the turn. */
  end(): void {
    if (this.held.length > 0) this.release();
  }

  private cue(text: string): TurnCue {
    return turnCue(text, this.expectation, this.options.sentenceEnd);
  }

  private schedule(): void {
    const text = [...this.held, this.partial].join(" ").trim();
    const cue = this.cue(text);
    const { completeMs, openMs, trailingMs } = this.options;
    if (this.options.endpointing === "engine") {
      // An engine's final came after its own endpointing: only a trailing turn waits longer.
      if (cue !== "trailing") return this.release();
      this.due = this.silentSince + trailingMs;
    } else {
      if (!this.open && this.held.length === 0) return;
      this.due = this.silentSince + (cue === "complete" ? completeMs : cue === "open" ? openMs : trailingMs);
    }
    this.tick(0);
  }

  private flush(): void {
    this.open = false;
    this.events.flush();
    if (this.partial === "") {
      // The recogniser has nothing pending (its own endpointer already sent a final, or it heard no words): no final to wait for.
      if (this.held.length > 0) this.release();
      else if (!this.speaking) this.events.quiet();
      return;
    }
    this.flushed = true;
    this.quietDue = this.now + FINAL_WAIT_MS;
  }

  private release(): void {
    const text = this.held.join(" ");
    const turn: EndedTurn = { text, turnToken: this.token, cue: this.cue(text) };
    this.held = [];
    this.token = undefined;
    this.tokenSet = false;
    this.due = undefined;
    this.open = false;
    this.events.turn(turn);
    if (!this.speaking && !this.flushed) this.events.quiet();
  }
}
