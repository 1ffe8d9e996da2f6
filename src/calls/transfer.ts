/**
 * A blind transfer on one call: what is queued to be said first (or the
 * transfer's own message to the caller), then the carrier dials the person;
 * each attempt is a leg of the call's record and a line of its transcript;
 * connected, the call ends as transferred, otherwise the caller stays.
 */
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CallProvider } from "../providers/types.js";
import { carrierFailure } from "./carrier-failure.js";
import type { CallRecord, TerminalState, TransferAttempt } from "./types.js";

/** What a transfer needs of its call (the session). */
export interface TransferredLine {
  readonly record: CallRecord;
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
}

export async function transferCall(line: TransferredLine, to: string, options: { message?: string; ringTimeoutMs: number }): Promise<TransferAttempt> {
  const { record, provider } = line;
  if (!provider) throw new VoiceCallError("UNAVAILABLE", `provider ${record.provider} is not available in this service`);
  if (!provider.transfer) throw new VoiceCallError("UNSUPPORTED", `provider ${provider.id} cannot transfer calls`);
  await line.waitAnswered();
  await line.sayFirst(options.message);
  line.assertLive();
  const providerCallId = record.providerCallId;
  if (!providerCallId) throw new VoiceCallError("INVALID_STATE", `call ${record.callId} has not reached its carrier yet`);
  line.log.info("transferring the call");
  const result = await provider.transfer(providerCallId, { to, ringTimeoutMs: options.ringTimeoutMs }).catch(carrierFailure(provider, "transfer"));
  const attempt: TransferAttempt = {
    to,
    mode: "blind",
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
