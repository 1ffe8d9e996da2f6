/**
 * Telnyx without the media stream (`streaming.enabled: false`): Telnyx
 * speaks and listens itself. A message is Call Control `speak` (Telnyx's
 * own voice; long messages go out in pieces under its 3,000-character
 * limit), finished when `call.speak.ended` comes back carrying the piece's
 * reference in client_state. Listening is Telnyx's transcription, started
 * once the call is answered: a final transcript answers the open turn, an
 * interim one while we speak is the caller cutting in (barge-in stops our
 * speech with `playback_stop`). Keys come from `call.dtmf.received`.
 */
import { sentences } from "../../speech/types.js";
import type { SpeakOptions, SpeakOutcome } from "../types.js";

/** What this mode needs from the provider. */
export interface TelnyxSpeechHost {
  /** Telnyx says `text` on the call; `ref` comes back in call.speak.ended. */
  speak(callId: string, text: string, ref: string): Promise<void>;
  /** Telnyx stops what it is saying on the call. */
  stopSpeaking(callId: string): Promise<void>;
  /** Something the caller said (or started saying) for the turn named. */
  heard(callId: string, event: { type: "speech-start"; turnToken?: string } | { type: "speech-end" } | { type: "speech"; text: string; turnToken?: string }): void;
}

/** Telnyx's speak takes up to 3,000 characters. */
const MAX_PIECE = 3000;

interface Pending {
  callId: string;
  done: (played: boolean) => void;
}

interface Listening {
  /** The turn caller speech belongs to, from the message that opens it on. */
  turn?: string;
  /** An interim transcript came: the caller is talking. */
  talking: boolean;
}

export class TelnyxCarrierSpeech {
  private seq = 0;
  private readonly speaking = new Map<string, Pending>();
  private readonly listening = new Map<string, Listening>();

  constructor(private readonly host: TelnyxSpeechHost) {}

  /** Says `text`, piece by piece; resolves once Telnyx has played it, or at once when `signal` aborts. */
  async speak(callId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    if (options.turnToken) this.state(callId).turn = options.turnToken;
    const heard: string[] = [];
    for (const piece of pieces(text)) {
      if (options.signal?.aborted) return { interrupted: true, heard: heard.join(" ") };
      const ref = `s${(this.seq += 1)}`;
      const played = new Promise<boolean>((resolve) => this.speaking.set(ref, { callId, done: resolve }));
      const abort = () => {
        this.finish(ref, false);
        this.host.stopSpeaking(callId).catch(() => undefined);
      };
      options.signal?.addEventListener("abort", abort, { once: true });
      try {
        await this.host.speak(callId, piece, ref);
        if (!(await played)) return { interrupted: true, heard: heard.join(" ") };
      } catch (err) {
        this.speaking.delete(ref);
        throw err;
      } finally {
        options.signal?.removeEventListener("abort", abort);
      }
      heard.push(piece);
    }
    return { interrupted: false, heard: heard.join(" ") };
  }

  /** Opens a turn: the next final transcript answers it. */
  listen(callId: string, turnToken: string): void {
    this.state(callId).turn = turnToken;
  }

  /** call.speak.ended: the piece `ref` is over (`completed`, or cut short by a hang-up). */
  spoken(ref: string, status: string | undefined): void {
    this.finish(ref, status === undefined || status === "completed");
  }

  /** call.transcription: interim words are the caller talking; final ones are what they said. */
  transcript(callId: string, text: string, isFinal: boolean): void {
    const state = this.state(callId);
    const words = text.trim();
    if (!isFinal) {
      if (words !== "" && !state.talking) {
        state.talking = true;
        this.host.heard(callId, { type: "speech-start", turnToken: state.turn });
      }
      return;
    }
    if (state.talking) {
      state.talking = false;
      this.host.heard(callId, { type: "speech-end" });
    }
    if (words !== "") this.host.heard(callId, { type: "speech", text: words, turnToken: state.turn });
  }

  /** A call ended: whatever it was saying counts as cut off, and its turn state goes. */
  ended(callId: string): void {
    for (const [ref, pending] of this.speaking) if (pending.callId === callId) this.finish(ref, false);
    this.listening.delete(callId);
  }

  private state(callId: string): Listening {
    let state = this.listening.get(callId);
    if (!state) this.listening.set(callId, (state = { talking: false }));
    return state;
  }

  private finish(ref: string, played: boolean): void {
    const pending = this.speaking.get(ref);
    this.speaking.delete(ref);
    pending?.done(played);
  }
}

/** `text` in pieces Telnyx's speak takes: whole sentences, each piece at most MAX_PIECE characters. */
export function pieces(text: string): string[] {
  const whole = text.trim();
  if (whole.length <= MAX_PIECE) return whole ? [whole] : [];
  const out: string[] = [];
  let current = "";
  for (const sentence of sentences(text)) {
    for (let i = 0; i < sentence.length; i += MAX_PIECE) {
      const part = sentence.slice(i, i + MAX_PIECE);
      if (current && current.length + 1 + part.length > MAX_PIECE) {
        out.push(current);
        current = "";
      }
      current = current ? `${current} ${part}` : part;
    }
  }
  if (current) out.push(current);
  return out;
}
