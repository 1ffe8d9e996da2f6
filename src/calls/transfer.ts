/**
 * A transfer on one call. Blind: what is queued to be said first (or the
 * transfer's own message to the caller), then the carrier dials the person
 * and puts them through once they answer. Warm: the caller holds while the
 * person is dialled and told the message alone, and accepts or declines.
 * Each attempt is a leg of the call's record and a line of its transcript;
 * connected, the call ends as transferred, otherwise the caller stays.
 */
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CallProvider, TransferRequest } from "../providers/types.js";
import { carrierFailure } from "./carrier-failure.js";
import { transferredRecordingPath } from "./recording.js";
import type { CallRecord, CallRecording, TerminalState, TranscriptEntry, TransferAttempt } from "./types.js";

/** What a transfer needs of its call (the session). */
export interface TransferredLine {
  readonly record: CallRecord;
  /** The call so far (the briefing's words when the agent has no summary). */
  readonly transcript: readonly TranscriptEntry[];
  readonly provider: CallProvider | undefined;
  readonly log: Logger;
  waitAnswered(): Promise<void>;
  /** Says the message to the caller (nothing else queued plays over it); without one, waits for what is queued. */
  sayFirst(message: string | undefined): Promise<void>;
  assertLive(): void;
  /** A transfer line in the call's transcript. */
  note(text: string): void;
  finish(state: TerminalState, reason: string): void;
  persist(): void;
  /** The agent's summary of the call for a warm transfer's person (inside the gateway its agent, else the responseModel); rejects when there is none. */
  summarise?(): Promise<string>;
}

/** What a warm transfer's person hears when the agent gives no message and no summary can be made. */
const DEFAULT_BRIEFING = "You have a call being transferred to you.";

/**
 * A warm transfer's briefing when the agent gave no message: the agent's
 * summary of the call, else one made from the transcript (who calls, and
 * their last words), else a bare "a call for you".
 */
async function summaryOf(line: TransferredLine): Promise<string> {
  const summary = await line.summarise?.().catch((err: unknown) => {
    line.log.info({ reason: err instanceof Error ? err.message : String(err) }, "no summary of the call for the briefing; the transcript's words instead");
    return undefined;
  });
  if (summary?.trim()) return summary.trim();
  const { record } = line;
  const said = line.transcript.filter((t) => t.speaker === "caller" && t.kind === "speech").slice(-2).map((t) => t.text).join(" ");
  const who = record.direction === "inbound" ? (record.from ? ` from ${record.from}` : "") : record.to ? ` with ${record.to}` : "";
  if (!said) return who ? `You have a call${who} being transferred to you.` : DEFAULT_BRIEFING;
  const words = said.length > 200 ? `${said.slice(0, 200).replace(/\s+\S*$/, "")} ...` : said.replace(/[.!?]+$/, "");
  return `You have a call${who} being transferred to you. They said: ${words}.`;
}

export async function transferCall(line: TransferredLine, to: string, options: { mode?: "blind" | "warm"; message?: string; ringTimeoutMs: number }): Promise<TransferAttempt> {
  const { record, provider } = line;
  const mode = options.mode ?? "blind";
  if (!provider) throw new VoiceCallError("UNAVAILABLE", `provider ${record.provider} is not available in this service`);
  if (!provider.transfer) throw new VoiceCallError("UNSUPPORTED", `provider ${provider.id} cannot transfer calls`);
  if (mode === "warm" && !provider.capabilities.warmTransfer) {
    throw new VoiceCallError("UNSUPPORTED", `mode: provider ${provider.id} has no warm transfer here (it needs our audio on the call: streaming.enabled on the cloud carriers); a blind transfer hands the caller over directly`, [{ path: "mode", message: `no warm transfer on ${provider.id}` }]);
  }
  await line.waitAnswered();
  // Blind: the message is the caller's; warm: it is the person's briefing, and the caller holds.
  await line.sayFirst(mode === "blind" ? options.message : undefined);
  const briefing = mode === "warm" ? (options.message ?? (await summaryOf(line))) : undefined;
  line.assertLive();
  const providerCallId = record.providerCallId;
  if (!providerCallId) throw new VoiceCallError("INVALID_STATE", `call ${record.callId} has not reached its carrier yet`);
  line.log.info("transferring the call");
  const result = await provider
    .transfer(providerCallId, {
      to,
      ringTimeoutMs: options.ringTimeoutMs,
      mode,
      ...(briefing !== undefined ? { briefing } : {}),
      ...(record.recording && !record.recording.failed ? { record: afterTransfer(line, record.recording) } : {}),
    })
    .catch(carrierFailure(provider, "transfer"));
  const attempt: TransferAttempt = {
    to,
    mode,
    at: new Date().toISOString(),
    outcome: result.outcome,
    ...(result.reason ? { reason: result.reason } : {}),
    ...(result.legId ? { legId: result.legId } : {}),
  };
  (record.transfers ??= []).push(attempt);
  line.note(`transfer to ${to}: ${result.outcome}${result.reason ? ` (${result.reason})` : ""}`);
  line.log.info({ outcome: result.outcome, reason: result.reason }, "transfer done");
  if (result.outcome === "connected") line.finish("transferred", `transferred to ${to}`);
  else line.persist();
  return attempt;
}

/**
 * A recorded call goes on being recorded once put through: our audio has
 * left it, so the carrier records the caller and the person (the PBX mixes
 * its bridge) into a second file beside the first.
 */
function afterTransfer(line: TransferredLine, recording: CallRecording): NonNullable<TransferRequest["record"]> {
  const path = transferredRecordingPath(recording.path);
  return {
    path,
    done: (summary) => {
      recording.afterTransfer = { path, ...summary };
      if (summary.failed) line.log.warn({ reason: summary.failed }, "the transferred call was not recorded");
      else line.log.info({ path, durationMs: summary.durationMs }, "recorded the transferred call");
      line.persist();
    },
  };
}
