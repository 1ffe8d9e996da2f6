import type { CallMode, ProviderId } from "../config/schema.js";
import { TERMINAL_STATES, type TerminalState, type TransferOutcome } from "../providers/types.js";

export { TERMINAL_STATES, type TerminalState };
export const LIVE_STATES = ["initiated", "ringing", "answered", "active", "speaking", "listening"] as const;

export type LiveState = (typeof LIVE_STATES)[number];
export type CallState = LiveState | TerminalState;

export type Direction = "outbound" | "inbound";
export type Speaker = "bot" | "caller";

export interface TranscriptEntry {
  callId: string;
  at: string;
  speaker: Speaker;
  /**
   * speech: words said; dtmf: keys pressed; interrupted: our message was cut
   * short, text is what was heard of it; unrecognised: the caller spoke but
   * recognition could not transcribe it, text says why; transfer: a transfer
   * was tried, text says to whom and how it went; recording: the recording
   * could not start or stopped early, text says why; amd: who answered an
   * outbound call (a person or a machine), and why.
   */
  kind: "speech" | "dtmf" | "interrupted" | "unrecognised" | "transfer" | "recording" | "amd";
  text: string;
  /**
   * The listening turn this line belongs to: a message that asks for an
   * answer opens turn n, and the caller's answer belongs to it too. Lines
   * said before any turn (a notify message) are turn 0.
   */
  turn: number;
  /** Our lines: composed by an agent, by the response model, or by the service itself (greetings, notices). */
  origin?: "agent" | "model" | "service";
  /** An interrupted line: how many ms of its audio went out before the caller cut in. */
  playedMs?: number;
}

export interface CallRecord {
  callId: string;
  provider: ProviderId;
  providerCallId?: string;
  direction: Direction;
  mode: CallMode;
  from?: string;
  to: string;
  state: CallState;
  createdAt: string;
  answeredAt?: string;
  endedAt?: string;
  /** Why the call ended, in words (the terminal state says how). */
  endReason?: string;
  /** Number of conversation turns opened so far. */
  turn: number;
  /** The opening message for outbound calls. */
  message?: string;
  /** The agent session the call belongs to (gateway session key), when the request named one. */
  sessionKey?: string;
  /** The gateway agent that owns the call, when a trusted caller named one (else the number's or the config's). */
  agentId?: string;
  /** Transfers tried on this call, in order: each is a leg of the call's record. */
  transfers?: TransferAttempt[];
  /** The call's recording: where, how, and (once closed) what it holds. */
  recording?: CallRecording;
  /** Who answered an outbound call with answering-machine detection, how it was told, and how long it took. */
  amd?: { outcome: "human" | "machine" | "unknown"; ms: number; reason: string };
}

export interface CallRecording {
  path: string;
  channels: "stereo" | "mono";
  startedAt: string;
  durationMs?: number;
  bytes?: number;
  sampleRate?: number;
  /** Why it stopped before the call did (a full disk). */
  failed?: string;
  /** After a transfer put the caller through: the caller and the person, as the carrier (the PBX) mixed them; `failed` says why not. */
  afterTransfer?: { path: string; durationMs?: number; bytes?: number; failed?: string };
}

export interface TransferAttempt {
  to: string;
  mode: "blind" | "warm";
  at: string;
  outcome: TransferOutcome;
  reason?: string;
  /** The carrier's id of the person's leg. */
  legId?: string;
}

export interface CallView extends CallRecord {
  transcript: TranscriptEntry[];
}
