/**
 * The shell shared by cloud carriers that stream call audio to us over a
 * WebSocket (Twilio, Telnyx, Plivo), on top of the media shell: the stream
 * credential (an HMAC of the carrier's call id, issued in the answer to a
 * signed webhook, so a stream opens only its own call), attaching a stream
 * to its call (the call counts as answered once audio flows both ways), a
 * grace window for a dropped stream, an inbound call waiting for the
 * manager's answer-or-refuse, and teardown. A carrier adds its REST control,
 * its webhooks and its stream message names.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { AmdVerdict } from "../audio/amd.js";
import { holdOn } from "../audio/hold.js";
import { VoiceCallError } from "../errors.js";
import { CarrierVerdicts } from "./carrier-amd.js";
import { MediaCarrier, type MediaCall, type MediaCarrierOptions } from "./media-carrier.js";
import { MediaStreamTransport, type StreamEvent, type StreamWire } from "./media-stream.js";
import type { PublicEndpoints } from "./public-url.js";
import type { CallHint, ListenOptions, PlaceCallRequest, ProviderEventBody, SpeakOptions, SpeakOutcome, StreamConnection, StreamSession, TerminalState, TransferRequest, TransferResult } from "./types.js";
import { briefPerson, unansweredOutcome } from "./warm-transfer.js";

export interface StreamCarrierOptions extends MediaCarrierOptions {
  endpoints: PublicEndpoints;
  /** Where the SDK's REST requests go instead of the carrier's API host (a local server speaking its API). */
  apiBaseUrl?: string;
  /** How long a dropped media stream may take to come back before the call is hung up. */
  streamGraceMs?: number;
}

export interface StreamCall extends MediaCall {
  direction: "inbound" | "outbound";
  transport: MediaStreamTransport;
  /** An inbound call's fate, decided by the manager while the carrier waits for our answer. */
  decision?: "answer" | "reject";
  decided?: () => void;
  connection?: StreamConnection;
  graceTimer?: NodeJS.Timeout;
  hangupRequested: boolean;
  /** The recogniser, opened while the carrier sets up the stream (not after it starts). */
  mediaReady?: Promise<void>;
  /** The stream is away on purpose (a transfer dialling the person): its close is not a drop, and it may come back. */
  held?: boolean;
}

/**
 * The carrier's own voice and ears (`streaming.enabled: false`), used in
 * place of our speech engines on the stream.
 */
export interface CarrierSpeech {
  speak(callId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome>;
  listen(callId: string, turnToken: string): void | Promise<void>;
  /** The call ended: what it was saying counts as cut off. */
  ended(callId: string): void;
}

/** How long an inbound webhook waits for the manager to answer or refuse. */
const DECISION_WAIT_MS = 3000;

export abstract class StreamCarrier extends MediaCarrier<StreamCall> {
  /**
   * Signs stream credentials. From the control token when one is configured (every instance of a cluster
   * has the same one, so a stream one instance asked for is admitted by any, as after a take-over);
   * otherwise new each start (a stream asked for before a restart asks again).
   */
  private readonly streamKey: Buffer;
  /** Set by a carrier that speaks and listens itself when streaming is off. */
  protected carrierSpeech?: CarrierSpeech;
  /** Calls being transferred: told the outcome when the carrier reports the person's answer or the dial's end. */
  private readonly transfers = new Map<string, (result: TransferResult) => void>();
  /** Calls the carrier was asked to tell people from machines on (its own detection): their verdicts, by webhook. */
  protected readonly verdicts = new CarrierVerdicts();
  /** Calls whose warm transfer is calling or briefing the person. */
  private readonly briefing = new Set<string>();

  constructor(
    protected override readonly options: StreamCarrierOptions,
    label: string,
    /** How our audio, markers and clears are named on this carrier's stream. */
    private readonly wire: StreamWire,
  ) {
    super(options, label);
    const token = options.config.control.token;
    this.streamKey = token ? Buffer.from(hkdfSync("sha256", token, "openclaw-voice-call", "media stream credentials", 32)) : randomBytes(32);
  }

  /** The call a stream's start message names (the ingress hands a stream for another instance's call to it). */
  streamCallOf(text: string): string | undefined {
    try {
      const event = this.parseStream(text);
      return event.kind === "start" ? event.callId : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A call taken over from another instance (or back after a restart): known again, answered, waiting for
   * its stream; the carrier reconnects it through our webhook (the Redirect after the old stream in
   * Twilio's and Plivo's documents) or is asked for a new one (`resumeStream`: Telnyx). No stream within
   * the grace window: the call is hung up.
   */
  async readopt(providerCallId: string, hint: CallHint = {}): Promise<{ ok: true } | { ok: false; reason: string }> {
    const status = await this.getCallStatus(providerCallId, hint);
    if (status.status === "ended") return { ok: false, reason: `the carrier says it ended (${status.state})` };
    const call = this.callFor(providerCallId, hint.direction ?? "inbound");
    call.answered = true;
    call.decision = "answer";
    this.prepareMedia(call);
    // The carrier asks again every second meanwhile; a take-over can take a third of the lease to start.
    this.awaitStream(call, Math.max(20_000, this.options.streamGraceMs ?? 0));
    if (!this.carrierSpeech) {
      await this.resumeStream(call).catch((err: Error) => this.log.warn({ callId: call.id, err: err.message }, "could not ask the carrier for the call's stream again; it is hung up if none comes"));
    }
    return { ok: true };
  }

  /** Asks the carrier for a new stream of a call taken over, where its document does not (Telnyx). */
  protected async resumeStream(_call: StreamCall): Promise<void> {}

  /**
   * Whether a call asking for detection gets the carrier's own
   * (outbound.amd.detector "carrier"); ours needs the stream, so with the
   * carrier's own speech it is always the carrier's.
   */
  protected carrierDetects(request: PlaceCallRequest): boolean {
    return request.amd === true && (this.options.config.outbound.amd.detector === "carrier" || this.carrierSpeech !== undefined);
  }

  /** Whether the carrier's own detection, asked to, reports a machine only once its greeting is over (else the beep is waited for on our audio). */
  protected readonly carrierAmdWaitsForGreeting: boolean = true;

  /** The carrier's own verdict where it was asked to detect (within the call's bound), else ours on the stream. */
  override async detectMachine(providerCallId: string, options: { timeoutMs: number; awaitBeepMs?: number }): Promise<AmdVerdict> {
    if (!this.verdicts.has(providerCallId)) return super.detectMachine(providerCallId, options);
    const ms = options.timeoutMs + (this.carrierAmdWaitsForGreeting ? (options.awaitBeepMs ?? 0) : 0);
    const verdict = await this.verdicts.wait(providerCallId, ms);
    if (!verdict) return { outcome: "unknown", ms, reason: `${this.id}'s detection did not answer within ${Math.round(ms / 1000)} s` };
    if (verdict.outcome === "machine" && options.awaitBeepMs && !this.carrierAmdWaitsForGreeting && this.calls.get(providerCallId)?.media) await this.awaitBeep(providerCallId, options.awaitBeepMs);
    return verdict;
  }

  /** One text frame of this carrier's stream protocol; INVALID_PARAMS naming the field when it is not. */
  protected abstract parseStream(text: string): StreamEvent;

  /** The credential a stream for `callId` must present. */
  protected streamToken(callId: string): string {
    return createHmac("sha256", this.streamKey).update(callId).digest("base64url");
  }

  /**
   * Starts the call's voice pipeline (once: its recogniser, or a realtime
   * model's session) while the carrier sets up the stream, without holding
   * the carrier's request: the session opens while the stream connects. The
   * call is up once both are ready; a pipeline that cannot start ends the
   * call, saying why.
   */
  protected prepareMedia(call: StreamCall): void {
    if (call.mediaReady) return;
    call.mediaReady = this.startMedia(call, call.transport, { narrowband: true, inbandDtmf: false });
    call.mediaReady.catch((err: Error) => {
      if (call.ended) return;
      const reason = `media setup failed: ${err.message}`;
      this.log.warn({ callId: call.id, reason }, "the call's voice could not start; hanging up");
      this.background(
        this.hangup(call.id).finally(() => this.endWith(call, "error", reason)),
        "ending a call",
      );
    });
  }

  /** A socket's first messages: lifecycle ones are skipped until a start whose token was issued for its call. */
  openStream(text: string, connection: StreamConnection): StreamSession | undefined {
    const event = this.parseStream(text);
    if (event.kind === "other") return undefined;
    if (event.kind !== "start") throw new VoiceCallError("INVALID_PARAMS", `media stream: expected start, got ${event.kind}`);
    const token = Buffer.from(event.token);
    const expected = Buffer.from(this.streamToken(event.callId));
    if (token.length !== expected.length || !timingSafeEqual(token, expected)) throw new VoiceCallError("UNAUTHORIZED", "media stream: token not issued for this call");
    const call = this.calls.get(event.callId);
    if (!call || call.ended || !call.mediaReady) throw new VoiceCallError("NOT_FOUND", "media stream: no call waiting for this stream");
    if (call.connection && call.connection !== connection) call.connection.close(1000, "replaced by a newer stream");
    call.connection = connection;
    call.held = false;
    call.transport.attach(connection, event.streamId);
    if (call.graceTimer) clearTimeout(call.graceTimer);
    call.graceTimer = undefined;
    // Audio flows both ways once the pipeline is ready too: then the greeting or opening message may play.
    void call.mediaReady.then(
      () => this.up(call),
      () => undefined,
    );
    return {
      message: (frame) => this.onStreamMessage(call, frame),
      closed: () => this.onStreamClosed(call, connection),
    };
  }

  private onStreamMessage(call: StreamCall, text: string): void {
    const event = this.parseStream(text);
    if (event.kind === "media") call.transport.receivedPayload(event.payload);
    else if (event.kind === "dtmf") this.emit(call, { type: "dtmf", digits: event.digit });
    else if (event.kind === "mark") call.transport.echoed(event.name);
  }

  /** A dropped stream may come back (the carrier reconnects or asks us again); if not within the grace window, the call is hung up. */
  private onStreamClosed(call: StreamCall, connection: StreamConnection): void {
    call.transport.unplug(connection);
    if (call.connection !== connection) return;
    call.connection = undefined;
    if (call.ended || call.held) return;
    this.awaitStream(call);
  }

  /** The call has no stream now: it must come back within the grace window, or the call is hung up. */
  private awaitStream(call: StreamCall, graceMs = this.options.streamGraceMs ?? 5000): void {
    call.graceTimer = setTimeout(() => {
      if (call.ended || call.transport.attached) return;
      this.log.warn({ callId: call.id, graceMs }, "media stream did not come back; hanging up");
      this.background(
        this.hangup(call.id).finally(() => this.endWith(call, "error", `the media stream dropped and did not come back within ${graceMs} ms`)),
        "ending a call",
      );
    }, graceMs);
    call.graceTimer.unref();
  }

  /**
   * A blind transfer's common part: `dial` asks the carrier to dial the
   * person (our stream may end with it: it is held, not dropped meanwhile);
   * the carrier's webhooks settle the outcome (settleTransfer). Connected, our
   * part of the call ends here; otherwise the caller is ours again, and a
   * stream that is not back within the grace window ends the call.
   */
  protected async transferWith(call: StreamCall, ringTimeoutMs: number, dial: () => Promise<void>): Promise<TransferResult> {
    if (this.carrierSpeech) throw new VoiceCallError("UNSUPPORTED", "transfer needs the media stream (streaming.enabled)");
    this.assertNotTransferring(call);
    const outcome = new Promise<TransferResult>((resolve) => this.transfers.set(call.id, resolve));
    call.held = true;
    try {
      await dial();
    } catch (err) {
      this.transfers.delete(call.id);
      call.held = false;
      throw err;
    }
    // The carrier reports either way within the ring time; a dial it never reports on is given up on.
    const silence = setTimeout(() => this.settleTransfer(call.id, { outcome: "failed", reason: `${this.id} did not report on the dial` }), ringTimeoutMs + 30_000);
    const result = await outcome.finally(() => clearTimeout(silence));
    if (result.outcome === "connected") {
      await this.teardown(call);
    } else if (!call.ended) {
      call.held = false;
      if (!call.connection) this.awaitStream(call);
    }
    return result;
  }

  /** One transfer at a time per call, blind or warm. */
  private assertNotTransferring(call: StreamCall): void {
    if (this.transfers.has(call.id) || this.briefing.has(call.id)) throw new VoiceCallError("INVALID_STATE", `call ${call.id} is being transferred already`);
  }

  /**
   * Puts a warm transfer's caller and person together at the carrier (both
   * calls leave our streams); with `record`, the carrier records the two.
   * Carriers without it have no warm transfer.
   */
  protected join?(caller: StreamCall, person: StreamCall, record?: TransferRequest["record"]): Promise<void>;

  /**
   * A warm transfer on a cloud carrier: the caller hears the hold chime on
   * our stream while the person is called as a call of our own (their stream
   * to us, their events to the transfer, never to the calls' manager) and
   * briefed alone (warm-transfer.ts). Accepted: the carrier joins the two
   * and our part of both calls ends. Otherwise the person's leg is hung up
   * and the caller is with us again, unheld.
   */
  protected async warmTransferWith(call: StreamCall, request: TransferRequest): Promise<TransferResult> {
    if (this.carrierSpeech || !this.join) throw new VoiceCallError("UNSUPPORTED", "warm transfer needs the media stream (streaming.enabled)");
    if (!call.media) throw new VoiceCallError("INVALID_STATE", `call ${call.id} has no media yet`);
    this.assertNotTransferring(call);
    this.briefing.add(call.id);
    const hold = holdOn(call.media.transport);
    try {
      const dialled = await this.dialPerson(request);
      if ("outcome" in dialled) return dialled;
      const { person, events } = dialled;
      const hangUpPerson = () => this.hangup(person.id).catch((err: unknown) => this.log.warn({ callId: person.id, err: String(err) }, "could not hang up the transfer's person"));
      if (call.ended) {
        await hangUpPerson();
        return { outcome: "failed", reason: "the caller hung up while the person answered", legId: person.id };
      }
      const refused = await briefPerson(
        {
          open: async (listener) => ((events.forward = listener), person),
          detectMachine: (options) => this.detectMachine(person.id, options),
          hangUp: async () => void (await hangUpPerson()),
          release: async () => undefined,
        },
        request.briefing ?? "",
      );
      if (refused) return { ...refused, legId: person.id };
      if (call.ended) {
        await hangUpPerson();
        return { outcome: "failed", reason: "the caller hung up while the person was told about the call", legId: person.id };
      }
      hold.stop();
      // Both streams end as the carrier moves the calls: neither is a drop.
      call.held = true;
      person.held = true;
      try {
        await this.join(call, person, request.record);
      } catch (err) {
        call.held = false;
        await hangUpPerson();
        if (!call.ended && !call.connection) this.awaitStream(call);
        return { outcome: "failed", reason: `${this.id} could not join the caller and the person: ${(err as Error).message}`, legId: person.id };
      }
      await Promise.all([this.teardown(person), this.teardown(call)]);
      return { outcome: "connected", legId: person.id };
    } finally {
      hold.stop();
      this.briefing.delete(call.id);
    }
  }

  /**
   * Calls a warm transfer's person as a call of our own: resolves once their
   * stream is up (answered), or with the outcome when the call ends first or
   * is not answered within the ring time (then it is hung up).
   */
  private async dialPerson(request: TransferRequest): Promise<{ person: StreamCall; events: { forward?: (body: ProviderEventBody) => void } } | TransferResult> {
    const events: { forward?: (body: ProviderEventBody) => void } = {};
    let settle: (end?: { state: TerminalState; reason: string }) => void = () => undefined;
    const answered = new Promise<{ state: TerminalState; reason: string } | undefined>((resolve) => (settle = resolve));
    const { providerCallId } = await this.placeCall({ callId: `transfer-${request.to}`, to: request.to, amd: true, ringTimeoutMs: request.ringTimeoutMs });
    const person = this.calls.get(providerCallId) ?? this.callFor(providerCallId, "outbound");
    person.listener = (body) => {
      if (body.type === "answered") settle();
      else if (body.type === "ended") settle({ state: body.state, reason: body.reason ?? body.state });
      events.forward?.(body);
    };
    // The carrier ends an unanswered call at the ring time; one it never reports on is given up on.
    const timer = setTimeout(() => settle({ state: "no-answer", reason: `not answered within ${Math.round(request.ringTimeoutMs / 1000)} s` }), request.ringTimeoutMs + 5000);
    const end = await answered.finally(() => clearTimeout(timer));
    if (!end) return { person, events };
    if (!person.ended) await this.hangup(person.id).catch(() => undefined);
    return { outcome: unansweredOutcome(end.state), reason: end.reason, legId: person.id };
  }

  /** Tells a transfer in progress how it went (once); false when none was waiting. */
  protected settleTransfer(callId: string, result: TransferResult): boolean {
    const resolve = this.transfers.get(callId);
    if (!resolve) return false;
    this.transfers.delete(callId);
    resolve(result);
    return true;
  }

  override async speak(providerCallId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    if (!this.carrierSpeech) return super.speak(providerCallId, text, options);
    this.live(providerCallId);
    return this.carrierSpeech.speak(providerCallId, text, options);
  }

  override async listen(providerCallId: string, turnToken: string, options: ListenOptions = {}): Promise<void> {
    if (!this.carrierSpeech) return super.listen(providerCallId, turnToken, options);
    this.live(providerCallId);
    await this.carrierSpeech.listen(providerCallId, turnToken);
  }

  async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    // Tones on the stream: changing a live call's instructions would tear the stream down.
    await this.mediaOf(providerCallId).sendTones(digits);
  }

  // ----------------------------------------------------------- call table

  protected callFor(id: string, direction: "inbound" | "outbound"): StreamCall {
    let call = this.calls.get(id);
    if (!call) {
      call = this.transient(id, direction);
      this.calls.set(id, call);
    }
    return call;
  }

  /** A call record not (yet) kept in the table. */
  protected transient(id: string, direction: "inbound" | "outbound" = "outbound"): StreamCall {
    return { id, direction, answered: false, ended: false, hangupRequested: false, transport: new MediaStreamTransport(this.wire) };
  }

  /** The call is up (answered and ready for what we say): reported once. */
  protected up(call: StreamCall): void {
    if (call.answered || call.ended) return;
    call.answered = true;
    this.emit(call, { type: "answered" });
  }

  /** The manager answered or refused an inbound call. */
  protected decide(call: StreamCall, decision: "answer" | "reject"): void {
    call.decision ??= decision;
    call.decided?.();
  }

  /** Waits (briefly) for the manager's decision on an inbound call; no decision is a refusal. */
  protected decision(call: StreamCall): Promise<void> {
    if (call.decision) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        call.decision ??= "reject";
        resolve();
      }, DECISION_WAIT_MS);
      call.decided = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async answer(providerCallId: string): Promise<void> {
    this.decide(this.live(providerCallId), "answer");
  }

  /** Refuses a caller still ringing in (the carrier is told when it asks); a call already up is hung up. */
  async reject(providerCallId: string, _reason: string): Promise<void> {
    const call = this.live(providerCallId);
    if (call.decision === undefined) return this.decide(call, "reject");
    await this.hangup(providerCallId);
  }

  async hangup(providerCallId: string): Promise<void> {
    const call = this.calls.get(providerCallId);
    if (!call || call.ended) return;
    call.hangupRequested = true;
    await this.hangUpAtCarrier(call);
    await this.teardown(call);
  }

  /** Asks the carrier to end the call (cancel a call still ringing, hang up one in progress). */
  protected abstract hangUpAtCarrier(call: StreamCall): Promise<void>;

  /**
   * The carrier asks about call `id`: a call of ours goes on; one we do not
   * know is a caller ringing in (when `ringing.inbound`), announced and
   * decided on by the manager. "ended" and "refused" are answered with the
   * carrier's hang-up or refusal; an unknown call that is not ringing in is NOT_FOUND.
   */
  protected async admit(id: string, ringing: { inbound: boolean; from?: string | null; to?: string | null }, idName: string): Promise<StreamCall | "ended" | "refused"> {
    const known = this.calls.get(id);
    if (known?.ended) return "ended";
    if (!known && !ringing.inbound) throw new VoiceCallError("NOT_FOUND", `${idName}: not a call of this service`);
    if (known) return known;
    const call = this.callFor(id, "inbound");
    this.emit(call, { type: "inbound", from: ringing.from || "anonymous", to: ringing.to ?? "" });
    await this.decision(call);
    if (call.decision === "answer") return call;
    await this.teardown(call);
    return "refused";
  }

  /** Closes the media (the caller's last words reported first), then reports the end once. */
  protected async endWith(call: StreamCall, state: TerminalState, reason: string): Promise<void> {
    await this.teardown(call);
    this.reportEnd(call, state, reason);
  }

  protected async teardown(call: StreamCall): Promise<void> {
    if (call.ended) return;
    call.ended = true;
    this.verdicts.forget(call.id);
    this.settleTransfer(call.id, { outcome: "failed", reason: "the call ended while the person's phone rang" });
    this.carrierSpeech?.ended(call.id);
    if (call.graceTimer) clearTimeout(call.graceTimer);
    call.transport.close();
    await this.endMedia(call);
    this.forgetLater(call);
  }

  protected async close(): Promise<void> {
    await Promise.all([...this.calls.values()].map((call) => this.teardown(call)));
  }
}
