/**
 * What a call does once it is answered, before anyone asks anything: an
 * IVR's keys first (dtmfSequence), a recorded call's consent message, then
 * an inbound call's greeting (the
 * dialled number's own first), an outbound call's message (played to its
 * end in conversation mode: people answer the phone with "hello?"; in
 * notify mode followed by the hang-up), or a listening turn when there is
 * nothing to say.
 */
import type { VoiceCallConfig } from "../config/schema.js";
import { delay } from "../util/deferred.js";
import type { CallRecord, TerminalState, TranscriptEntry } from "./types.js";

/** What the opening script needs of its call (the session). */
export interface OpeningLine {
  readonly record: CallRecord;
  isOver(): boolean;
  /** Keys to press as soon as the call is answered. */
  readonly dtmfSequence?: string;
  /** Said before anything else on a recorded call (that it is recorded). */
  readonly consentMessage?: string;
  say(message: string, options: { origin: NonNullable<TranscriptEntry["origin"]>; thenListen: boolean; bargeIn: boolean }): Promise<unknown>;
  openTurn(): Promise<unknown>;
  /** The keys go out before anything is said, in the speech queue's order. */
  pressKeysFirst(digits: string): void;
  hangupAndFinish(state: TerminalState, reason: string): Promise<void>;
}

export async function openingScript(line: OpeningLine, config: VoiceCallConfig): Promise<void> {
  const { record } = line;
  if (line.dtmfSequence) line.pressKeysFirst(line.dtmfSequence);
  if (line.consentMessage) await line.say(line.consentMessage, { origin: "service", thenListen: false, bargeIn: false });
  if (record.direction === "inbound") {
    const greeting = config.numbers[record.to]?.inboundGreeting ?? config.inboundGreeting;
    if (greeting) await line.say(greeting, { origin: "service", thenListen: true, bargeIn: true });
    else await line.openTurn();
    return;
  }
  if (!record.message) {
    await line.openTurn();
    return;
  }
  if (record.mode === "notify") {
    await line.say(record.message, { origin: "agent", thenListen: false, bargeIn: false });
    await delay(config.outbound.notifyHangupDelaySec * 1000);
    if (!line.isOver()) await line.hangupAndFinish("hangup-bot", "notify message delivered");
    return;
  }
  // The opening message plays to the end: people answer the phone with "hello?".
  await line.say(record.message, { origin: "agent", thenListen: true, bargeIn: false });
}
