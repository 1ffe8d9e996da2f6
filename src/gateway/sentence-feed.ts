/**
 * An agent's answer as it is written, cut into the sentences that are
 * complete, so each is spoken while the rest is still being written. The
 * gateway streams a run's text as partial replies (the message so far,
 * trimmed): a sentence is known to be complete once text follows it, when
 * the model stops writing (it calls a tool, or a new message starts), or
 * when the message ends in a sentence's end and nothing follows within
 * SETTLE_MS (a model streams its tokens far faster than that; waiting for
 * its next sentence would cost the caller the time it takes to write). Whole
 * texts reported later (a message's preamble, the run's final answer) may
 * repeat what was already spoken: only sentences not said yet are said.
 */
import { sentences } from "../speech/types.js";

/** The text up to the last sentence end that is followed by a space (a sentence known to be complete). */
function completePrefix(text: string): number {
  let end = 0;
  for (const match of text.matchAll(/[.!?;:]+["')\]]*\s+/g)) end = match.index + match[0].length;
  return end;
}

/** A message that ends like a sentence and is not added to for this long is spoken as far as it goes. */
export const SETTLE_MS = 150;
const ENDS_SENTENCE = /[.!?]+["')\]]*$/;

const normalise = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim();

export class SentenceFeed {
  /** The message being written, as far as it has come. */
  private current = "";
  /** How much of `current` has been handed on. */
  private handed = 0;
  private readonly said = new Set<string>();
  /** Pieces handed on. */
  count = 0;
  private settle?: NodeJS.Timeout;

  constructor(private readonly say: (text: string) => void) {}

  /** A partial reply: the whole message so far (`text`) or what was added (`delta`); `replace`: it was rewritten. */
  partial(payload: { text?: string; delta?: string; replace?: boolean }): void {
    const text = payload.text ?? this.current + (payload.delta ?? "");
    if (payload.replace || !text.startsWith(this.current.slice(0, this.handed))) {
      // The message was rewritten: what was said of it stays said (sentences are not said twice).
      this.handed = 0;
    }
    this.current = text;
    this.handUpTo(completePrefix(text));
    clearTimeout(this.settle);
    if (this.handed < text.length && ENDS_SENTENCE.test(text)) {
      this.settle = setTimeout(() => {
        if (this.current === text) this.flush();
      }, SETTLE_MS);
    }
  }

  /** The model stopped writing this message (a tool call follows, or the message ended): the rest of it is complete. */
  flush(): void {
    clearTimeout(this.settle);
    this.handUpTo(this.current.length);
  }

  /** A new assistant message begins: the last one is complete, and the new one is read from its start. */
  messageStart(): void {
    this.flush();
    this.current = "";
    this.handed = 0;
  }

  /** The run is over: nothing more is handed on from a pending settle. */
  close(): void {
    clearTimeout(this.settle);
  }

  /** A whole text (a message's preamble, the run's final answer): what of it has not been said yet. */
  whole(text: string): void {
    const rest = sentences(text).filter((s) => !this.said.has(normalise(s)));
    if (rest.length > 0) this.hand(rest.join(" "));
  }

  private handUpTo(end: number): void {
    if (end <= this.handed) return;
    const piece = this.current.slice(this.handed, end);
    this.handed = end;
    this.hand(piece);
  }

  private hand(piece: string): void {
    const parts = sentences(piece).filter((s) => !this.said.has(normalise(s)));
    if (parts.length === 0) return;
    for (const s of parts) this.said.add(normalise(s));
    this.count += 1;
    this.say(parts.join(" "));
  }
}
