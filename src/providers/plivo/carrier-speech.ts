/**
 * Plivo without the media stream (`streaming.enabled: false`): Plivo speaks
 * and listens itself. Each thing to say or hear moves the call to a new Plivo
 * XML document (the Transfer API) served by our webhook: `<Speak>` followed
 * by a `<Redirect>` back to us (so we know it finished), or `<GetInput>`
 * for speech and keys, whose result Plivo posts to its action URL, tagged
 * with the turn it answers. Between them the call waits (`<Wait>`). There is
 * no barge-in in this mode: Plivo's Speak plays to the end.
 */
import type { ListenOptions, SpeakOptions, SpeakOutcome } from "../types.js";
import { plivoXml } from "./xml.js";

/** What this mode needs from the provider. */
export interface CarrierSpeechHost {
  /** Moves the call to the XML our webhook serves for `query`. */
  transfer(providerCallId: string, query: Record<string, string>): Promise<void>;
  /** The webhook URL for `query` (Redirects and GetInput actions). */
  url(query: Record<string, string>): string;
  /** How long the call may wait between documents (its maximum duration). */
  waitSeconds: number;
  /** How long a turn listens (Plivo caps speech input at 60 s). */
  listenSeconds: number;
}

interface PendingSpeak {
  callId: string;
  text: string;
  done: (outcome: SpeakOutcome) => void;
}

/** A Plivo XML document, as text. */
export type Xml = string;

export class PlivoCarrierSpeech {
  private seq = 0;
  private readonly speaking = new Map<string, PendingSpeak>();

  constructor(private readonly host: CarrierSpeechHost) {}

  /** Says `text` through Plivo's Speak; resolves once Plivo has played it (or at once when `signal` aborts). */
  async speak(callId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    const ref = `s${(this.seq += 1)}`;
    const played = new Promise<SpeakOutcome>((resolve) => this.speaking.set(ref, { callId, text, done: resolve }));
    const abort = () => this.finish(ref, { interrupted: true, heard: "" });
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      await this.host.transfer(callId, { type: "speak", ref });
    } catch (err) {
      this.speaking.delete(ref);
      throw err;
    }
    return played.finally(() => options.signal?.removeEventListener("abort", abort));
  }

  /** Opens a turn: Plivo listens for speech and keys, and posts what it heard tagged with the turn. */
  async listen(callId: string, turnToken: string, _options?: ListenOptions): Promise<void> {
    await this.host.transfer(callId, { type: "listen", turn: turnToken });
  }

  /** The document for `?type=speak`: say it, then come back to us. */
  speakXml(ref: string): Xml {
    const pending = this.speaking.get(ref);
    if (!pending) return this.waitXml();
    const xml = plivoXml();
    xml.addSpeak(pending.text);
    xml.addRedirect(this.host.url({ type: "spoken", ref }), { method: "POST" });
    return xml.toXML();
  }

  /** Plivo finished speaking `ref`. */
  spoken(ref: string): Xml {
    const pending = this.speaking.get(ref);
    if (pending) this.finish(ref, { interrupted: false, heard: pending.text });
    return this.waitXml();
  }

  /** The document for `?type=listen`: speech or keys, posted back for this turn. */
  listenXml(turn: string): Xml {
    const xml = plivoXml();
    xml.addGetInput({
      action: this.host.url({ type: "input", turn }),
      method: "POST",
      inputType: "dtmf speech",
      executionTimeout: String(this.host.listenSeconds),
      speechEndTimeout: "1",
      digitEndTimeout: "3",
      finishOnKey: "#",
      redirect: "true",
      log: "false",
    });
    xml.addWait({ length: String(this.host.waitSeconds) });
    return xml.toXML();
  }

  /** Plays nothing and keeps the call up. */
  waitXml(): Xml {
    const xml = plivoXml();
    xml.addWait({ length: String(this.host.waitSeconds) });
    return xml.toXML();
  }

  /** A call ended: whatever it was saying counts as cut off. */
  ended(callId: string): void {
    for (const [ref, pending] of this.speaking) if (pending.callId === callId) this.finish(ref, { interrupted: true, heard: "" });
  }

  private finish(ref: string, outcome: SpeakOutcome): void {
    const pending = this.speaking.get(ref);
    this.speaking.delete(ref);
    pending?.done(outcome);
  }
}
