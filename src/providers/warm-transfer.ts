/**
 * A warm transfer's person, alone with us before the caller is put through,
 * on every carrier that has one: a voicemail is recognised, the person
 * hears the briefing and accepts with 1 or declines. The carrier opens and
 * closes their line (BriefedLine); this decides.
 */
import type { AmdVerdict } from "../audio/amd.js";
import type { MediaCall } from "./media-carrier.js";
import type { ProviderEventBody, TerminalState, TransferOutcome, TransferResult } from "./types.js";

/** What briefing a warm transfer's person needs of the carrier: their line opened with audio and a voice, and closed. */
export interface BriefedLine {
  /** Their own bridge, audio and pipeline; their events go to `listener`. */
  open(listener: (event: ProviderEventBody) => void): Promise<MediaCall>;
  detectMachine(options: { timeoutMs: number }): Promise<AmdVerdict>;
  /** Refused: their leg is hung up and their line closed. */
  hangUp(person: MediaCall): Promise<void>;
  /** Accepted: their line closes, their channel stays (for the caller's bridge). */
  release(person: MediaCall): Promise<void>;
}

/** How long a briefed person has to press 1 or 2. */
const ANSWER_MS = 15_000;

/**
 * A warm transfer's person, alone with us: a voicemail is recognised
 * (answering-machine detection), the person hears the briefing and accepts
 * with 1 (or declines with 2, hangs up, or says nothing within 15 s).
 * Accepted: undefined (their channel is free to join the caller); otherwise
 * why not, their leg hung up.
 */
export async function briefPerson(line: BriefedLine, briefing: string): Promise<Omit<TransferResult, "legId"> | undefined> {
  const keys: string[] = [];
  let wake: (() => void) | undefined;
  let person: MediaCall | undefined;
  const refuse = async (outcome: TransferOutcome, reason: string) => {
    if (person) await line.hangUp(person);
    return { outcome, reason };
  };
  try {
    person = await line.open((event) => {
      if (event.type === "dtmf") keys.push(event.digits);
      if (event.type === "dtmf" || event.type === "ended") wake?.();
    });
    const verdict = await line.detectMachine({ timeoutMs: 4000 });
    if (verdict.outcome === "machine") return await refuse("voicemail", `a voicemail answered (${verdict.reason})`);
    await person.media!.speak(`${briefing} Press 1 to take the call, or 2 to decline.`, {});
    const until = performance.now() + ANSWER_MS;
    while (!person.ended && keys.length === 0 && performance.now() < until) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, Math.max(0, until - performance.now())).unref();
      });
    }
    if (person.ended) return { outcome: "declined", reason: "the person hung up" };
    if (keys[0] !== "1") return await refuse(keys.length ? "declined" : "no-answer", keys.length ? `the person pressed ${keys[0]}` : `the person did not answer the briefing within ${ANSWER_MS / 1000} s`);
    await line.release(person);
    return undefined;
  } catch (err) {
    return await refuse("failed", `the briefing failed: ${(err as Error).message}`);
  }
}

/** How the person's leg ended before they answered, as the transfer's outcome. */
export function unansweredOutcome(state: TerminalState): TransferOutcome {
  if (state === "busy" || state === "no-answer" || state === "failed") return state;
  // Answered and hung up, or refused at the phone.
  if (state === "hangup-user" || state === "completed") return "declined";
  return "failed";
}
