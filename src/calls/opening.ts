/**
 * What a call does once it is answered, before anyone asks anything: an
 * IVR's keys first (dtmfSequence), on an outbound call with answering-
 * machine detection the verdict (and what a machine gets: nothing, or a
 * message after its beep), a recorded call's consent message, then
 * an inbound call's greeting (the
 * dialled number's own first), an outbound call's message (played to its
 * end in conversation mode: people answer the phone with "hello?"; in
 * notify mode followed by the hang-up), or a listening turn when there is
 * nothing to say.
 */
import type { VoiceCallConfig } from "../config/schema.js";
import { delay } from "../util/deferred.js";
import type { AmdVerdict } from "../audio/amd.js";
import type { Logger } from "../log.js";
import type { CallProvider } from "../providers/types.js";
import type { CallRecord, TerminalState, TranscriptEntry } from "./types.js";

/** What the opening script needs of its call (the session). */
export interface OpeningLine {
  readonly record: CallRecord;
  isOver(): boolean;
  /** Keys to press as soon as the call is answered. */
  readonly dtmfSequence?: string;
  /** Said before anything else on a recorded call (that it is recorded). */
  readonly consentMessage?: string;
  /** Answering-machine detection on an outbound call: what to do, and the detection (which records its verdict). */
  readonly amd?: { onMachine: "hangup" | "message" | "continue"; message?: string; detect(): Promise<AmdVerdict> };
  say(message: string, options: { origin: NonNullable<TranscriptEntry["origin"]>; thenListen: boolean; bargeIn: boolean }): Promise<unknown>;
  openTurn(): Promise<unknown>;
  /** The keys go out before anything is said, in the speech queue's order. */
  pressKeysFirst(digits: string): void;
  hangupAndFinish(state: TerminalState, reason: string): Promise<void>;
}

export async function openingScript(line: OpeningLine, config: VoiceCallConfig): Promise<void> {
  const { record } = line;
  if (line.dtmfSequence) line.pressKeysFirst(line.dtmfSequence);
  if (record.direction === "outbound" && line.amd) {
    // Listen first: a person says "hello?" and waits, a machine talks on.
    const verdict = await line.amd.detect();
    if (line.isOver()) return;
    if (verdict.outcome === "machine" && line.amd.onMachine === "hangup") return line.hangupAndFinish("hangup-bot", `answered by a machine (${verdict.reason})`);
    if (verdict.outcome === "machine" && line.amd.onMachine === "message") {
      // The detection waited for the greeting's end (its beep): the message is what the machine records.
      const message = line.amd.message ?? record.message;
      if (message) await line.say(message, { origin: "agent", thenListen: false, bargeIn: false });
      if (!line.isOver()) await line.hangupAndFinish("hangup-bot", "message left on an answering machine");
      return;
    }
  }
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

/** What answering-machine detection needs of its call (the session). */
export interface DetectedLine {
  record: CallRecord;
  provider: CallProvider | undefined;
  config: VoiceCallConfig;
  log: Logger;
  /** An amd line in the call's transcript. */
  note(text: string): void;
  persist(): void;
}

/** The opening script's detection on an outbound call that has it (its own `amd`, else outbound.amd.enabled): the verdict recorded and noted. */
export function machineDetection(line: DetectedLine, asked: boolean | undefined): Pick<OpeningLine, "amd"> {
  const { amd } = line.config.outbound;
  const { record, provider } = line;
  if (record.direction !== "outbound" || !(asked ?? amd.enabled)) return {};
  const detect = async (): Promise<AmdVerdict> => {
    const verdict: AmdVerdict =
      provider?.detectMachine && record.providerCallId
        ? await provider
            .detectMachine(record.providerCallId, { timeoutMs: amd.timeoutMs, ...(amd.onMachine === "message" ? { awaitBeepMs: amd.beepWaitMs } : {}) })
            .catch((err: Error) => ({ outcome: "unknown" as const, ms: 0, reason: `detection failed: ${err.message}` }))
        : { outcome: "unknown", ms: 0, reason: `${record.provider} calls' audio does not pass through this service` };
    record.amd = verdict;
    const who = verdict.outcome === "unknown" ? "not told" : `answered by a ${verdict.outcome === "human" ? "person" : "machine"}`;
    line.note(`${who}: ${verdict.reason} (${(verdict.ms / 1000).toFixed(1)} s)`);
    line.log.info({ outcome: verdict.outcome, ms: verdict.ms, reason: verdict.reason }, "answering-machine detection");
    line.persist();
    return verdict;
  };
  return { amd: { onMachine: amd.onMachine, ...(amd.message ? { message: amd.message } : {}), detect } };
}
