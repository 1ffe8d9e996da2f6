/**
 * Carriers that speak and listen themselves (`streaming.enabled: false` on
 * Twilio and Plivo): each thing to say, keys to press or turn to hear moves
 * the call (the carrier's REST update) to a document our webhook serves.
 * Saying ends with a redirect back to us (so we know it played); listening
 * asks the carrier to post what it heard to an action URL that names the
 * turn; between them the call waits. There is no barge-in in this mode: the
 * carrier's speech plays to the end. Each carrier gives its document
 * language (TwiML, Plivo XML) and how a call is moved.
 */
import { VoiceCallError } from "../errors.js";
import type { ProviderEventBody, SpeakOptions, SpeakOutcome, WebhookReply } from "./types.js";

/** A carrier's documents, as text. */
export interface Documents {
  /** Says `text`, then asks `back`. */
  say(text: string, back: string): string;
  /** Presses `digits` (w: a half-second pause), then asks `back`; carriers that send keys by REST leave it out. */
  press?(digits: string, back: string): string;
  /** Listens for speech and keys up to `seconds`, posting what it heard to `action`; then waits. */
  listen(action: string, seconds: number, waitSeconds: number): string;
  /** Plays nothing and keeps the call up for `seconds`. */
  wait(seconds: number): string;
}

/** What this mode needs from the provider. */
export interface DocumentHost {
  /** Moves the call to the document our webhook serves for `query`. */
  transfer(providerCallId: string, query: Record<string, string>): Promise<void>;
  /** The webhook URL for `query` (redirects back and listening actions). */
  url(query: Record<string, string>): string;
  documents: Documents;
  /** How long the call may wait between documents (its maximum duration). */
  waitSeconds: number;
  /** How long a turn listens. */
  listenSeconds: number;
  /**
   * Whether a failed move says the call is not up at the carrier yet (an
   * inbound call whose answer is still being fetched): it is then tried
   * again, for up to NOT_UP_WAIT_MS.
   */
  notUpYet?(err: unknown): boolean;
}

/** How long a move waits for a call the carrier has not put up yet, and how often it asks again. */
const NOT_UP_WAIT_MS = 3000;
const NOT_UP_RETRY_MS = 100;

interface Pending {
  callId: string;
  /** The document that plays it, given the URL to come back to. */
  document: (back: string) => string;
  done: (played: boolean) => void;
}

/** A document as the webhook's answer (both carriers' documents are XML); a type of this mode asked of a streaming service is refused. */
export function documentReply(text: string | undefined): WebhookReply {
  if (text === undefined) throw new VoiceCallError("INVALID_PARAMS", "type: only used with streaming.enabled false");
  return { status: 200, contentType: "text/xml", body: text };
}

/** What the carrier heard for a turn: keys (complete: it already waited for # or a pause), else words. */
export function heardInput(speech: string | null, digits: string | null, turnToken: string): ProviderEventBody | undefined {
  const keys = digits?.replace(/[^0-9A-D*#]/g, "");
  if (keys) return { type: "dtmf", digits: keys.endsWith("#") ? keys : `${keys}#` };
  const words = speech?.trim();
  return words ? { type: "speech", text: words, isFinal: true, turnToken } : undefined;
}

/** The webhook types this mode serves: the `type` query parameter of its URLs. */
const DOCUMENT_TYPES: readonly string[] = ["speak", "spoken", "listen", "input"];

export function isDocumentType(type: string): boolean {
  return DOCUMENT_TYPES.includes(type);
}

export class DocumentSpeech {
  private seq = 0;
  private readonly playing = new Map<string, Pending>();

  constructor(private readonly host: DocumentHost) {}

  /** Says `text`; resolves once the carrier has played it (or at once when `signal` aborts). */
  async speak(callId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    const played = await this.play(callId, (back) => this.host.documents.say(text, back), options.signal);
    return played ? { interrupted: false, heard: text } : { interrupted: true, heard: "" };
  }

  /** Presses `digits` on the call; resolves once they have played. */
  async press(callId: string, digits: string): Promise<void> {
    const press = this.host.documents.press;
    if (!press) throw new Error("this carrier sends keys by REST");
    await this.play(callId, (back) => press(digits, back));
  }

  /** Opens a turn: the carrier listens for speech and keys, and posts what it heard tagged with the turn. */
  async listen(callId: string, turnToken: string): Promise<void> {
    await this.move(callId, { type: "listen", turn: turnToken });
  }

  /**
   * The document for one of this mode's webhooks (`type` in DOCUMENT_TYPES),
   * or undefined for another type. A replayed request gets the same
   * document and acts on nothing.
   */
  reply(type: string, query: URLSearchParams, replay = false): string | undefined {
    switch (type) {
      case "speak": {
        const ref = query.get("ref") ?? "";
        const pending = this.playing.get(ref);
        return pending ? pending.document(this.host.url({ type: "spoken", ref })) : this.wait();
      }
      case "spoken":
        if (!replay) this.finish(query.get("ref") ?? "", true);
        return this.wait();
      case "listen":
        return this.host.documents.listen(this.host.url({ type: "input", turn: query.get("turn") ?? "" }), this.host.listenSeconds, this.host.waitSeconds);
      case "input":
        return this.wait();
      default:
        return undefined;
    }
  }

  /** Plays nothing and keeps the call up. */
  wait(): string {
    return this.host.documents.wait(this.host.waitSeconds);
  }

  /** A call ended: whatever it was playing counts as cut off. */
  ended(callId: string): void {
    for (const [ref, pending] of this.playing) if (pending.callId === callId) this.finish(ref, false);
  }

  private async play(callId: string, document: (back: string) => string, signal?: AbortSignal): Promise<boolean> {
    const ref = `p${(this.seq += 1)}`;
    const played = new Promise<boolean>((resolve) => this.playing.set(ref, { callId, document, done: resolve }));
    const abort = () => this.finish(ref, false);
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await this.move(callId, { type: "speak", ref });
    } catch (err) {
      this.playing.delete(ref);
      signal?.removeEventListener("abort", abort);
      throw err;
    }
    return played.finally(() => signal?.removeEventListener("abort", abort));
  }

  /** Moves the call, waiting briefly for one the carrier is still putting up. */
  private async move(callId: string, query: Record<string, string>): Promise<void> {
    for (let waited = 0; ; waited += NOT_UP_RETRY_MS) {
      try {
        return await this.host.transfer(callId, query);
      } catch (err) {
        if (waited >= NOT_UP_WAIT_MS || !this.host.notUpYet?.(err)) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, NOT_UP_RETRY_MS));
    }
  }

  private finish(ref: string, played: boolean): void {
    const pending = this.playing.get(ref);
    this.playing.delete(ref);
    pending?.done(played);
  }
}
