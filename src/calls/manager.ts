/**
 * CallManager: the one facade every surface calls. It holds the table of
 * calls (each a CallSession: turns, speech queue, barge-in), routes new
 * calls to a carrier, enforces capacity and the inbound policy, hands each
 * carrier event to its call, reaps stale calls, and takes
 * calls back after a restart. Every change reaches the store as it happens.
 */
import { randomUUID } from "node:crypto";
import type { CallMode, ProviderId, VoiceCallConfig } from "../config/schema.js";
import { E164_PATTERN } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CallProvider, ProviderEvent } from "../providers/types.js";
import type { Expectation } from "../speech/types.js";
import type { TurnResponder } from "./responder.js";
import { routeCall } from "./routing.js";
import { Admission } from "./admission.js";
import { reconcileCall } from "./reconcile.js";
import { CallSession, type SessionHost } from "./session.js";
import { isAnsweredState, isTerminal } from "./state.js";
import type { CallRepository, LoadedStore, StoreHealth } from "../store/records.js";
import type { CallRecord, CallState, CallView, TranscriptEntry, TransferAttempt } from "./types.js";

export { UNATTENDED_MESSAGE } from "./session.js";

export type ManagerEvent =
  | { type: "call"; call: CallRecord }
  | { type: "transcript"; entry: TranscriptEntry };

export interface InitiateRequest {
  to?: string;
  message?: string;
  mode?: CallMode;
  provider?: ProviderId;
  /** Keys pressed once the call connects, before the message (an IVR's menu); conversation mode only. */
  dtmfSequence?: string;
  /** The agent session the call belongs to; kept on the call record. */
  sessionKey?: string;
  requesterSessionKey?: string;
  /** The gateway agent that owns the call: trusted callers only (operators, core), never a model's arguments. */
  agentId?: string;
  /** Record this call (true) or not (false), whatever recording.* and its number say. */
  record?: boolean;
  /** Tell a person from an answering machine first (true) or not (false), whatever outbound.amd.enabled says. */
  amd?: boolean;
}

export interface CallManagerOptions {
  config: VoiceCallConfig;
  providers: ReadonlyMap<ProviderId, CallProvider>;
  store: CallRepository;
  loaded?: LoadedStore;
  logger: Logger;
  /** Answers inbound callers when no agent drives the call (responseModel). */
  responder?: TurnResponder;
  /** On a shared store: the live calls of every instance (cluster.maxConcurrentCalls). */
  clusterLive?: (except?: string) => Promise<number>;
}

const ORPHAN_TTL_MS = 10_000;
const DTMF_PATTERN = /^[0-9A-D*#w]{1,64}$/;
const DESTINATION_PATTERN = /^(\+[1-9]\d{1,14}|[0-9*#]{1,32}|sips?:[^\s]+|[A-Za-z0-9._-]{1,64})$/;

export class CallManager {
  private readonly config: VoiceCallConfig;
  private readonly providers: ReadonlyMap<ProviderId, CallProvider>;
  private readonly store: CallRepository;
  private readonly log: Logger;
  private readonly calls = new Map<string, CallSession>();
  private readonly byProviderId = new Map<string, string>();
  private readonly orphans = new Map<string, { at: number; events: ProviderEvent[] }>();
  private readonly listeners = new Set<(event: ManagerEvent) => void>();
  /** What every session reaches the store, the listeners and the live count through. */
  private readonly host: SessionHost;
  private reaper?: NodeJS.Timeout;
  private stopped = false;
  /** Calls not ended yet, counted as they start and end (the table also holds ended ones). */
  private active = 0;
  private readonly admission: Admission;

  constructor(options: CallManagerOptions) {
    this.config = options.config;
    this.providers = options.providers;
    this.store = options.store;
    this.log = options.logger;
    this.admission = new Admission(this.config, this.store, () => this.active, options.clusterLive);
    this.host = {
      config: this.config,
      responder: options.responder,
      persist: (session) => this.persist(session),
      transcribed: (entry) => {
        this.store.appendTranscript(entry);
        this.emit({ type: "transcript", entry });
      },
      ended: () => {
        this.active -= 1;
        this.forgetOldEnded();
      },
      background: (work, what) => this.background(work, what),
    };
    if (options.loaded) this.adopt(options.loaded);
  }

  /** Starts providers and timers, and checks restored calls with their carriers. */
  async start(): Promise<void> {
    for (const provider of this.providers.values()) await provider.start((event) => this.onProviderEvent(provider, event));
    const reaperMs = Math.max(1000, Math.min(30_000, (this.config.staleCallReaperSeconds * 1000) / 4));
    this.reaper = setInterval(() => this.sweep(), reaperMs);
    this.reaper.unref();
    await this.reconcileRestored();
  }

  /** `handOver`: calls still up are left at their carrier for another instance to take over (a drained instance on a shared store). */
  async stop(options: { handOver?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.reaper) clearInterval(this.reaper);
    const stopping = new VoiceCallError("UNAVAILABLE", "the service is stopping");
    for (const call of this.calls.values()) call.stopWaiting(stopping);
    for (const provider of this.providers.values()) await provider.stop(options);
    await this.store.close();
  }

  /** Stops taking new calls (the instance is stopping); calls in progress go on. */
  drain(): void {
    this.admission.draining = true;
  }

  get draining(): boolean {
    return this.admission.draining;
  }

  /** Resolves with the calls still in progress once none is, or after `timeoutMs`; `progress` hears the count every `everyMs`. */
  async settle(timeoutMs: number, progress?: (left: number) => void, everyMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let told = Date.now();
    while (this.active > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(250, Math.max(1, deadline - Date.now()))));
      if (progress && Date.now() - told >= everyMs && this.active > 0) {
        told = Date.now();
        progress(this.active);
      }
    }
    return this.active;
  }

  /** How many listeners receive call events (control API subscribers among them). */
  get eventListeners(): number {
    return this.listeners.size;
  }

  onEvent(listener: (event: ManagerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---------------------------------------------------------------- commands

  async initiateCall(request: InitiateRequest): Promise<{ callId: string; initiated: true; provider: ProviderId; state: CallState }> {
    const to = request.to ?? this.config.toNumber;
    if (!to) throw new VoiceCallError("INVALID_PARAMS", "to: required (no toNumber is configured)", [{ path: "to", message: "required" }]);
    if (!DESTINATION_PATTERN.test(to)) {
      throw new VoiceCallError("INVALID_PARAMS", "to: expected an E.164 number, an extension or a SIP URI", [
        { path: "to", message: "expected an E.164 number, an extension or a SIP URI" },
      ]);
    }
    const route = routeCall(this.config, to, request.provider);
    const provider = this.providers.get(route.provider);
    if (!provider) {
      throw new VoiceCallError("UNAVAILABLE", `provider ${route.provider} (chosen by ${route.reason}) is not available in this service`);
    }
    if (provider.capabilities.e164Only && !E164_PATTERN.test(to)) {
      throw new VoiceCallError("INVALID_PARAMS", `to: provider ${provider.id} needs an E.164 number`, [
        { path: "to", message: `provider ${provider.id} needs an E.164 number` },
      ]);
    }
    const mode = request.mode ?? this.config.outbound.defaultMode;
    if (request.dtmfSequence !== undefined) {
      if (mode !== "conversation") {
        const why = 'needs mode "conversation" (a notify call hangs up after its message; send keys with dtmf once it exists)';
        throw new VoiceCallError("INVALID_PARAMS", `dtmfSequence: ${why}`, [{ path: "dtmfSequence", message: why }]);
      }
      if (!provider.capabilities.dtmfOut) throw new VoiceCallError("UNSUPPORTED", `provider ${provider.id} cannot send DTMF (dtmfSequence)`);
    }
    this.admission.assertCanPlace();
    await this.admission.assertClusterRoom();
    const call = this.track({
      callId: randomUUID(),
      provider: provider.id,
      direction: "outbound",
      mode,
      from: this.config.fromNumber,
      to,
      state: "initiated",
      createdAt: new Date().toISOString(),
      turn: 0,
      message: request.message,
      sessionKey: request.sessionKey ?? request.requesterSessionKey,
      ...(request.agentId ? { agentId: request.agentId } : {}),
    });
    call.dtmfSequence = request.dtmfSequence;
    call.recordAsked = request.record;
    call.amdAsked = request.amd;
    if (!this.store.health.writable) {
      // Not placed: a call the log cannot hold would be lost on a restart. Its end is queued with it.
      call.finish("failed", "not placed: the call log cannot be written");
      this.admission.assertStoreWritable();
    }
    call.log.info({ to, mode, route: route.reason }, "placing call");
    try {
      const amd = request.amd ?? this.config.outbound.amd.enabled;
      const { providerCallId } = await provider.placeCall({ callId: call.callId, to, from: this.config.fromNumber, ...(amd ? { amd } : {}) });
      this.bindProviderId(call, providerCallId);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      call.finish("failed", `provider refused the call: ${message}`);
      throw new VoiceCallError("PROVIDER_ERROR", `${provider.id} could not place the call: ${message}`);
    }
    call.after(this.config.ringTimeoutMs, () => {
      if (!isAnsweredState(call.record.state)) call.endInBackground("no-answer", `not answered within ${this.config.ringTimeoutMs} ms`);
    });
    return { callId: call.callId, initiated: true, provider: provider.id, state: call.record.state };
  }

  /** Speaks `message`, then waits for what the caller says next. */
  async continueCall(callId: string, message: string, options: { expect?: Expectation; digits?: number } = {}): Promise<{ transcript: string }> {
    const transcript = await this.liveCall(callId).ask(message, { expect: options.expect, digits: options.digits, timeoutMs: this.config.transcriptTimeoutMs });
    return { transcript };
  }

  async speak(callId: string, message: string): Promise<void> {
    await this.liveCall(callId).tell(message);
  }

  async sendDtmf(callId: string, digits: string): Promise<void> {
    if (!DTMF_PATTERN.test(digits)) {
      throw new VoiceCallError("INVALID_PARAMS", "digits: expected 0-9, A-D, * or # (w pauses 0.5 s)", [
        { path: "digits", message: "expected 0-9, A-D, * or # (w pauses 0.5 s)" },
      ]);
    }
    await this.liveCall(callId).pressKeys(digits);
  }

  /**
   * Hands the caller to a person (blind, or warm where the carrier has it): see calls/transfer.ts. `to` is
   * checked as a destination of the call's own carrier.
   */
  async transferCall(callId: string, request: { to: string; mode?: "blind" | "warm"; message?: string }): Promise<TransferAttempt & { callId: string; transferred: boolean; state: CallState }> {
    const call = this.liveCall(callId);
    const { to } = request;
    if (!DESTINATION_PATTERN.test(to)) {
      throw new VoiceCallError("INVALID_PARAMS", "to: expected an E.164 number, an extension or a SIP URI", [{ path: "to", message: "expected an E.164 number, an extension or a SIP URI" }]);
    }
    if (call.provider?.capabilities.e164Only && !E164_PATTERN.test(to)) {
      throw new VoiceCallError("INVALID_PARAMS", `to: provider ${call.provider.id} needs an E.164 number`, [{ path: "to", message: `provider ${call.provider.id} needs an E.164 number` }]);
    }
    const attempt = await call.transfer(to, { mode: request.mode, message: request.message, ringTimeoutMs: this.config.ringTimeoutMs });
    return { callId, transferred: attempt.outcome === "connected", ...attempt, state: call.record.state };
  }

  /** Hangs up a call; `afterSpeech`: once what is queued to be said has played (at most 30 s). */
  async endCall(callId: string, options: { afterSpeech?: boolean; reason?: string } = {}): Promise<{ state: CallState }> {
    const call = this.calls.get(callId);
    if (!call) throw notFound(callId);
    const why = options.reason ?? "ended by request";
    if (!call.ended) await (options.afterSpeech ? call.hangupAfterSpeech(why, 30_000) : call.hangupAndFinish("hangup-bot", why));
    const { writable, reason } = this.store.health;
    if (!writable) {
      throw new VoiceCallError(
        "STORE_UNAVAILABLE",
        `call ${callId} ended at the carrier, but the call log cannot be written (${reason}); its record waits in memory and is written when the disk takes it`,
      );
    }
    return { state: call.record.state };
  }

  /** A realtime model's question about the call it is on (by the carrier's call id): see CallSession.consult. */
  async consult(providerCallId: string, question: string, signal?: AbortSignal): Promise<string> {
    const callId = this.byProviderId.get(providerCallId);
    const call = callId ? this.calls.get(callId) : undefined;
    if (!call || call.ended) throw new VoiceCallError("CALL_ENDED", `no call in progress for ${providerCallId}`);
    return call.consult(question, signal);
  }

  getCall(idOrProviderId: string): CallView | undefined {
    const call = this.find(idOrProviderId);
    return call ? { ...call.record, transcript: [...call.transcript] } : undefined;
  }

  /** Every call held in memory, or only those not ended yet. */
  listCalls(options: { activeOnly?: boolean } = {}): CallRecord[] {
    const out: CallRecord[] = [];
    for (const call of this.calls.values()) if (!options.activeOnly || !call.ended) out.push({ ...call.record });
    return out;
  }

  /** Whether the call log takes writes, and why not. */
  storeHealth(): StoreHealth {
    return this.store.health;
  }

  /** Throws NOT_FOUND or CALL_ENDED unless the call exists and is live. */
  assertCallLive(callId: string): void {
    this.liveCall(callId);
  }

  // ---------------------------------------------------------- provider events

  /** One carrier event; a fault in handling it is logged, never thrown into the carrier's loop. */
  private onProviderEvent(provider: CallProvider, event: ProviderEvent): void {
    try {
      this.handleProviderEvent(provider, event);
    } catch (err) {
      this.log.error({ err: err instanceof Error ? err.message : String(err), type: event.type, providerCallId: event.providerCallId }, "handling a carrier event failed");
    }
  }

  private handleProviderEvent(provider: CallProvider, event: ProviderEvent): void {
    if (this.stopped) return;
    if (event.type === "inbound") return void this.onInbound(provider, event);
    const callId = this.byProviderId.get(event.providerCallId);
    const call = callId ? this.calls.get(callId) : undefined;
    if (!call) {
      // The carrier can report a call before placeCall has returned its id.
      const orphan = this.orphans.get(event.providerCallId) ?? { at: Date.now(), events: [] };
      orphan.events.push(event);
      this.orphans.set(event.providerCallId, orphan);
      return;
    }
    call.apply(event);
  }

  private onInbound(provider: CallProvider, event: Extract<ProviderEvent, { type: "inbound" }>): void {
    const call = this.track({
      callId: randomUUID(),
      provider: provider.id,
      direction: "inbound",
      mode: "conversation",
      from: event.from,
      to: event.to,
      state: "initiated",
      createdAt: new Date().toISOString(),
      turn: 0,
    });
    this.bindProviderId(call, event.providerCallId);
    const refusal = this.admission.inboundRefusal(event.from, event.to);
    if (refusal) return this.refuseInbound(provider, call, event, refusal);
    if (!this.admission.clusterLimited) return this.answerInbound(provider, call, event);
    void this.admission.clusterRefusal(call.callId).then((full) => (full ? this.refuseInbound(provider, call, event, full) : this.answerInbound(provider, call, event)));
  }

  private refuseInbound(provider: CallProvider, call: CallSession, event: Extract<ProviderEvent, { type: "inbound" }>, refusal: string): void {
    call.log.info({ from: event.from, to: event.to, refusal }, "inbound call rejected");
    call.finish("hangup-bot", `rejected: ${refusal}`);
    void provider.reject(event.providerCallId, refusal).catch((err) => call.log.warn({ err }, "reject failed"));
  }

  private answerInbound(provider: CallProvider, call: CallSession, event: Extract<ProviderEvent, { type: "inbound" }>): void {
    if (call.ended) return;
    call.transition("ringing");
    call.log.info({ from: event.from, to: event.to }, "answering inbound call");
    provider.answer(event.providerCallId).catch((err) => {
      call.finish("error", `answer failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  // ----------------------------------------------------------- bookkeeping

  private track(record: CallRecord, restored?: TranscriptEntry[]): CallSession {
    const call = new CallSession(record, this.providers.get(record.provider), this.host, this.log, restored);
    this.calls.set(record.callId, call);
    if (!isTerminal(record.state)) this.active += 1;
    if (record.providerCallId) this.byProviderId.set(record.providerCallId, record.callId);
    if (!restored) this.persist(call);
    return call;
  }

  private bindProviderId(call: CallSession, providerCallId: string): void {
    call.record.providerCallId = providerCallId;
    this.byProviderId.set(providerCallId, call.callId);
    this.persist(call);
    const orphan = this.orphans.get(providerCallId);
    if (orphan) {
      this.orphans.delete(providerCallId);
      for (const event of orphan.events) call.apply(event);
    }
  }

  private persist(call: { record: CallRecord }): void {
    this.store.appendCall(call.record);
    this.emit({ type: "call", call: { ...call.record } });
  }

  private emit(event: ManagerEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.warn({ err: String(err) }, "event listener failed");
      }
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, orphan] of this.orphans) if (now - orphan.at > ORPHAN_TTL_MS) this.orphans.delete(id);
    const limitMs = this.config.staleCallReaperSeconds * 1000;
    if (limitMs === 0) return;
    for (const call of this.calls.values()) {
      // A call that was answered is a conversation: maxDurationSeconds bounds it, never the reaper.
      if (call.ended || call.record.answeredAt || isAnsweredState(call.record.state)) continue;
      if (now - Date.parse(call.record.createdAt) > limitMs) {
        call.endInBackground("timeout", `stale: never answered within ${this.config.staleCallReaperSeconds} s`);
      }
    }
  }

  /** Ended calls beyond keepEndedCalls leave memory (the log keeps them). */
  private forgetOldEnded(): void {
    const keep = this.config.keepEndedCalls;
    if (this.calls.size - this.active <= keep) return;
    for (const [id, call] of this.calls) {
      if (this.calls.size - this.active <= keep) break;
      if (!call.ended) continue;
      this.calls.delete(id);
      if (call.record.providerCallId) this.byProviderId.delete(call.record.providerCallId);
    }
  }

  // -------------------------------------------------------------- restore

  private adopt(loaded: LoadedStore): void {
    for (const record of loaded.calls.values()) {
      this.track({ ...record }, loaded.transcripts.get(record.callId) ?? []);
    }
    for (const warning of loaded.warnings) this.log.warn(warning);
  }

  private async reconcileRestored(): Promise<void> {
    for (const call of [...this.calls.values()]) if (!call.ended) await reconcileCall(call, (work, what) => this.background(work, what));
  }

  /**
   * On a shared store: calls another instance had (its lease ran out), claimed for this one in the store;
   * each is checked with its carrier and taken back as after a restart.
   */
  async takeOver(loaded: LoadedStore & { from: ReadonlyMap<string, string> }): Promise<void> {
    for (const record of loaded.calls.values()) {
      if (this.calls.has(record.callId)) continue;
      const call = this.track({ ...record }, loaded.transcripts.get(record.callId) ?? []);
      const fromNode = loaded.from.get(record.callId);
      call.log.warn({ fromNode }, "taking over a call whose instance stopped renewing its lease");
      await reconcileCall(call, (work, what) => this.background(work, what), fromNode);
    }
    for (const warning of loaded.warnings) this.log.warn(warning);
  }

  /** Calls not ended yet. */
  get activeCalls(): number {
    return this.active;
  }

  // ---------------------------------------------------------------- helpers

  private find(idOrProviderId: string): CallSession | undefined {
    return this.calls.get(idOrProviderId) ?? this.calls.get(this.byProviderId.get(idOrProviderId) ?? "");
  }

  private liveCall(callId: string): CallSession {
    const call = this.find(callId);
    if (!call) throw notFound(callId);
    call.assertLive();
    return call;
  }

  /** Work nobody awaits (timers, carrier events): a failure is logged, never an unhandled rejection. */
  private background(work: Promise<unknown>, what: string): void {
    work.catch((err) => this.log.error({ err: err instanceof Error ? err.message : String(err) }, `${what} failed`));
  }
}

function notFound(callId: string): VoiceCallError {
  return new VoiceCallError("NOT_FOUND", `no call with id ${callId}`);
}
