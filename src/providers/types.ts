/**
 * The contract every carrier implements. Nothing outside providers/ knows a
 * carrier's name: differences are expressed as capability flags.
 */
import type { AmdVerdict } from "../audio/amd.js";
import type { RecordingChannels, RecordingSummary } from "../audio/recorder.js";
import type { ProviderId } from "../config/schema.js";
import type { ListenOptions, SpeakOptions, SpeakOutcome } from "../voice/pipeline.js";

/** How a call ended, as carriers report it and the call record keeps it. */
export const TERMINAL_STATES = [
  "completed",
  "busy",
  "no-answer",
  "failed",
  "hangup-user",
  "hangup-bot",
  "timeout",
  "error",
  /** Handed to a person by a blind transfer: the caller talks with them, we have left. */
  "transferred",
] as const;
export type TerminalState = (typeof TERMINAL_STATES)[number];

export interface ProviderCapabilities {
  /** Accepts inbound calls. */
  inbound: boolean;
  /** Can send DTMF digits into the call. */
  dtmfOut: boolean;
  /** Reaches only E.164 numbers (no extensions or SIP URIs). */
  e164Only: boolean;
  /** Echoes the turn token on speech events, so stale turns are rejected exactly. */
  turnTokens: boolean;
  /** Can brief the person of a transfer alone before putting the caller through (a warm transfer). */
  warmTransfer?: boolean;
}

interface EventBase {
  /**
   * Unique per event, minted by the carrier shell. A carrier's repeated
   * delivery never becomes a second event: the ingress acknowledges and
   * skips replayed webhooks before carrier code runs.
   */
  eventId: string;
  providerCallId: string;
  at: number;
}

export type ProviderEvent =
  | (EventBase & { type: "inbound"; from: string; to: string })
  | (EventBase & { type: "ringing" })
  | (EventBase & { type: "answered" })
  /** The caller started talking (voice activity): the cue for barge-in. */
  | (EventBase & { type: "speech-start"; turnToken?: string })
  /** The caller stopped talking (the silence that ends an utterance). */
  | (EventBase & { type: "speech-end" })
  /** The caller's words; `answered`: a realtime model on the line answers them itself. */
  | (EventBase & { type: "speech"; text: string; isFinal: boolean; turnToken?: string; answered?: boolean })
  /** What a realtime model on the line said, and how long it played. */
  | (EventBase & { type: "said"; text: string; playedMs?: number })
  /** The voice pipeline cannot go on (a realtime model closed its session). */
  | (EventBase & { type: "voice-closed"; reason: string })
  /** The model on the line hung up, after its last words played. */
  | (EventBase & { type: "hangup-requested"; reason: string })
  | (EventBase & { type: "unrecognised"; reason: string })
  | (EventBase & { type: "dtmf"; digits: string })
  | (EventBase & { type: "ended"; state: TerminalState; reason?: string });

export type ProviderEventSink = (event: ProviderEvent) => void;

/** An event as a provider composes it, before id, time and call id are stamped on. */
export type ProviderEventBody = ProviderEvent extends infer E
  ? E extends ProviderEvent
    ? Omit<E, "eventId" | "at" | "providerCallId">
    : never
  : never;

export interface PlaceCallRequest {
  /** Our call id, for providers that can carry it through the carrier. */
  callId: string;
  to: string;
  from?: string;
  /** The call asks for answering-machine detection: a carrier with its own (outbound.amd.detector "carrier") starts it with the call. */
  amd?: boolean;
  /** How long the phone may ring, where not the config's ringTimeoutMs (a transfer's person). */
  ringTimeoutMs?: number;
}

export type RemoteCallStatus =
  | { status: "active" }
  | { status: "ended"; state: TerminalState; reason?: string }
  /** Transient error or not known to the carrier: the call is kept, never falsely ended. */
  | { status: "unknown"; reason?: string };

export type { ListenOptions, SpeakOptions, SpeakOutcome } from "../voice/pipeline.js";

/** How a transfer went: the person took the call, or why not. */
export const TRANSFER_OUTCOMES = ["connected", "declined", "no-answer", "busy", "voicemail", "failed"] as const;
export type TransferOutcome = (typeof TRANSFER_OUTCOMES)[number];

export interface TransferRequest {
  /** Who takes the call: a number, or on the PBX an extension or SIP URI. */
  to: string;
  /** How long the person's phone may ring. */
  ringTimeoutMs: number;
  /** blind: put through as soon as they answer; warm: the caller holds, the person hears `briefing` alone and accepts (1) or declines (2). */
  mode: "blind" | "warm";
  /** What a warm transfer's person hears first. */
  briefing?: string;
  /**
   * A recorded call: once put through, the carrier records the caller and
   * the person (our audio has left the call) into a WAV at `path`; `done`
   * when the file is there, or why not. Carriers that cannot ignore it.
   */
  record?: { path: string; done(summary: { durationMs?: number; bytes?: number; failed?: string }): void };
}

export interface TransferResult {
  outcome: TransferOutcome;
  /** In words, where the carrier said more (a cause, a status). */
  reason?: string;
  /** The carrier's id of the person's leg, where it has one. */
  legId?: string;
}

export interface RecordingRequest {
  path: string;
  channels: RecordingChannels;
  /** The recording stopped early (a write failed: a full disk); the call goes on. */
  failed(reason: string): void;
  /** The recording is closed: what it holds. */
  done(summary: RecordingSummary): void;
}

export interface CallProvider {
  readonly id: ProviderId;
  readonly capabilities: ProviderCapabilities;
  /** Starts delivering events to `sink`. */
  start(sink: ProviderEventSink): Promise<void>;
  /**
   * Disconnects. Calls in progress are hung up, or with `handOver` left up at
   * the carrier for another instance to take over (carriers that can: the
   * PBX; the others hang up as without it).
   */
  stop(options?: { handOver?: boolean }): Promise<void>;
  placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }>;
  answer(providerCallId: string): Promise<void>;
  /** Refuses an inbound call that has not been answered. */
  reject(providerCallId: string, reason: string): Promise<void>;
  hangup(providerCallId: string): Promise<void>;
  /**
   * Blind transfer: dials `to` and, once the person answers, connects the
   * caller with them and leaves the call (our audio and listening stop; the
   * carrier reports no end for it). Any other outcome leaves the call as it
   * was. Absent: the carrier cannot transfer.
   */
  transfer?(providerCallId: string, request: TransferRequest): Promise<TransferResult>;
  /**
   * Records the call's audio from now on, both directions as heard, into a
   * WAV at `request.path`, until its media ends (then `request.done` gets the
   * summary). Absent: the carrier's audio does not pass through us.
   */
  record?(providerCallId: string, request: RecordingRequest): void;
  /**
   * Answering-machine detection on the far end's first seconds after the
   * answer (within `timeoutMs`); with `awaitBeepMs`, after a machine it also
   * waits (at most that long) for its greeting to end, so what follows is
   * recorded by it. Absent: the carrier's audio does not pass through us.
   */
  detectMachine?(providerCallId: string, options: { timeoutMs: number; awaitBeepMs?: number }): Promise<AmdVerdict>;
  /** Speaks `text`; resolves when it has been played, or early when `signal` aborts. */
  speak(providerCallId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome>;
  /** Opens a listening turn; speech events for it carry `turnToken` where supported. */
  listen(providerCallId: string, turnToken: string, options?: ListenOptions): Promise<void>;
  sendDtmf(providerCallId: string, digits: string): Promise<void>;
  /** `hint`: what the call record says of the call (a carrier that cannot look every call up by its id uses it). */
  getCallStatus(providerCallId: string, hint?: CallHint): Promise<RemoteCallStatus>;
  /**
   * Takes back a call still up at the carrier after this service restarted
   * (its media re-attached), or says why it cannot. Carriers without it keep
   * restored calls as they are.
   */
  readopt?(providerCallId: string, options?: { fromNode?: string } & CallHint): Promise<{ ok: true } | { ok: false; reason: string }>;
  /**
   * On a shared store: this instance takes the carrier's new inbound calls and hands each to the instance
   * `pick` names (null: it stops taking them; another instance does). Carriers whose inbound calls reach
   * whichever instance the load balancer picks have none.
   */
  dispatchInbound?(pick: (() => Promise<string | undefined>) | null): void;
  /** Carriers that call us back over the public internet: their webhook and media routes. */
  readonly ingress?: CarrierIngress;
  /**
   * Asks the carrier whether this config can place calls (credentials, caller
   * id, reachability) without placing one and without start(); for `voicecall setup`.
   */
  check?(): Promise<SetupFinding[]>;
}

/** One finding of `voicecall setup`: what was checked, how it went, and what to change. */
export interface SetupFinding {
  check: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  fix?: string;
}

/** A carrier's webhook request as the ingress hands it over, after the pre-auth limits. */
export interface WebhookRequest {
  /** The URL the carrier signed: the public webhook URL with this request's query. */
  url: string;
  /** Query parameters of the request. */
  query: URLSearchParams;
  /** Lower-cased header names. */
  headers: Readonly<Record<string, string | undefined>>;
  rawBody: Buffer;
  remoteAddress: string;
}

export interface WebhookReply {
  status: number;
  contentType?: string;
  body?: string;
}

export type WebhookVerdict =
  /** `replayKey` names this delivery: a second delivery with the same key is acknowledged and skipped. */
  | { ok: true; replayKey: string }
  | { ok: false; reason: string };

/** Webhooks of one carrier, on serve.path. */
export interface WebhookHandler {
  /** Headers without which a request is refused before its body is read. */
  readonly requiredHeaders: readonly string[];
  /** Checks the signature (a pure check: no side effects). */
  verify(request: WebhookRequest): WebhookVerdict | Promise<WebhookVerdict>;
  /** Acts on a verified, first-seen request. */
  handle(request: WebhookRequest): Promise<WebhookReply>;
  /**
   * The carrier's ids of the call a webhook is about (as placeCall or the inbound event named it), so a
   * webhook for a call another instance holds is handed to it. Absent or empty: handled here.
   */
  callsOf?(request: WebhookRequest): string[];
  /**
   * What asks the carrier to send this webhook again in a moment (its call is between instances: the one
   * that had it is gone and another has not taken it over yet). Absent: such a webhook is answered 503.
   */
  retryLater?(request: WebhookRequest): WebhookReply;
  /** What a replayed delivery is answered with (acknowledged, no side effects). */
  replayReply(request: WebhookRequest): WebhookReply;
}

/** One media WebSocket as a carrier sees it. */
export interface StreamConnection {
  send(text: string): void;
  close(code?: number, reason?: string): void;
  readonly remoteAddress: string;
}

/** What a started stream receives from then on. */
export interface StreamSession {
  message(text: string): void;
  /** The socket closed (either side). */
  closed(): void;
}

/** Media WebSockets of one carrier, on streaming.streamPath. */
export interface StreamHandler {
  /**
   * A message on a socket that has not started: a session once it is a valid
   * start bound to its call, undefined to wait for more (a "connected"
   * greeting); throws a VoiceCallError to refuse the socket.
   */
  open(text: string, connection: StreamConnection): StreamSession | undefined;
  /** The carrier's id of the call a stream's start message is for (undefined: not a start), so a stream for another instance's call goes to it. */
  callOf?(text: string): string | undefined;
}

/** What a carrier reached over public webhooks mounts on the service's HTTP server. */
export interface CarrierIngress {
  webhook?: WebhookHandler;
  stream?: StreamHandler;
}

/** What a restored call's record says of it, for its carrier. */
export interface CallHint {
  direction?: "inbound" | "outbound";
  /** The call had been answered. */
  answered?: boolean;
}
