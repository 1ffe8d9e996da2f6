/**
 * One call's conversation, on its life (live-call.ts: record, states,
 * timers, the end): the speech queue (two messages never overlap),
 * listening turns with per-turn tokens, barge-in, keys, and auto-responses
 * (answering.ts); what it does once answered is opening.ts, its recording
 * recording.ts, a transfer transfer.ts. The CallManager holds the table of
 * sessions and everything across calls (routing, capacity, de-dup, reaper,
 * restore); a session reaches the store and the listeners through its host.
 */
import { randomUUID } from "node:crypto";
import { defaultStoreDir } from "../config/load.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CallProvider, ProviderEvent } from "../providers/types.js";
import type { Expectation } from "../speech/types.js";
import { deferred, delay, type Deferred } from "../util/deferred.js";
import { Answering, type AnsweredLine } from "./answering.js";
import { CallerActivity } from "./caller-activity.js";
import { machineDetection, openingScript, type OpeningLine } from "./opening.js";
import { transferCall } from "./transfer.js";
import { recordingPlan, startRecording } from "./recording.js";
import { KeyCollector } from "./keys.js";
import { carrierFailure } from "./carrier-failure.js";
import { LiveCall, type SessionHost } from "./live-call.js";

export type { SessionHost } from "./live-call.js";
import type { CallRecord, TranscriptEntry, TransferAttempt } from "./types.js";

/** Said to an inbound caller when no agent drives the call and no responseModel is configured (latency.ts skips it). */
export const UNATTENDED_MESSAGE = "Sorry, nobody can take your call right now. Please try again later. Goodbye.";

/** Longest a message waits for the caller to stop talking before it plays anyway. */
const CALLER_QUIET_WAIT_MS = 5000;
/** After the caller stops, how long their final words may take to arrive (the recogniser's flush). */
const FINAL_WORDS_GRACE_MS = 300;
/** What the agent is asked for a warm transfer's briefing when it gave no message, and how long it may take. */
const TRANSFER_SUMMARY =
  "This call is being transferred to a person, who will hear your answer alone before taking it. In one or two short sentences, tell them who is calling and what the caller wants.";
const TRANSFER_SUMMARY_MS = 8000;

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
  /** Keys the answer is expected to have. */
  digits?: number;
  /** Not played if the caller has said more since callerWords had this value. */
  staleAfter?: number;
}

interface PendingTurn {
  token: string;
  reply: Deferred<string>;
  /** An agent waits for this answer (continue_call); otherwise an inbound call's answer goes to the responder. */
  driven: boolean;
  /** Keys expected: the answer is complete at this many (or at #, or after the inter-digit timeout). */
  digits?: number;
}

export class CallSession extends LiveCall implements AnsweredLine {
  /** Keys to press as soon as the call is answered. */
  dtmfSequence?: string;
  /** The call's own choice to be recorded (or not), over the number's and the config's. */
  recordAsked?: boolean;
  /** The call's own choice of answering-machine detection (or not), over outbound.amd.enabled. */
  amdAsked?: boolean;
  /** Token of the current listening turn; speech for any other token is stale. */
  private turnToken?: string;
  private pending?: PendingTurn;
  /** Serializes what we say on the line, so two messages never overlap. */
  private speech: Promise<unknown> = Promise.resolve();
  private speaking?: AbortController;
  /** The message playing now may be cut short by the caller talking. */
  private bargeable = false;
  /**
   * Counts what the caller has said (final words): a reply composed before
   * the count changed answers words the caller has since added to. Onsets
   * alone do not count, or a cough during composing would silence the reply.
   */
  private utterances = 0;
  /** Messages the caller has interrupted so far. */
  private bargeIns = 0;
  /** Answers from the responder: the caller's turns no agent drives, a realtime model's consults. */
  private readonly answers: Answering;
  private readonly caller = new CallerActivity();
  /** Keys pressed, collected into answers. */
  private readonly keys: KeyCollector;

  constructor(record: CallRecord, provider: CallProvider | undefined, host: SessionHost, log: Logger, restored?: TranscriptEntry[]) {
    super(record, provider, host, log, restored);
    this.answers = new Answering(this, host.config, host.responder);
    this.keys = new KeyCollector(host.config.dtmfInterDigitTimeoutMs, (answer) => this.completeKeys(answer));
  }

  /** How many final utterances the caller has made. */
  get callerWords(): number {
    return this.utterances;
  }


  // ---------------------------------------------------------------- commands

  /** Speaks `message`, then waits up to `timeoutMs` for what the caller says next. */
  async ask(message: string, options: { expect?: Expectation; digits?: number; timeoutMs: number }): Promise<string> {
    await this.waitAnswered();
    const token = await this.say(message, { origin: "agent", thenListen: true, bargeIn: true, expect: options.expect, driven: true, digits: options.digits });
    const pending = this.pending;
    if (!pending || pending.token !== token) throw new VoiceCallError("INVALID_STATE", "the turn was superseded by a newer one");
    const timeout = setTimeout(
      () => pending.reply.reject(new VoiceCallError("TIMEOUT", `the caller said nothing within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    try {
      return await pending.reply.promise;
    } finally {
      clearTimeout(timeout);
    }
  }

  /** Speaks an agent's message; the caller may interrupt it. */
  async tell(message: string): Promise<void> {
    await this.waitAnswered();
    await this.say(message, { origin: "agent", thenListen: false, bargeIn: true });
  }

  async pressKeys(digits: string): Promise<void> {
    const provider = this.providerOf();
    if (!provider.capabilities.dtmfOut) throw new VoiceCallError("UNSUPPORTED", `provider ${provider.id} cannot send DTMF`);
    await this.waitAnswered();
    await provider.sendDtmf(this.providerCallId(), digits).catch(carrierFailure(provider, "send DTMF"));
    this.log.info({ digits: digits.length }, "sent DTMF");
  }

  /**
   * Blind transfer: `message` is said to the caller first (when given), then
   * the carrier dials `to`; once the person answers, the caller is with them
   * and the call ends as transferred. Warm: the person hears `message` (or
   * the agent's summary of the call) alone first. Any other outcome leaves
   * the caller with us, and says why. Each attempt is a leg of the call's record.
   */
  async transfer(to: string, options: { mode?: "blind" | "warm"; message?: string; ringTimeoutMs: number }): Promise<TransferAttempt> {
    return transferCall(
      {
        record: this.record,
        transcript: this.transcript,
        provider: this.provider,
        log: this.log,
        waitAnswered: () => this.waitAnswered(),
        sayFirst: async (message) => {
          if (message) await this.say(message, { origin: "agent", thenListen: false, bargeIn: false });
          else await this.speech;
        },
        assertLive: () => this.assertLive(),
        note: (text) => this.addTranscript("bot", "transfer", text, "agent"),
        finish: (state, reason) => this.finish(state, reason),
        persist: () => this.host.persist(this),
        summarise: () => this.answers.consult(TRANSFER_SUMMARY, AbortSignal.timeout(TRANSFER_SUMMARY_MS)),
      },
      to,
      options,
    );
  }

  /** Opens a listening turn without saying anything first (an inbound call without a greeting, a call taken back). */
  async openTurn(): Promise<string> {
    const token = this.beginTurn(false);
    this.transition("listening");
    const provider = this.providerOf();
    await provider.listen(this.providerCallId(), token).catch(carrierFailure(provider, "listen"));
    return token;
  }

  // ------------------------------------------------------------------ events

  /** A carrier event for this call. */
  apply(event: ProviderEvent): void {
    if (this.ended) {
      // Words the recogniser finishes after the caller hung up are still theirs: recorded, answering nothing.
      if (event.type === "speech" && event.isFinal && event.text.trim()) this.addTranscript("caller", "speech", event.text.trim());
      if (event.type === "unrecognised") this.addTranscript("caller", "unrecognised", event.reason);
      return;
    }
    switch (event.type) {
      case "ringing":
        this.transition("ringing");
        return;
      case "answered":
        this.onAnswered();
        return;
      case "speech-start":
        this.onSpeechStart();
        return;
      case "speech-end":
        this.caller.stopped();
        return;
      case "speech":
        this.onSpeech(event.text, event.isFinal, event.turnToken, event.answered === true);
        return;
      case "said":
        this.addTranscript("bot", "speech", event.text, "model");
        return;
      case "voice-closed":
        void this.hangupAndFinish("error", `the voice pipeline closed: ${event.reason}`).catch(() => undefined);
        return;
      case "hangup-requested":
        void this.hangupAndFinish("hangup-bot", event.reason).catch(() => undefined);
        return;
      case "dtmf":
        this.onKeys(event.digits);
        return;
      case "unrecognised":
        this.log.warn({ reason: event.reason }, "the caller's speech could not be transcribed");
        this.addTranscript("caller", "unrecognised", event.reason);
        return;
      case "ended":
        this.finish(this.ending?.state ?? event.state, this.ending?.reason ?? event.reason ?? "ended by the carrier");
        return;
      case "inbound":
        return;
    }
  }

  private onAnswered(): void {
    if (!this.transition("answered")) return;
    this.record.answeredAt = new Date().toISOString();
    this.host.persist(this);
    this.answered.resolve();
    this.limitDuration();
    // Recorded calls: the recording starts before anything is said, the consent message first.
    const consent = startRecording({
      record: this.record,
      provider: this.provider,
      storeDir: defaultStoreDir(this.host.config),
      plan: recordingPlan(this.host.config, this.record, this.recordAsked),
      log: this.log,
      note: (text) => this.addTranscript("bot", "recording", text),
      persist: () => this.host.persist(this),
    });
    const line: OpeningLine = {
      record: this.record,
      dtmfSequence: this.dtmfSequence,
      ...(consent ? { consentMessage: consent } : {}),
      ...machineDetection({ record: this.record, provider: this.provider, config: this.host.config, log: this.log, note: (text) => this.addTranscript("caller", "amd", text), persist: () => this.host.persist(this) }, this.amdAsked),
      isOver: () => this.ended,
      say: (message, options) => this.say(message, options),
      openTurn: () => this.openTurn(),
      pressKeysFirst: (digits) => this.pressKeysFirst(digits),
      hangupAndFinish: (state, reason) => this.hangupAndFinish(state, reason),
    };
    void openingScript(line, this.host.config).catch((err) => {
      // A call that ended meanwhile is not a failure of the script.
      const ended = this.ended || (err instanceof VoiceCallError && err.code === "CALL_ENDED");
      if (!ended) this.log.warn({ err: String(err) }, "opening script failed");
    });
  }

  /**
   * An IVR's menu first: the keys go out before anything is said, in the
   * speech queue's order, claimed at once (an agent's continue_call waiting
   * for the answer must not get ahead of the opening script).
   */
  pressKeysFirst(digits: string): void {
    const provider = this.providerOf();
    const providerCallId = this.providerCallId();
    const keys = this.speech.then(() => provider.sendDtmf(providerCallId, digits));
    this.speech = keys.then(
      () => this.log.info({ digits: digits.length }, "sent the dtmfSequence"),
      (err) => this.log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not send the dtmfSequence"),
    );
  }

  /**
   * Keys form one answer, as an IVR reads them: complete at `#` (not part of
   * the answer), at the turn's expected count, or when no key follows within
   * dtmfInterDigitTimeoutMs. A lone `#` is an answer of its own.
   */
  private onKeys(digits: string): void {
    this.keys.push(digits, this.pending?.token === this.turnToken ? this.pending?.digits : undefined);
  }

  private completeKeys(answer: string): void {
    if (this.ended) return;
    this.addTranscript("caller", "dtmf", answer);
    this.pending?.reply.resolve(`[DTMF ${answer}]`);
  }

  /** The caller started talking: a message that may be interrupted stops now. */
  private onSpeechStart(): void {
    this.caller.started();
    if (!this.host.config.bargeIn.enabled || !this.speaking || !this.bargeable) return;
    this.log.info("barge-in: the caller spoke over us");
    this.speaking.abort("barge-in");
  }

  private onSpeech(text: string, isFinal: boolean, token: string | undefined, answered = false): void {
    const exact = this.provider?.capabilities.turnTokens ?? false;
    if (exact ? token !== this.turnToken : token !== undefined && token !== this.turnToken) {
      this.log.info({ turnToken: token }, "speech for a stale turn ignored");
      return;
    }
    if (!isFinal || text.trim() === "") return;
    this.utterances += 1;
    this.addTranscript("caller", "speech", text.trim());
    const pending = this.pending;
    if (pending && pending.token === this.turnToken) pending.reply.resolve(text.trim());
    // A realtime model on the line answers the caller itself.
    if (this.record.direction === "inbound" && !pending?.driven && !answered) {
      void this.answers.respond().catch((err) => {
        // The caller hung up while the answer was being made: the carrier says so before the call's end reaches us.
        if (this.ended || (err instanceof VoiceCallError && err.code === "CALL_ENDED")) return;
        this.log.warn({ err: err instanceof Error ? err.message : String(err) }, "auto-response failed");
      });
    }
  }

  /** A realtime model's question about this call (see Answering.consult). */
  consult(question: string, signal?: AbortSignal): Promise<string> {
    return this.answers.consult(question, signal);
  }

  // The session's side of answering (AnsweredLine).

  sayAnswer(text: string, options: { opensTurn: boolean; staleAfter: number }): Promise<string | undefined> {
    return this.say(text, { origin: "model", thenListen: options.opensTurn, bargeIn: true, staleAfter: options.staleAfter });
  }

  async sayUnattended(): Promise<void> {
    await this.say(UNATTENDED_MESSAGE, { origin: "service", thenListen: false, bargeIn: false });
    await this.hangupAndFinish("hangup-bot", "no agent or responseModel to answer the call");
  }

  async listenAgain(turn: string): Promise<void> {
    if (turn !== this.turnToken || this.ended) return;
    const provider = this.providerOf();
    await provider.listen(this.providerCallId(), turn).catch(carrierFailure(provider, "listen"));
  }

  // ------------------------------------------------------------------ turns

  /**
   * Says `message` after anything already being said. With `thenListen`, the
   * message opens a new turn: caller input from its start on answers it, and
   * the carrier is asked to listen once the message has played. Returns that
   * turn's token. A message queued behind one the caller interrupted is not
   * played: it was composed before the caller's new words.
   */
  private say(message: string, options: SayOptions): Promise<string | undefined> {
    const bargeIns = this.bargeIns;
    const run = async (): Promise<string | undefined> => {
      this.assertLive();
      // Never start talking over the caller: wait until they stop, and for
      // their words to arrive, then decide whether this message still fits.
      if (options.bargeIn && this.caller.speaking) {
        await this.caller.untilQuiet(CALLER_QUIET_WAIT_MS);
        await delay(FINAL_WORDS_GRACE_MS);
        this.assertLive();
      }
      if (this.bargeIns !== bargeIns || (options.staleAfter !== undefined && this.callerWords !== options.staleAfter)) {
        this.log.info("reply dropped: the caller spoke after it was composed");
        throw new VoiceCallError("INTERRUPTED", "not played: the caller spoke after this message was composed");
      }
      const provider = this.providerOf();
      const token = options.thenListen ? this.beginTurn(options.driven ?? false, options.digits) : undefined;
      this.transition("speaking");
      this.addTranscript("bot", "speech", message, options.origin);
      const controller = new AbortController();
      this.speaking = controller;
      this.bargeable = options.bargeIn;
      let outcome;
      try {
        outcome = await provider.speak(this.providerCallId(), message, { signal: controller.signal, turnToken: token, expect: options.expect, voice: this.voice() });
      } catch (err) {
        // The line is not left "speaking" when the carrier could not play it.
        if (!this.ended) this.transition("listening");
        return carrierFailure(provider, "speak")(err);
      } finally {
        if (this.speaking === controller) this.speaking = undefined;
      }
      this.assertLive();
      if (controller.signal.reason === "barge-in") {
        this.bargeIns += 1;
        // What the caller heard before cutting in: the sentences that played in full, and for how long it played.
        this.addTranscript("bot", "interrupted", outcome.heard, undefined, outcome.playedMs);
      }
      this.transition("listening");
      if (token !== undefined && this.turnToken === token) {
        await provider.listen(this.providerCallId(), token, { expect: options.expect }).catch(carrierFailure(provider, "listen"));
      }
      return token;
    };
    const next = this.speech.then(run, run);
    this.speech = next.catch(() => undefined);
    return next;
  }

  /** The number whose own voice speaks on this call: the one an inbound caller dialled, where it has one. */
  private voice(): string | undefined {
    const { direction, to } = this.record;
    return direction === "inbound" && this.host.config.numbers[to]?.tts ? to : undefined;
  }

  /** Allocates the next turn and its token; any earlier pending turn is superseded. */
  private beginTurn(driven: boolean, digits?: number): string {
    const token = randomUUID();
    this.pending?.reply.reject(new VoiceCallError("INVALID_STATE", "the turn was superseded by a newer one"));
    this.turnToken = token;
    this.pending = { token, reply: deferred<string>(), driven, ...(digits ? { digits } : {}) };
    this.pending.reply.promise.catch(() => undefined);
    this.record.turn += 1;
    this.host.persist(this);
    return token;
  }

  // ------------------------------------------------------------- lifecycle

  protected override beforeEnd(): void {
    // Keys pressed just before the end are still the caller's answer.
    this.keys.flush();
  }

  protected stopConversation(why: VoiceCallError): void {
    this.keys.stop();
    this.speaking?.abort();
    this.answers.drop(why.message);
    this.pending?.reply.reject(why);
    this.pending = undefined;
  }

  /**
   * Hangs up once what is queued to be said has been said (an agent saying
   * goodbye and hanging up in one answer), waiting at most `maxMs`. The
   * answer being made is not aborted: the run that hung up finishes.
   */
  async hangupAfterSpeech(reason: string, maxMs: number): Promise<void> {
    if (this.ended || this.ending) return;
    // Words of the answer still held back (a sentence not known to be complete) are said first.
    this.host.responder?.flush?.(this.record.callId);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.speech, new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs)))]);
    clearTimeout(timer);
    // The answer that asked for this (an agent's run) goes on after the call: it is not aborted with it.
    this.answers.drop(reason, false);
    await this.hangupAndFinish("hangup-bot", reason);
  }

  // ---------------------------------------------------------------- helpers


}
