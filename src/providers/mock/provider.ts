/**
 * A carrier simulated in memory: no network. Outbound calls ring and then
 * answer (or are busy, unanswered, failed) as configured; a simulated caller
 * replies to each listening turn. Tests drive it further through the
 * `simulate*` methods and read what was said with `spokenTo`.
 */
import { randomUUID } from "node:crypto";
import type { AmdVerdict } from "../../audio/amd.js";
import type { VoiceCallConfig } from "../../config/schema.js";
import { VoiceCallError } from "../../errors.js";
import type { TerminalState, TransferRequest, TransferResult } from "../types.js";
import type {
  CallProvider,
  ListenOptions,
  PlaceCallRequest,
  ProviderCapabilities,
  ProviderEvent,
  ProviderEventBody,
  ProviderEventSink,
  RemoteCallStatus,
  SpeakOptions,
  SpeakOutcome,
} from "../types.js";
import { sentences } from "../../speech/types.js";

type MockOptions = VoiceCallConfig["mock"];


interface MockCall {
  id: string;
  ended?: { state: TerminalState; reason?: string };
  answered: boolean;
  spoken: string[];
  /** Whose voice said each line (SpeakOptions.voice). */
  voices: Array<string | undefined>;
  dtmf: string[];
  /** When our speech was cut short (performance.now()), as a line's far end would notice. */
  cuts: number[];
  /** Who each transfer dialled. */
  transfers: string[];
  /** What each warm transfer's person heard first. */
  briefings: string[];
  replies: number;
  turnToken?: string;
  timers: Set<NodeJS.Timeout>;
}

export class MockProvider implements CallProvider {
  readonly id = "mock" as const;
  readonly capabilities: ProviderCapabilities;
  private sink: ProviderEventSink | null = null;
  private readonly calls = new Map<string, MockCall>();
  /** Ids of ended calls, oldest first. */
  private readonly ended: string[] = [];
  private seq = 0;
  /** Starts every call id this instance makes: a call id without it was made by another process. */
  private readonly prefix = `mock-${randomUUID().slice(0, 8)}-`;

  constructor(private readonly options: MockOptions) {
    this.capabilities = { inbound: true, dtmfOut: true, e164Only: false, turnTokens: true, warmTransfer: options.warmTransfer };
  }

  async start(sink: ProviderEventSink): Promise<void> {
    this.sink = sink;
  }

  async stop(): Promise<void> {
    for (const call of this.calls.values()) this.clearTimers(call);
    this.sink = null;
  }

  async placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }> {
    const call = this.newCall();
    const { outcome, ringMs } = this.options;
    this.later(call, 0, () => this.emit(call, { type: "ringing" }));
    this.later(call, ringMs, () => {
      if (outcome === "answer") {
        call.answered = true;
        this.emit(call, { type: "answered" });
      } else {
        this.end(call, outcome, `mock outcome ${outcome} for ${request.to}`);
      }
    });
    return { providerCallId: call.id };
  }

  async answer(providerCallId: string): Promise<void> {
    const call = this.live(providerCallId);
    call.answered = true;
    this.later(call, 0, () => this.emit(call, { type: "answered" }));
  }

  async reject(providerCallId: string, reason: string): Promise<void> {
    const call = this.live(providerCallId);
    this.end(call, "failed", `rejected: ${reason}`);
  }

  async hangup(providerCallId: string): Promise<void> {
    const call = this.calls.get(providerCallId);
    if (!call || call.ended) return;
    this.end(call, "hangup-bot", "hung up by us");
  }

  /** Answering-machine detection, simulated: mock.answeredBy after ringMs. */
  async detectMachine(providerCallId: string, _options: { timeoutMs: number; awaitBeepMs?: number }): Promise<AmdVerdict> {
    this.live(providerCallId);
    await new Promise((r) => setTimeout(r, this.options.ringMs));
    return { outcome: this.options.answeredBy, ms: this.options.ringMs, reason: `mock answeredBy ${this.options.answeredBy}` };
  }

  /** A simulated transfer: the person's phone rings ringMs, then mock.transferOutcome (a warm one's briefing kept); connected, the call is theirs (no end reported). */
  async transfer(providerCallId: string, request: TransferRequest): Promise<TransferResult> {
    const call = this.live(providerCallId);
    await new Promise((r) => setTimeout(r, Math.min(this.options.ringMs, request.ringTimeoutMs)));
    const outcome = this.options.transferOutcome;
    call.transfers.push(request.to);
    if (request.briefing !== undefined) call.briefings.push(request.briefing);
    if (outcome !== "connected") return { outcome, reason: `mock transferOutcome ${outcome}` };
    this.clearTimers(call);
    call.ended = { state: "transferred", reason: `transferred to ${request.to}` };
    return { outcome, legId: `${call.id}-transfer-${call.transfers.length}` };
  }

  async speak(providerCallId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    const call = this.live(providerCallId);
    call.spoken.push(text);
    call.voices.push(options.voice);
    if (options.turnToken) call.turnToken = options.turnToken;
    // Sentence by sentence, like a real line: what played before an abort was heard.
    const heard: string[] = [];
    const started = performance.now();
    for (const sentence of sentences(text)) {
      await abortableDelay(sentence.length * this.options.speakMsPerChar, options.signal);
      if (options.signal?.aborted) {
        call.cuts.push(performance.now());
        return { interrupted: true, heard: heard.join(" "), playedMs: Math.round(performance.now() - started) };
      }
      heard.push(sentence);
    }
    return { interrupted: false, heard: heard.join(" "), playedMs: Math.round(performance.now() - started) };
  }

  async listen(providerCallId: string, turnToken: string, _options?: ListenOptions): Promise<void> {
    const call = this.live(providerCallId);
    call.turnToken = turnToken;
    const { replies, replyDelayMs, hangupAfterReplies } = this.options;
    if (replies.length === 0) return;
    this.later(call, replyDelayMs, () => {
      if (call.ended || call.turnToken !== turnToken) return;
      const template = replies[call.replies % replies.length]!;
      call.replies += 1;
      const text = template.replaceAll("{message}", call.spoken.at(-1) ?? "");
      this.emit(call, { type: "speech", text, isFinal: true, turnToken });
      if (hangupAfterReplies > 0 && call.replies >= hangupAfterReplies) {
        this.later(call, 0, () => this.end(call, "hangup-user", "caller hung up"));
      }
    });
  }

  async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    this.live(providerCallId).dtmf.push(digits);
  }

  async getCallStatus(providerCallId: string): Promise<RemoteCallStatus> {
    const call = this.calls.get(providerCallId);
    if (!call && !providerCallId.startsWith(this.prefix)) {
      // A simulated call lives in the process that simulates it: one from before a restart is over.
      return { status: "ended", state: "completed", reason: "the mock carrier's calls end with the process that simulated them" };
    }
    if (!call) return { status: "unknown", reason: "not known to the mock carrier" };
    if (call.ended) return { status: "ended", ...call.ended };
    return { status: "active" };
  }

  // ---- scripting API for tests and demos ----

  /** A call arrives from `from` to `to`; returns its provider call id. */
  simulateInbound(from: string, to: string): string {
    const call = this.newCall();
    this.emit(call, { type: "inbound", from, to });
    return call.id;
  }

  /** The caller says `text` in the current turn (or with an explicit token). */
  simulateSpeech(providerCallId: string, text: string, turnToken?: string): void {
    const call = this.live(providerCallId);
    this.emit(call, { type: "speech", text, isFinal: true, turnToken: turnToken ?? call.turnToken });
  }

  /** The caller starts talking (what a voice detector reports; the cue for barge-in). */
  simulateSpeechStart(providerCallId: string): void {
    const call = this.live(providerCallId);
    this.emit(call, { type: "speech-start", turnToken: call.turnToken });
  }

  /** The caller stops talking. */
  simulateSpeechEnd(providerCallId: string): void {
    this.emit(this.live(providerCallId), { type: "speech-end" });
  }

  simulateDtmf(providerCallId: string, digits: string): void {
    this.emit(this.live(providerCallId), { type: "dtmf", digits });
  }

  simulateHangup(providerCallId: string): void {
    this.end(this.live(providerCallId), "hangup-user", "caller hung up");
  }

  /** The call ends as a carrier would report it (busy, no answer, failed, ...), e.g. before it is answered. */
  simulateEnd(providerCallId: string, state: TerminalState, reason: string): void {
    this.end(this.live(providerCallId), state, reason);
  }

  /** The token of the listening turn the mock last saw for this call. */
  currentTurnToken(providerCallId: string): string | undefined {
    return this.calls.get(providerCallId)?.turnToken;
  }

  spokenTo(providerCallId: string): string[] {
    return [...(this.calls.get(providerCallId)?.spoken ?? [])];
  }

  /** The voice each line to this call was asked for in (undefined: the default). */
  voicesOf(providerCallId: string): Array<string | undefined> {
    return [...(this.calls.get(providerCallId)?.voices ?? [])];
  }

  dtmfSentTo(providerCallId: string): string[] {
    return [...(this.calls.get(providerCallId)?.dtmf ?? [])];
  }

  /** When our speech to this call was cut short (barge-in), performance.now() times. */
  cutsOf(providerCallId: string): number[] {
    return [...(this.calls.get(providerCallId)?.cuts ?? [])];
  }

  /** Who each transfer of the call dialled. */
  transfersOf(providerCallId: string): string[] {
    return [...(this.calls.get(providerCallId)?.transfers ?? [])];
  }

  /** What each warm transfer's person was told, in order. */
  briefingsOf(providerCallId: string): string[] {
    return [...(this.calls.get(providerCallId)?.briefings ?? [])];
  }

  // ---- internals ----

  private newCall(): MockCall {
    const call: MockCall = { id: `${this.prefix}${randomUUID()}`, answered: false, spoken: [], voices: [], dtmf: [], cuts: [], transfers: [], briefings: [], replies: 0, timers: new Set() };
    this.calls.set(call.id, call);
    return call;
  }

  private live(providerCallId: string): MockCall {
    const call = this.calls.get(providerCallId);
    if (!call) throw new VoiceCallError("NOT_FOUND", `mock carrier has no call ${providerCallId}`);
    if (call.ended) throw new VoiceCallError("CALL_ENDED", `mock call ${providerCallId} has ended (${call.ended.state})`);
    return call;
  }

  /** Every end, ours included, is reported back the way a carrier's status callback is. */
  private end(call: MockCall, state: TerminalState, reason: string): void {
    if (call.ended) return;
    call.ended = { state, reason };
    this.clearTimers(call);
    this.emit(call, { type: "ended", state, reason });
    // Ended calls age out, oldest first, as a carrier's call history does: memory stays bounded.
    this.ended.push(call.id);
    while (this.ended.length > MAX_ENDED_KEPT) this.calls.delete(this.ended.shift()!);
  }

  private emit(call: MockCall, body: ProviderEventBody): void {
    this.seq += 1;
    this.sink?.({ ...body, eventId: `mock-evt-${this.seq}`, providerCallId: call.id, at: Date.now() } as ProviderEvent);
  }

  private later(call: MockCall, ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      call.timers.delete(timer);
      fn();
    }, ms);
    call.timers.add(timer);
  }

  private clearTimers(call: MockCall): void {
    for (const t of call.timers) clearTimeout(t);
    call.timers.clear();
  }
}

/** Ended calls the mock carrier still answers status queries for. */
const MAX_ENDED_KEPT = 1000;

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
