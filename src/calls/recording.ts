/**
 * Which calls are recorded, where their WAVs go, and what is kept: a call's
 * own `record` first, then its number's `recording`, then `recording.*`.
 * Recordings live beside the call log (`<store>/recordings/<callId>.wav`);
 * those of calls the log no longer keeps (beyond keepEndedCalls) are removed
 * at start.
 */
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import type { RecordingChannels } from "../audio/recorder.js";
import type { VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { CallProvider } from "../providers/types.js";
import type { CallRecord, CallRecording } from "./types.js";

export interface RecordingPlan {
  channels: RecordingChannels;
  consentMessage?: string;
}

/** How `call` is recorded, or undefined when it is not. `asked`: the call's own record flag. */
export function recordingPlan(config: VoiceCallConfig, call: Pick<CallRecord, "direction" | "to" | "from">, asked?: boolean): RecordingPlan | undefined {
  const ours = call.direction === "inbound" ? call.to : call.from;
  const number = ours ? config.numbers[ours]?.recording : undefined;
  if (!(asked ?? number?.enabled ?? config.recording.enabled)) return undefined;
  const consentMessage = number?.consentMessage ?? config.recording.consentMessage;
  return { channels: config.recording.channels, ...(consentMessage ? { consentMessage } : {}) };
}

export const recordingsDir = (storeDir: string) => join(storeDir, "recordings");
export const recordingPath = (storeDir: string, callId: string) => join(recordingsDir(storeDir), `${callId}.wav`);
/** Where a recorded call goes on being recorded after a transfer put it through (the carrier's mix), beside its first file. */
export const transferredRecordingPath = (path: string) => `${path.replace(/\.wav$/, "")}.transferred.wav`;

/** Removes the recordings of calls the log no longer keeps; returns how many. */
export function pruneRecordings(storeDir: string, kept: ReadonlyMap<string, unknown>): number {
  let names: string[];
  try {
    names = readdirSync(recordingsDir(storeDir));
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const callId = /^(.+?)(\.transferred)?\.wav$/.exec(name)?.[1];
    if (!callId || kept.has(callId)) continue;
    rmSync(join(recordingsDir(storeDir), name), { force: true });
    removed += 1;
  }
  return removed;
}

/** What starting a call's recording needs of the call (its session). */
export interface RecordedLine {
  record: CallRecord;
  provider: CallProvider | undefined;
  storeDir: string;
  plan: RecordingPlan | undefined;
  log: Logger;
  /** A recording line in the call's transcript. */
  note(text: string): void;
  persist(): void;
}

/**
 * Starts the call's recording, when it is recorded; returns the consent
 * message to say first. A carrier whose audio does not pass through us, or
 * a disk that takes nothing, leaves the call unrecorded with a transcript
 * line saying why, never without the call.
 */
export function startRecording(line: RecordedLine): string | undefined {
  const { plan, record, provider } = line;
  if (!plan) return undefined;
  const unrecorded = (why: string) => {
    line.log.warn({ reason: why }, "the call is not recorded");
    line.note(`not recorded: ${why}`);
  };
  if (!provider?.record || !record.providerCallId) {
    unrecorded(`${record.provider} calls' audio does not pass through this service`);
    return plan.consentMessage;
  }
  const path = recordingPath(line.storeDir, record.callId);
  const recording: CallRecording = { path, channels: plan.channels, startedAt: new Date().toISOString() };
  try {
    mkdirSync(dirname(path), { recursive: true });
    provider.record(record.providerCallId, {
      path,
      channels: plan.channels,
      failed: (reason) => {
        recording.failed = reason;
        line.note(`recording stopped: ${reason}`);
        line.persist();
      },
      done: (summary) => {
        Object.assign(recording, { durationMs: summary.durationMs, bytes: summary.bytes, sampleRate: summary.sampleRate }, summary.failed ? { failed: summary.failed } : {});
        line.persist();
      },
    });
  } catch (err) {
    unrecorded(err instanceof Error ? err.message : String(err));
    return plan.consentMessage;
  }
  record.recording = recording;
  line.persist();
  line.log.info({ path, channels: plan.channels }, "recording the call");
  return plan.consentMessage;
}
