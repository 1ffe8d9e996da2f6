/**
 * CallManager: the one facade every surface calls. It owns the call table,
 * applies provider events through the state machine, runs the opening script
 * (notify / conversation / inbound greeting), conversation turns with
 * per-turn tokens, timers (ring, max duration, stale reaper), the inbound
 * policy, and writes every change to the store as it happens.
 */
import { randomUUID } from "node:crypto";
import type { CallMode, ProviderId, VoiceCallConfig } from "../config/schema.js";
import { E164_PATTERN } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CallProvider, ProviderEvent } from "../providers/types.js";
import type { Expectation } from "../speech/types.js";
import type { Responder } from "./responder.js";
import { routeCall } from "./routing.js";
import { canTransition, isAnsweredState, isTerminal } from "./state.js";
import type { CallStore, LoadedStore, StoreHealth } from "./store.js";
import type { CallRecord, CallState, CallView, LiveState, TerminalState, TranscriptEntry } from "./types.js";

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
}

export interface CallManagerOptions {
  config: VoiceCallConfig;
  providers: ReadonlyMap<ProviderId, CallProvider>;
  store: CallStore;
  loaded?: LoadedStore;
  logger: Logger;
  /** Answers inbound callers when no agent drives the call (responseModel). */
  responder?: Responder;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
  settled: boolean;
}

interface SayOptions {
  /** Who composed it: an agent, the response model, or the service itself (greetings, notices). */
  origin: NonNullable<TranscriptEntry["origin"]>;
  /** The message opens a listening turn (its answer may start during it). */
  thenListen: boolean;
  /** The caller may interrupt it (everything but an outbound call's opening message). */
  bargeIn: boolean;
  expect?: Expectation;
  /** An agent waits for the answer to the turn this message opens. */
  driven?: boolean;
  /** Not played if the caller has said more since callerWords had this value. */
  staleAfter?: number;
}

interface PendingTurn {
  token: string;
  reply: Deferred<string>;
  /** An agent waits for this answer (continue_call); otherwise an inbound call's answer goes to the responder. */
  driven: boolean;
}

/** Said to an inbound caller when no agent drives the call and no responseModel is configured (latency.ts skips it). */
export const UNATTENDED_MESSAGE = "Sorry, nobody can take your call right now. Please try again later. Goodbye.";

interface LiveCall {
  record: CallRecord;
  transcript: TranscriptEntry[];
  provider?: CallProvider;
  log: Logger;
  answered: Deferred<void>;
  /** Token of the current listening turn; speech for any other token is stale. */
  turnToken?: string;
  pending?: PendingTurn;
  /** Serializes what we say on the line, so two messages never overlap. */
  speech: Promise<unknown>;
  speaking?: AbortController;
  /** The message playing now may be cut short by the caller talking. */
  bargeable?: boolean;
  /**
   * Counts what the caller has said (final words): a reply composed before
   * the count changed answers words the caller has since added to. Onsets
   * alone do not count, or a cough during composing would silence the reply.
   */
  callerWords: number;
  /** Messages the caller has interrupted so far. */
  bargeIns: number;
  /** The caller was told nobody can answer. */
  unattended?: boolean;
  /** The caller is talking now (between a speech onset and its end). */
  callerSpeaking: boolean;
  /** Resolved when the caller stops talking. */
  quiet: Array<() => void>;
  timers: Set<NodeJS.Timeout>;
  /** Keys to press as soon as the call is answered. */
  dtmfSequence?: string;
  /** We are hanging up: how the call ends, whatever the carrier reports meanwhile. */
  ending?: { state: TerminalState; reason: string };
}

const ORPHAN_TTL_MS = 10_000;
/** Longest a message waits for the caller to stop talking before it plays anyway. */
const CALLER_QUIET_WAIT_MS = 5000;
/** After the caller stops, how long their final words may take to arrive (the recogniser's flush). */
const FINAL_WORDS_GRACE_MS = 300;
const MAX_SEEN_EVENTS = 4096;
const DTMF_PATTERN = /^[0-9A-D*#w]{1,64}$/;
const DESTINATION_PATTERN = /^(\+[1-9]\d{1,14}|[0-9*#]{1,32}|sips?:[^\s]+|[A-Za-z0-9._-]{1,64})$/;

export class CallManager {
  private readonly config: VoiceCallConfig;
  private readonly providers: ReadonlyMap<ProviderId, CallProvider>;
  private readonly store: CallStore;
  private readonly log: Logger;
  private readonly responder?: Responder;
  private readonly calls = new Map<string, LiveCall>();
  private readonly byProviderId = new Map<string, string>();
  private readonly seenEvents = new Set<string>();
  private readonly orphans = new Map<string, { at: number; events: ProviderEvent[] }>();
  private readonly listeners = new Set<(event: ManagerEvent) => void>();
  private reaper?: NodeJS.Timeout;
  private stopped = false;
  /** Calls not ended yet, counted as they start and end (the table also holds ended ones). */
  private active = 0;

  constructor(options: CallManagerOptions) {
    this.config = options.config;
    this.providers = options.providers;
    this.store = options.store;
    this.log = options.logger;
    this.responder = options.responder;
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

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reaper) clearInterval(this.reaper);
    for (const call of this.calls.values()) {
      for (const t of call.timers) clearTimeout(t);
      call.speaking?.abort();
      call.pending?.reply.reject(new VoiceCallError("UNAVAILABLE", "the service is stopping"));
    }
    for (const provider of this.providers.values()) await provider.stop();
    this.store.close();
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
    this.assertStoreWritable();
    this.assertCapacity();
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
    });
    call.dtmfSequence = request.dtmfSequence;
    if (!this.store.health.writable) {
      // Not placed: a call the log cannot hold would be lost on a restart. Its end is queued with it.
      this.finish(call, "failed", "not placed: the call log cannot be written");
      this.assertStoreWritable();
    }
    call.log.info({ to, mode, route: route.reason }, "placing call");
    try {
      const { providerCallId } = await provider.placeCall({ callId: call.record.callId, to, from: this.config.fromNumber });
      this.bindProviderId(call, providerCallId);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.finish(call, "failed", `provider refused the call: ${message}`);
      throw new VoiceCallError("PROVIDER_ERROR", `${provider.id} could not place the call: ${message}`);
    }
    this.after(call, this.config.ringTimeoutMs, () => {
      if (!isAnsweredState(call.record.state)) this.background(this.hangupAndFinish(call, "no-answer", `not answered within ${this.config.ringTimeoutMs} ms`), "ending a call");
    });
    return { callId: call.record.callId, initiated: true, provider: provider.id, state: call.record.state };
  }

  /** Speaks `message`, then waits for what the caller says next. */
  async continueCall(callId: string, message: string, options: { expect?: Expectation } = {}): Promise<{ transcript: string }> {
    const call = this.liveCall(callId);
    await this.waitAnswered(call);
    const token = await this.say(call, message, { origin: "agent", thenListen: true, bargeIn: true, expect: options.expect, driven: true });
    const pending = call.pending;
    if (!pending || pending.token !== token) throw new VoiceCallError("INVALID_STATE", "the turn was superseded by a newer one");
    const timeout = setTimeout(
      () => pending.reply.reject(new VoiceCallError("TIMEOUT", `the caller said nothing within ${this.config.transcriptTimeoutMs} ms`)),
      this.config.transcriptTimeoutMs,
    );
    try {
      return { transcript: await pending.reply.promise };
    } finally {
      clearTimeout(timeout);
    }
  }

  async speak(callId: string, message: string): Promise<void> {
    const call = this.liveCall(callId);
    await this.waitAnswered(call);
    await this.say(call, message, { origin: "agent", thenListen: false, bargeIn: true });
  }

  async sendDtmf(callId: string, digits: string): Promise<void> {
    if (!DTMF_PATTERN.test(digits)) {
      throw new VoiceCallError("INVALID_PARAMS", "digits: expected 0-9, A-D, * or # (w pauses 0.5 s)", [
        { path: "digits", message: "expected 0-9, A-D, * or # (w pauses 0.5 s)" },
      ]);
    }
    const call = this.liveCall(callId);
    const provider = this.providerOf(call);
    if (!provider.capabilities.dtmfOut) throw new VoiceCallError("UNSUPPORTED", `provider ${provider.id} cannot send DTMF`);
    await this.waitAnswered(call);
    await provider.sendDtmf(this.providerCallId(call), digits).catch(carrierFailure(provider, "send DTMF"));
    call.log.info({ digits: digits.length }, "sent DTMF");
  }

  async endCall(callId: string): Promise<{ state: CallState }> {
    const call = this.calls.get(callId);
    if (!call) throw notFound(callId);
    if (!isTerminal(call.record.state)) await this.hangupAndFinish(call, "hangup-bot", "ended by request");
    const { writable, reason } = this.store.health;
    if (!writable) {
      throw new VoiceCallError(
        "STORE_UNAVAILABLE",
        `call ${callId} ended at the carrier, but the call log cannot be written (${reason}); its record waits in memory and is written when the disk takes it`,
      );
    }
    return { state: call.record.state };
  }

  getCall(idOrProviderId: string): CallView | undefined {
    const call = this.calls.get(idOrProviderId) ?? this.calls.get(this.byProviderId.get(idOrProviderId) ?? "");
    return call ? { ...call.record, transcript: [...call.transcript] } : undefined;
  }

  /** Every call held in memory, or only those not ended yet. */
  listCalls(options: { activeOnly?: boolean } = {}): CallRecord[] {
    const out: CallRecord[] = [];
    for (const call of this.calls.values()) if (!options.activeOnly || !isTerminal(call.record.state)) out.push({ ...call.record });
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
    if (this.seenEvents.has(event.eventId)) {
      this.log.debug({ eventId: event.eventId }, "duplicate provider event ignored");
      return;
    }
    this.remember(event.eventId);
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
    this.apply(call, event);
  }

  private apply(call: LiveCall, event: ProviderEvent): void {
    if (isTerminal(call.record.state)) {
      // Words the recogniser finishes after the caller hung up are still theirs: recorded, answering nothing.
      if (event.type === "speech" && event.isFinal && event.text.trim()) this.addTranscript(call, "caller", "speech", event.text.trim());
      if (event.type === "unrecognised") this.addTranscript(call, "caller", "unrecognised", event.reason);
      return;
    }
    switch (event.type) {
      case "ringing":
        this.transition(call, "ringing");
        return;
      case "answered":
        this.onAnswered(call);
        return;
      case "speech-start":
        this.onSpeechStart(call);
        return;
      case "speech-end":
        call.callerSpeaking = false;
        for (const resolve of call.quiet.splice(0)) resolve();
        return;
      case "speech":
        this.onSpeech(call, event.text, event.isFinal, event.turnToken);
        return;
      case "dtmf":
        this.addTranscript(call, "caller", "dtmf", event.digits);
        call.pending?.reply.resolve(`[DTMF ${event.digits}]`);
        return;
      case "unrecognised":
        call.log.warn({ reason: event.reason }, "the caller's speech could not be transcribed");
        this.addTranscript(call, "caller", "unrecognised", event.reason);
        return;
      case "ended":
        this.finish(call, call.ending?.state ?? event.state, call.ending?.reason ?? event.reason ?? "ended by the carrier");
        return;
      case "inbound":
        return;
    }
  }

  private onInbound(provider: CallProvider, event: Extract<ProviderEvent, { type: "inbound" }>): void {
    const override = this.config.numbers[event.to];
    const policy = override?.inboundPolicy ?? this.config.inboundPolicy;
    const allowFrom = override?.allowFrom ?? this.config.allowFrom;
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
    const refusal =
      policy === "disabled"
        ? "inbound calls are disabled (inboundPolicy)"
        : policy === "allowlist" && !allowFrom.includes(event.from)
          ? "caller is not in allowFrom"
          : policy === "pairing" && !allowFrom.includes(event.from)
            ? "caller is not paired (pairing codes are not offered over voice; add the number to allowFrom)"
          : this.activeCount() > this.config.maxConcurrentCalls
            ? `maxConcurrentCalls (${this.config.maxConcurrentCalls}) reached`
            : !this.store.health.writable
              ? `the call log cannot be written (${this.store.health.reason})`
              : undefined;
    if (refusal) {
      call.log.info({ from: event.from, to: event.to, refusal }, "inbound call rejected");
      this.finish(call, "hangup-bot", `rejected: ${refusal}`);
      void call.provider?.reject(event.providerCallId, refusal).catch((err) => call.log.warn({ err }, "reject failed"));
      return;
    }
    this.transition(call, "ringing");
    call.log.info({ from: event.from, to: event.to }, "answering inbound call");
    call.provider?.answer(event.providerCallId).catch((err) => {
      this.finish(call, "error", `answer failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  private onAnswered(call: LiveCall): void {
    if (!this.transition(call, "answered")) return;
    call.record.answeredAt = new Date().toISOString();
    this.persist(call);
    call.answered.resolve();
    this.after(call, this.config.maxDurationSeconds * 1000, () => {
      this.background(this.hangupAndFinish(call, "timeout", `max duration ${this.config.maxDurationSeconds} s reached`), "ending a call");
    });
    void this.openingScript(call).catch((err) => {
      // A call that ended meanwhile is not a failure of the script.
      const ended = isTerminal(call.record.state) || (err instanceof VoiceCallError && err.code === "CALL_ENDED");
      if (!ended) call.log.warn({ err: String(err) }, "opening script failed");
    });
  }

  private async openingScript(call: LiveCall): Promise<void> {
    const { record } = call;
    if (call.dtmfSequence) this.pressKeysFirst(call, call.dtmfSequence);
    if (record.direction === "inbound") {
      const greeting = this.config.numbers[record.to]?.inboundGreeting ?? this.config.inboundGreeting;
      if (greeting) await this.say(call, greeting, { origin: "service", thenListen: true, bargeIn: true });
      else await this.openTurn(call);
      return;
    }
    if (!record.message) {
      await this.openTurn(call);
      return;
    }
    if (record.mode === "notify") {
      await this.say(call, record.message, { origin: "agent", thenListen: false, bargeIn: false });
      await delay(this.config.outbound.notifyHangupDelaySec * 1000);
      if (!isTerminal(call.record.state)) await this.hangupAndFinish(call, "hangup-bot", "notify message delivered");
      return;
    }
    // The opening message plays to the end: people answer the phone with "hello?".
    await this.say(call, record.message, { origin: "agent", thenListen: true, bargeIn: false });
  }

  /**
   * An IVR's menu first: the keys go out before anything is said, in the
   * speech queue's order, claimed at once (an agent's continue_call waiting
   * for the answer must not get ahead of the opening script).
   */
  private pressKeysFirst(call: LiveCall, digits: string): void {
    const provider = this.providerOf(call);
    const providerCallId = this.providerCallId(call);
    const keys = call.speech.then(() => provider.sendDtmf(providerCallId, digits));
    call.speech = keys.then(
      () => call.log.info({ digits: digits.length }, "sent the dtmfSequence"),
      (err) => call.log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not send the dtmfSequence"),
    );
  }

  /** The caller started talking: a message that may be interrupted stops now. */
  private onSpeechStart(call: LiveCall): void {
    call.callerSpeaking = true;
    if (!this.config.bargeIn.enabled || !call.speaking || !call.bargeable) return;
    call.log.info("barge-in: the caller spoke over us");
    call.speaking.abort("barge-in");
  }

  private onSpeech(call: LiveCall, text: string, isFinal: boolean, token: string | undefined): void {
    const provider = call.provider;
    const exact = provider?.capabilities.turnTokens ?? false;
    if (exact ? token !== call.turnToken : token !== undefined && token !== call.turnToken) {
      call.log.info({ turnToken: token }, "speech for a stale turn ignored");
      return;
    }
    if (!isFinal || text.trim() === "") return;
    call.callerWords += 1;
    this.addTranscript(call, "caller", "speech", text.trim());
    const pending = call.pending;
    if (pending && pending.token === call.turnToken) pending.reply.resolve(text.trim());
    if (call.record.direction === "inbound" && !pending?.driven) {
      void this.autoRespond(call).catch((err) => {
        if (!isTerminal(call.record.state)) call.log.warn({ err: err instanceof Error ? err.message : String(err) }, "auto-response failed");
      });
    }
  }

  /**
   * Answers an inbound caller no agent is talking to: the responseModel's
   * reply, unless the caller spoke again while it was being made (then the
   * newer words get their own reply). Without a model the caller is told so.
   */
  private async autoRespond(call: LiveCall): Promise<void> {
    const override = this.config.numbers[call.record.to];
    const model = override?.responseModel ?? this.config.responseModel;
    if (!this.responder || (!model && !this.responder.hasDefaultModel)) {
      if (call.unattended) return;
      call.unattended = true;
      call.log.info("no agent and no responseModel: telling the caller and hanging up");
      await this.say(call, UNATTENDED_MESSAGE, { origin: "service", thenListen: false, bargeIn: false });
      await this.hangupAndFinish(call, "hangup-bot", "no agent or responseModel to answer the call");
      return;
    }
    const heardAt = call.callerWords;
    const started = Date.now();
    const text = await this.responder.reply({ model, systemPrompt: override?.responseSystemPrompt ?? this.config.responseSystemPrompt, transcript: call.transcript });
    if (isTerminal(call.record.state)) return;
    if (!text) {
      call.log.warn("the response model gave nothing that can be spoken");
      return;
    }
    call.log.info({ ms: Date.now() - started }, "auto-response ready");
    try {
      await this.say(call, text, { origin: "model", thenListen: true, bargeIn: true, staleAfter: heardAt });
    } catch (err) {
      if (!(err instanceof VoiceCallError && err.code === "INTERRUPTED")) throw err;
    }
  }

  // ------------------------------------------------------------------ turns

  /**
   * Says `message` after anything already being said. With `thenListen`, the
   * message opens a new turn: caller input from its start on answers it, and
   * the carrier is asked to listen once the message has played. Returns that
   * turn's token. A message queued behind one the caller interrupted is not
   * played: it was composed before the caller's new words.
   */
  private say(call: LiveCall, message: string, options: SayOptions): Promise<string | undefined> {
    const bargeIns = call.bargeIns;
    const run = async (): Promise<string | undefined> => {
      this.assertLive(call);
      // Never start talking over the caller: wait until they stop, and for
      // their words to arrive, then decide whether this message still fits.
      if (options.bargeIn && call.callerSpeaking) {
        await this.untilCallerQuiet(call, CALLER_QUIET_WAIT_MS);
        await delay(FINAL_WORDS_GRACE_MS);
        this.assertLive(call);
      }
      if (call.bargeIns !== bargeIns || (options.staleAfter !== undefined && call.callerWords !== options.staleAfter)) {
        call.log.info("reply dropped: the caller spoke after it was composed");
        throw new VoiceCallError("INTERRUPTED", "not played: the caller spoke after this message was composed");
      }
      const provider = this.providerOf(call);
      const token = options.thenListen ? this.beginTurn(call, options.driven ?? false) : undefined;
      this.transition(call, "speaking");
      this.addTranscript(call, "bot", "speech", message, options.origin);
      const controller = new AbortController();
      call.speaking = controller;
      call.bargeable = options.bargeIn;
      let outcome;
      try {
        outcome = await provider.speak(this.providerCallId(call), message, { signal: controller.signal, turnToken: token, expect: options.expect });
      } catch (err) {
        // The line is not left "speaking" when the carrier could not play it.
        if (!isTerminal(call.record.state)) this.transition(call, "listening");
        return carrierFailure(provider, "speak")(err);
      } finally {
        if (call.speaking === controller) call.speaking = undefined;
      }
      this.assertLive(call);
      if (controller.signal.reason === "barge-in") {
        call.bargeIns += 1;
        // What the caller heard before cutting in: the sentences that played in full.
        this.addTranscript(call, "bot", "interrupted", outcome.heard);
      }
      this.transition(call, "listening");
      if (token !== undefined && call.turnToken === token) {
        await provider.listen(this.providerCallId(call), token, { expect: options.expect }).catch(carrierFailure(provider, "listen"));
      }
      return token;
    };
    const next = call.speech.then(run, run);
    call.speech = next.catch(() => undefined);
    return next;
  }

  /** Resolves when the caller stops talking, or after `maxMs` (a detector that never reports the end). */
  private untilCallerQuiet(call: LiveCall, maxMs: number): Promise<void> {
    if (!call.callerSpeaking) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      timer.unref();
      call.quiet.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Opens a listening turn without saying anything first. */
  private async openTurn(call: LiveCall): Promise<string> {
    const token = this.beginTurn(call, false);
    this.transition(call, "listening");
    const provider = this.providerOf(call);
    await provider.listen(this.providerCallId(call), token).catch(carrierFailure(provider, "listen"));
    return token;
  }

  /** Allocates the next turn and its token; any earlier pending turn is superseded. */
  private beginTurn(call: LiveCall, driven: boolean): string {
    const token = randomUUID();
    call.pending?.reply.reject(new VoiceCallError("INVALID_STATE", "the turn was superseded by a newer one"));
    call.turnToken = token;
    call.pending = { token, reply: deferred<string>(), driven };
    call.pending.reply.promise.catch(() => undefined);
    call.record.turn += 1;
    this.persist(call);
    return token;
  }

  // ----------------------------------------------------------- bookkeeping

  private track(record: CallRecord, restored?: TranscriptEntry[]): LiveCall {
    const call: LiveCall = {
      record,
      transcript: restored ?? [],
      provider: this.providers.get(record.provider),
      log: this.log.child({ callId: record.callId, provider: record.provider }),
      answered: deferred<void>(),
      speech: Promise.resolve(),
      callerWords: 0,
      callerSpeaking: false,
      quiet: [],
      bargeIns: 0,
      timers: new Set(),
    };
    call.answered.promise.catch(() => undefined);
    if (isAnsweredState(record.state)) call.answered.resolve();
    this.calls.set(record.callId, call);
    if (!isTerminal(record.state)) this.active += 1;
    if (record.providerCallId) this.byProviderId.set(record.providerCallId, record.callId);
    if (!restored) this.persist(call);
    return call;
  }

  private bindProviderId(call: LiveCall, providerCallId: string): void {
    call.record.providerCallId = providerCallId;
    this.byProviderId.set(providerCallId, call.record.callId);
    this.persist(call);
    const orphan = this.orphans.get(providerCallId);
    if (orphan) {
      this.orphans.delete(providerCallId);
      for (const event of orphan.events) this.apply(call, event);
    }
  }

  private transition(call: LiveCall, to: LiveState): boolean {
    const from = call.record.state;
    if (from === to) return true;
    if (!canTransition(from, to)) {
      call.log.debug({ from, to }, "state change refused");
      return false;
    }
    call.record.state = to;
    this.persist(call);
    return true;
  }

  private finish(call: LiveCall, state: TerminalState, reason: string): void {
    if (isTerminal(call.record.state)) return;
    this.active -= 1;
    call.record.state = state;
    call.record.endedAt = new Date().toISOString();
    call.record.endReason = reason;
    for (const t of call.timers) clearTimeout(t);
    call.timers.clear();
    call.speaking?.abort();
    const ended = new VoiceCallError("CALL_ENDED", `call ${call.record.callId} ended (${state}: ${reason})`);
    call.pending?.reply.reject(ended);
    call.pending = undefined;
    call.answered.reject(ended);
    call.log.info({ state, reason }, "call ended");
    this.persist(call);
    this.forgetOldEnded();
  }

  /** Hangs up at the carrier first, then records the end (ours, whatever the carrier reports meanwhile). */
  private async hangupAndFinish(call: LiveCall, state: TerminalState, reason: string): Promise<void> {
    if (isTerminal(call.record.state) || call.ending) return;
    call.ending = { state, reason };
    const providerCallId = call.record.providerCallId;
    try {
      if (providerCallId && call.provider) await call.provider.hangup(providerCallId);
    } catch (err) {
      call.log.warn({ err: err instanceof Error ? err.message : String(err) }, "hang-up at the carrier failed");
    } finally {
      this.finish(call, state, reason);
    }
  }

  private addTranscript(call: LiveCall, speaker: TranscriptEntry["speaker"], kind: TranscriptEntry["kind"], text: string, origin?: TranscriptEntry["origin"]): void {
    const entry: TranscriptEntry = { callId: call.record.callId, at: new Date().toISOString(), speaker, kind, text, turn: call.record.turn, ...(origin ? { origin } : {}) };
    call.transcript.push(entry);
    this.store.appendTranscript(entry);
    this.emit({ type: "transcript", entry });
  }

  private persist(call: LiveCall): void {
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

  private after(call: LiveCall, ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      call.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    call.timers.add(timer);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, orphan] of this.orphans) if (now - orphan.at > ORPHAN_TTL_MS) this.orphans.delete(id);
    const limitMs = this.config.staleCallReaperSeconds * 1000;
    if (limitMs === 0) return;
    for (const call of this.calls.values()) {
      if (isTerminal(call.record.state)) continue;
      if (now - Date.parse(call.record.createdAt) > limitMs) {
        this.background(this.hangupAndFinish(call, "timeout", `stale: not ended after ${this.config.staleCallReaperSeconds} s`), "ending a call");
      }
    }
  }

  private remember(eventId: string): void {
    this.seenEvents.add(eventId);
    if (this.seenEvents.size > MAX_SEEN_EVENTS) {
      const oldest = this.seenEvents.values().next().value;
      if (oldest !== undefined) this.seenEvents.delete(oldest);
    }
  }

  /** Ended calls beyond keepEndedCalls leave memory (the log keeps them). */
  private forgetOldEnded(): void {
    const keep = this.config.keepEndedCalls;
    if (this.calls.size - this.active <= keep) return;
    for (const [id, call] of this.calls) {
      if (this.calls.size - this.active <= keep) break;
      if (!isTerminal(call.record.state)) continue;
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
    for (const call of this.calls.values()) {
      if (isTerminal(call.record.state)) continue;
      const provider = call.provider;
      const providerCallId = call.record.providerCallId;
      if (!provider || !providerCallId) {
        call.log.warn("restored call cannot be checked with its carrier; kept until it ends or is reaped");
        continue;
      }
      let status;
      try {
        status = await provider.getCallStatus(providerCallId);
      } catch (err) {
        status = { status: "unknown" as const, reason: err instanceof Error ? err.message : String(err) };
      }
      if (status.status === "ended") {
        this.finish(call, status.state, `ended while the service was down${status.reason ? `: ${status.reason}` : ""}`);
        continue;
      } else if (status.status === "unknown") {
        call.log.warn({ reason: status.reason }, "restored call status unknown; kept");
        continue;
      }
      if (provider.readopt && !isAnsweredState(call.record.state)) {
        // Its setup (ring timer, answer) went with the old process.
        await this.hangupAndFinish(call, "error", "was still ringing when the service stopped");
        continue;
      }
      if (provider.readopt) {
        const taken = await provider.readopt(providerCallId);
        if (!taken.ok) {
          await this.hangupAndFinish(call, "error", `could not take the call back after a restart: ${taken.reason}`);
          continue;
        }
        // What was said before is in the transcript; from now on the caller is heard again.
        call.log.info("took the call back after a restart; listening");
        this.background(this.openTurn(call), "listening after a restart");
      }
      if (call.record.answeredAt) {
        const left = Date.parse(call.record.answeredAt) + this.config.maxDurationSeconds * 1000 - Date.now();
        this.after(call, Math.max(0, left), () => {
          this.background(this.hangupAndFinish(call, "timeout", `max duration ${this.config.maxDurationSeconds} s reached`), "ending a call");
        });
      }
    }
  }

  // ---------------------------------------------------------------- helpers

  private liveCall(callId: string): LiveCall {
    const call = this.calls.get(callId) ?? this.calls.get(this.byProviderId.get(callId) ?? "");
    if (!call) throw notFound(callId);
    this.assertLive(call);
    return call;
  }

  private assertLive(call: LiveCall): void {
    if (isTerminal(call.record.state)) {
      throw new VoiceCallError("CALL_ENDED", `call ${call.record.callId} has ended (${call.record.state}: ${call.record.endReason ?? "no reason"})`);
    }
  }

  private async waitAnswered(call: LiveCall): Promise<void> {
    if (isAnsweredState(call.record.state)) return;
    await call.answered.promise;
  }

  private providerOf(call: LiveCall): CallProvider {
    if (!call.provider) throw new VoiceCallError("UNAVAILABLE", `provider ${call.record.provider} is not available in this service`);
    return call.provider;
  }

  private providerCallId(call: LiveCall): string {
    const id = call.record.providerCallId;
    if (!id) throw new VoiceCallError("INVALID_STATE", `call ${call.record.callId} has not reached its carrier yet`);
    return id;
  }

  private activeCount(): number {
    return this.active;
  }

  /** Work nobody awaits (timers, carrier events): a failure is logged, never an unhandled rejection. */
  private background(work: Promise<unknown>, what: string): void {
    work.catch((err) => this.log.error({ err: err instanceof Error ? err.message : String(err) }, `${what} failed`));
  }

  private assertStoreWritable(): void {
    const { writable, reason } = this.store.health;
    if (!writable) throw new VoiceCallError("STORE_UNAVAILABLE", `no new calls while the call log cannot be written (${reason}); calls in progress go on`);
  }

  private assertCapacity(): void {
    if (this.activeCount() >= this.config.maxConcurrentCalls) {
      throw new VoiceCallError("LIMIT_REACHED", `maxConcurrentCalls (${this.config.maxConcurrentCalls}) reached; end a call first`);
    }
  }
}

/**
 * What a carrier or its speech engines threw, as PROVIDER_ERROR naming the
 * carrier and the step; our own typed errors (CALL_ENDED, ...) pass through.
 */
function carrierFailure(provider: CallProvider, step: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof VoiceCallError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new VoiceCallError("PROVIDER_ERROR", `${provider.id} could not ${step}: ${message}`);
  };
}

function notFound(callId: string): VoiceCallError {
  return new VoiceCallError("NOT_FOUND", `no call with id ${callId}`);
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const d: Deferred<T> = {
    promise: new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    }),
    settled: false,
    resolve(value) {
      if (d.settled) return;
      d.settled = true;
      resolve(value);
    },
    reject(err) {
      if (d.settled) return;
      d.settled = true;
      reject(err);
    },
  };
  return d;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
