/**
 * A call's life, apart from its conversation: its record and transcript,
 * the state table's moves, timers that stop with it, hanging up at the
 * carrier and recording the end (ours, whatever the carrier reports
 * meanwhile). The session (session.ts) adds what is said and heard.
 */
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CallProvider } from "../providers/types.js";
import { deferred } from "../util/deferred.js";
import type { TurnResponder } from "./responder.js";
import { canTransition, isAnsweredState, isTerminal } from "./state.js";
import type { CallRecord, LiveState, TerminalState, TranscriptEntry } from "./types.js";

/** What a call needs from the manager: the config, the store and listeners. */
export interface SessionHost {
  readonly config: VoiceCallConfig;
  readonly responder?: TurnResponder;
  /** The record changed: written to the store and told to listeners. */
  persist(call: LiveCall): void;
  /** A transcript line: stored and told to listeners. */
  transcribed(entry: TranscriptEntry): void;
  /** The call reached its end state. */
  ended(call: LiveCall): void;
  /** Work nobody awaits: a failure is logged, never an unhandled rejection. */
  background(work: Promise<unknown>, what: string): void;
}

export abstract class LiveCall {
  readonly transcript: TranscriptEntry[];
  readonly log: Logger;
  protected readonly answered = deferred<void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** We are hanging up: how the call ends, whatever the carrier reports meanwhile. */
  protected ending?: { state: TerminalState; reason: string };

  constructor(
    readonly record: CallRecord,
    readonly provider: CallProvider | undefined,
    protected readonly host: SessionHost,
    log: Logger,
    restored?: TranscriptEntry[],
  ) {
    this.transcript = restored ?? [];
    this.log = log.child({ callId: record.callId, provider: record.provider });
    this.answered.promise.catch(() => undefined);
    if (isAnsweredState(record.state)) this.answered.resolve();
  }

  get callId(): string {
    return this.record.callId;
  }

  get ended(): boolean {
    return isTerminal(this.record.state);
  }

  /** What the conversation stops when the call ends (or the service stops): playback, turns, answers. */
  protected abstract stopConversation(why: VoiceCallError): void;
  /** The moment before the end is recorded (keys pressed just before it still count). */
  protected beforeEnd(): void {}

  transition(to: LiveState): boolean {
    const from = this.record.state;
    if (from === to) return true;
    if (!canTransition(from, to)) {
      this.log.debug({ from, to }, "state change refused");
      return false;
    }
    this.record.state = to;
    this.host.persist(this);
    return true;
  }

  /** Records the end: timers stop, what is playing stops, whoever waits is told. */
  finish(state: TerminalState, reason: string): void {
    if (this.ended) return;
    this.beforeEnd();
    this.record.state = state;
    this.record.endedAt = new Date().toISOString();
    this.record.endReason = reason;
    this.stopWaiting(new VoiceCallError("CALL_ENDED", `call ${this.callId} ended (${state}: ${reason})`));
    this.log.info({ state, reason }, "call ended");
    this.host.persist(this);
    this.host.ended(this);
  }

  /** Timers cleared, playback stopped, waiters rejected with `why` (the call ended, or the service is stopping). */
  stopWaiting(why: VoiceCallError): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.stopConversation(why);
    this.answered.reject(why);
  }

  /** Hangs up at the carrier first, then records the end (ours, whatever the carrier reports meanwhile). */
  async hangupAndFinish(state: TerminalState, reason: string): Promise<void> {
    if (this.ended || this.ending) return;
    this.ending = { state, reason };
    const providerCallId = this.record.providerCallId;
    try {
      if (providerCallId && this.provider) await this.provider.hangup(providerCallId);
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, "hang-up at the carrier failed");
    } finally {
      this.finish(state, reason);
    }
  }

  /** Ends the call from a timer: nobody awaits it. */
  endInBackground(state: TerminalState, reason: string): void {
    this.host.background(this.hangupAndFinish(state, reason), "ending a call");
  }

  /** Runs `fn` after `ms` unless the call ends first. */
  after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  /** Ends the call at maxDurationSeconds from its answer (a restored call keeps its original deadline). */
  limitDuration(): void {
    const { maxDurationSeconds } = this.host.config;
    const answeredAt = this.record.answeredAt ? Date.parse(this.record.answeredAt) : Date.now();
    const left = answeredAt + maxDurationSeconds * 1000 - Date.now();
    this.after(Math.max(0, left), () => this.endInBackground("timeout", `max duration ${maxDurationSeconds} s reached`));
  }

  assertLive(): void {
    if (this.ended) {
      throw new VoiceCallError("CALL_ENDED", `call ${this.callId} has ended (${this.record.state}: ${this.record.endReason ?? "no reason"})`);
    }
  }

  protected addTranscript(speaker: TranscriptEntry["speaker"], kind: TranscriptEntry["kind"], text: string, origin?: TranscriptEntry["origin"], playedMs?: number): void {
    const entry: TranscriptEntry = {
      callId: this.callId,
      at: new Date().toISOString(),
      speaker,
      kind,
      text,
      turn: this.record.turn,
      ...(origin ? { origin } : {}),
      ...(playedMs !== undefined ? { playedMs } : {}),
    };
    this.transcript.push(entry);
    this.host.transcribed(entry);
  }

  protected async waitAnswered(): Promise<void> {
    if (isAnsweredState(this.record.state)) return;
    await this.answered.promise;
  }

  protected providerOf(): CallProvider {
    if (!this.provider) throw new VoiceCallError("UNAVAILABLE", `provider ${this.record.provider} is not available in this service`);
    return this.provider;
  }

  protected providerCallId(): string {
    const id = this.record.providerCallId;
    if (!id) throw new VoiceCallError("INVALID_STATE", `call ${this.callId} has not reached its carrier yet`);
    return id;
  }
}
