/**
 * Twilio through its official SDK: calls created, updated and hung up over
 * REST; TwiML built with the SDK's VoiceResponse; webhooks checked with the
 * SDK's own validator. Audio is a bidirectional Media Stream
 * (`<Connect><Stream>`) on the audio bus, like Asterisk's externalMedia, so
 * speech, barge-in (`clear`), turn tokens and auto-responses behave the same.
 *
 * Twilio facts this relies on:
 * - query strings on the stream URL are dropped, so the stream's credential
 *   travels as a `<Parameter>` (customParameters on `start`), bound to the
 *   CallSid of the signed webhook that asked for it;
 * - when the stream socket closes, Twilio runs the next verb: a `<Redirect>`
 *   back to us asks for a new stream, so a dropped socket comes back instead
 *   of ending the call (within the grace window);
 * - changing a live call's TwiML tears the stream down, so keys are sent as
 *   tones on the stream, never by redirecting the call;
 * - status callbacks (`?type=status`) report ringing and every way a call ends.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import twilio from "twilio";
import type RequestClient from "twilio/lib/base/RequestClient.js";
type RequestResponse<T> = Awaited<ReturnType<RequestClient["request"]>> & { body: T };

type RequestOptions<T> = RequestClient.RequestOptions<T>;
import { VoiceCallError } from "../../errors.js";
import { MediaCarrier, type MediaCall, type MediaCarrierOptions } from "../media-carrier.js";
import type { PublicEndpoints } from "../public-url.js";
import type {
  CarrierIngress,
  PlaceCallRequest,
  ProviderCapabilities,
  RemoteCallStatus,
  SetupFinding,
  StreamConnection,
  StreamSession,
  TerminalState,
  WebhookReply,
  WebhookRequest,
  WebhookVerdict,
} from "../types.js";
import { parseStreamMessage, TwilioStreamTransport } from "./stream.js";

export interface TwilioProviderOptions extends MediaCarrierOptions {
  endpoints: PublicEndpoints;
  /** Where the SDK's REST requests go instead of api.twilio.com (a local server speaking Twilio's API). */
  apiBaseUrl?: string;
  /** How long a dropped media stream may take to come back before the call is hung up. */
  streamGraceMs?: number;
}

interface TwilioCall extends MediaCall {
  direction: "inbound" | "outbound";
  transport: TwilioStreamTransport;
  /** An inbound call's fate, decided by the manager while Twilio waits for TwiML. */
  decision?: "answer" | "reject";
  decided?: () => void;
  connection?: StreamConnection;
  graceTimer?: NodeJS.Timeout;
  hangupRequested: boolean;
  /** The recogniser, opened while Twilio fetches TwiML (not after the stream starts). */
  mediaReady?: Promise<void>;
}

/** How long an inbound webhook waits for the manager to answer or refuse. */
const DECISION_WAIT_MS = 3000;
const TWIML = "text/xml";

/** Twilio's CallStatus to how a call ended (undefined: still going). */
function endOf(status: string, answered: boolean): TerminalState | undefined {
  switch (status) {
    case "completed":
      return answered ? "hangup-user" : "completed";
    case "busy":
      return "busy";
    case "no-answer":
      return "no-answer";
    case "failed":
      return "failed";
    case "canceled":
      return "hangup-bot";
    default:
      return undefined;
  }
}

export class TwilioProvider extends MediaCarrier<TwilioCall> {
  readonly id = "twilio" as const;
  readonly capabilities: ProviderCapabilities = { inbound: true, dtmfOut: true, e164Only: true, turnTokens: true };
  readonly ingress: CarrierIngress;
  private readonly client: twilio.Twilio;
  private readonly accountSid: string;
  private readonly authToken: string;
  /** Signs stream credentials; new each start (a stream asked for before a restart asks again through the Redirect). */
  private readonly streamKey = randomBytes(32);

  constructor(protected override readonly options: TwilioProviderOptions) {
    super(options, "twilio");
    const { accountSid, authToken, region } = options.config.twilio ?? {};
    if (!accountSid || !authToken) throw new VoiceCallError("INVALID_CONFIG", "twilio.accountSid and twilio.authToken are required");
    this.accountSid = accountSid;
    this.authToken = authToken;
    this.client = twilio(accountSid, authToken, { region, httpClient: options.apiBaseUrl ? redirectedClient(options.apiBaseUrl) : undefined, autoRetry: true, maxRetries: 2 });
    this.ingress = {
      webhook: {
        requiredHeaders: ["x-twilio-signature"],
        verify: (request) => this.verify(request),
        handle: (request) => this.onWebhook(request),
        replayReply: (request) => this.replayReply(request),
      },
      stream: { open: (text, connection) => this.openStream(text, connection) },
    };
  }

  protected async open(): Promise<void> {
    // Without a public URL the service starts (the config warning says so); calls fail naming it.
    this.warmSpeech(8000);
  }

  protected async close(): Promise<void> {
    await Promise.all([...this.calls.values()].map((call) => this.teardown(call)));
  }

  // ------------------------------------------------------------ call control

  async placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }> {
    const { endpoints, config } = this.options;
    const created = await this.client.calls.create({
      to: request.to,
      from: request.from ?? config.fromNumber ?? "",
      url: endpoints.webhook({ type: "voice" }),
      method: "POST",
      statusCallback: endpoints.webhook({ type: "status" }),
      statusCallbackMethod: "POST",
      statusCallbackEvent: ["initiated", "ringing", "answered", "completed"],
      timeout: Math.max(5, Math.ceil(config.ringTimeoutMs / 1000)),
    });
    this.callFor(created.sid, "outbound");
    return { providerCallId: created.sid };
  }

  async answer(providerCallId: string): Promise<void> {
    this.decide(this.live(providerCallId), "answer");
  }

  async reject(providerCallId: string, _reason: string): Promise<void> {
    const call = this.live(providerCallId);
    if (call.decision === undefined) return this.decide(call, "reject");
    await this.hangup(providerCallId);
  }

  async hangup(providerCallId: string): Promise<void> {
    const call = this.calls.get(providerCallId);
    if (!call || call.ended) return;
    call.hangupRequested = true;
    // A call not answered yet is canceled; one in progress is completed.
    await this.client.calls(providerCallId).update({ status: call.answered ? "completed" : "canceled" });
    await this.teardown(call);
  }

  async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    await this.mediaOf(providerCallId).sendTones(digits);
  }

  async check(): Promise<SetupFinding[]> {
    const out: SetupFinding[] = [];
    try {
      const account = await this.client.api.v2010.accounts(this.accountSid).fetch();
      if (account.status !== "active") {
        out.push({ check: "twilio-account", status: "fail", detail: `account ${this.accountSid} is ${account.status}`, fix: "reactivate it in the Twilio console" });
      } else {
        out.push({ check: "twilio-account", status: "ok", detail: `credentials accepted; account ${this.accountSid} is active (${account.type})` });
        if (account.type === "Trial") out.push({ check: "twilio-account", status: "warn", detail: "trial accounts call only verified numbers and play a trial notice first" });
      }
    } catch (err) {
      const status = (err as { status?: number }).status;
      const refused = status === 401 || status === 403;
      out.push({
        check: "twilio-account",
        status: "fail",
        detail: refused ? `Twilio refused the credentials (HTTP ${status})` : `Twilio's API did not answer: ${(err as Error).message}`,
        fix: refused ? "check twilio.accountSid and twilio.authToken (TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN), and twilio.region if set" : "check this machine's connection to api.twilio.com",
      });
      return out;
    }
    const from = this.options.config.fromNumber;
    if (from) {
      const [owned, verified] = await Promise.all([
        this.client.incomingPhoneNumbers.list({ phoneNumber: from, limit: 1 }),
        this.client.outgoingCallerIds.list({ phoneNumber: from, limit: 1 }),
      ]);
      out.push(owned.length > 0 || verified.length > 0
        ? { check: "twilio-from-number", status: "ok", detail: `fromNumber ${from} ${owned.length > 0 ? "is a number on this account" : "is a verified caller id"}` }
        : { check: "twilio-from-number", status: "fail", detail: `fromNumber ${from} is neither a number on this account nor a verified caller id`, fix: "set fromNumber to a number the account owns (Phone Numbers in the console)" });
    }
    return out;
  }

  async getCallStatus(providerCallId: string): Promise<RemoteCallStatus> {
    try {
      const call = await this.client.calls(providerCallId).fetch();
      // Who hung up is not in the call resource: a completed call is "completed".
      const end = endOf(call.status, false);
      return end ? { status: "ended", state: end, reason: `Twilio reports ${call.status}` } : { status: "active" };
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404) return { status: "ended", state: "completed", reason: "Twilio does not know the call" };
      return { status: "unknown", reason: (err as Error).message };
    }
  }

  // ---------------------------------------------------------------- webhooks

  /** X-Twilio-Signature over the URL and form fields, checked by the SDK; the replay key covers URL and body. */
  private verify(request: WebhookRequest): WebhookVerdict {
    const signature = request.headers["x-twilio-signature"] ?? "";
    const params = Object.fromEntries(new URLSearchParams(request.rawBody.toString("utf8")));
    if (!twilio.validateRequest(this.authToken, signature, request.url, params)) return { ok: false, reason: "X-Twilio-Signature does not match" };
    const replayKey = createHash("sha256").update(`twilio\n${request.url}\n`).update(request.rawBody).digest("base64url");
    return { ok: true, replayKey };
  }

  private async onWebhook(request: WebhookRequest): Promise<WebhookReply> {
    const form = new URLSearchParams(request.rawBody.toString("utf8"));
    if (form.get("AccountSid") !== this.accountSid) throw new VoiceCallError("UNAUTHORIZED", "AccountSid is not this account's");
    const sid = form.get("CallSid");
    if (!sid || !/^CA[0-9a-f]{32}$/i.test(sid)) throw new VoiceCallError("INVALID_PARAMS", "CallSid: missing or malformed");
    const type = request.query.get("type") ?? "voice";
    if (type === "status") return this.onStatus(sid, form);
    if (type === "voice" || type === "resume") return this.onVoice(sid, form);
    throw new VoiceCallError("INVALID_PARAMS", `type: unknown webhook type ${type.slice(0, 32)}`);
  }

  /** Twilio asks what to do with a call: stream it to us (or refuse an inbound call the manager turned away). */
  private async onVoice(sid: string, form: URLSearchParams): Promise<WebhookReply> {
    const known = this.calls.get(sid);
    if (known?.ended) return twiml(hangupTwiml());
    const inbound = !known && form.get("Direction") === "inbound";
    // Outbound calls are ours: placeCall knew the CallSid before Twilio could ask about it.
    if (!known && !inbound) throw new VoiceCallError("NOT_FOUND", "CallSid: not a call of this service");
    const call = known ?? this.callFor(sid, "inbound");
    if (inbound) {
      this.emit(call, { type: "inbound", from: form.get("From") || "anonymous", to: form.get("To") ?? "" });
      await this.decision(call);
      if (call.decision !== "answer") {
        await this.teardown(call);
        return twiml(rejectTwiml());
      }
    }
    call.mediaReady ??= this.startMedia(call, call.transport, { narrowband: true, inbandDtmf: false });
    await call.mediaReady;
    return twiml(this.streamTwiml(sid));
  }

  private onStatus(sid: string, form: URLSearchParams): WebhookReply {
    const status = form.get("CallStatus") ?? "";
    // A status for a call not known (yet) is passed on without being kept: the manager holds early events briefly.
    const call = this.calls.get(sid) ?? this.transient(sid);
    if (status === "ringing") this.emit(call, { type: "ringing" });
    const end = endOf(status, call.answered);
    if (end) {
      const detail = [status, form.get("SipResponseCode") && `SIP ${form.get("SipResponseCode")}`].filter(Boolean).join(", ");
      this.background(this.endWith(call, call.hangupRequested ? "hangup-bot" : end, `Twilio reports ${detail}`), "ending a call");
    }
    return { status: 204 };
  }

  private replayReply(request: WebhookRequest): WebhookReply {
    if ((request.query.get("type") ?? "voice") === "status") return { status: 204 };
    // A retried TwiML fetch gets the same answer; nothing new is started.
    const sid = new URLSearchParams(request.rawBody.toString("utf8")).get("CallSid") ?? "";
    const call = this.calls.get(sid);
    return twiml(call && !call.ended && call.decision !== "reject" ? this.streamTwiml(sid) : hangupTwiml());
  }

  /** `<Connect><Stream>` with the credential for this CallSid, then back to us if the stream drops. */
  private streamTwiml(sid: string): twilio.twiml.VoiceResponse {
    const response = new twilio.twiml.VoiceResponse();
    const stream = response.connect().stream({ url: this.options.endpoints.stream() });
    stream.parameter({ name: "token", value: this.streamToken(sid) });
    response.redirect({ method: "POST" }, this.options.endpoints.webhook({ type: "resume" }));
    return response;
  }

  private streamToken(sid: string): string {
    return createHmac("sha256", this.streamKey).update(sid).digest("base64url");
  }

  // ----------------------------------------------------------------- streams

  /** A socket's first messages: `connected`, then a `start` whose token was issued for its CallSid. */
  private openStream(text: string, connection: StreamConnection): StreamSession | undefined {
    const message = parseStreamMessage(text);
    if (message.event === "connected") return undefined;
    if (message.event !== "start") throw new VoiceCallError("INVALID_PARAMS", `media stream: expected start, got ${message.event}`);
    const sid = message.start.callSid;
    const token = Buffer.from(message.start.customParameters?.token ?? "");
    const expected = Buffer.from(this.streamToken(sid));
    if (token.length !== expected.length || !timingSafeEqual(token, expected)) throw new VoiceCallError("UNAUTHORIZED", "media stream: token not issued for this CallSid");
    const call = this.calls.get(sid);
    if (!call || call.ended || !call.mediaReady) throw new VoiceCallError("NOT_FOUND", "media stream: no call waiting for this stream");
    if (call.connection && call.connection !== connection) call.connection.close(1000, "replaced by a newer stream");
    call.connection = connection;
    call.transport.attach(connection, message.streamSid);
    if (call.graceTimer) clearTimeout(call.graceTimer);
    call.graceTimer = undefined;
    if (!call.answered) {
      call.answered = true;
      // Audio flows both ways now: the greeting or opening message may play.
      this.emit(call, { type: "answered" });
    }
    return {
      message: (frame) => this.onStreamMessage(call, frame),
      closed: () => this.onStreamClosed(call, connection),
    };
  }

  private onStreamMessage(call: TwilioCall, text: string): void {
    const message = parseStreamMessage(text);
    switch (message.event) {
      case "media":
        if (message.media.track === undefined || message.media.track === "inbound") call.transport.receivedPayload(message.media.payload);
        return;
      case "dtmf":
        this.emit(call, { type: "dtmf", digits: message.dtmf.digit });
        return;
      case "mark":
        call.transport.echoed(message.mark.name);
        return;
      case "stop":
      case "connected":
      case "start":
        return;
    }
  }

  /** A stream that drops comes back through the Redirect; if not within the grace window, the call is hung up. */
  private onStreamClosed(call: TwilioCall, connection: StreamConnection): void {
    call.transport.unplug(connection);
    if (call.connection !== connection) return;
    call.connection = undefined;
    if (call.ended) return;
    const graceMs = this.options.streamGraceMs ?? 5000;
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

  // ------------------------------------------------------------------ helpers

  private callFor(sid: string, direction: "inbound" | "outbound"): TwilioCall {
    let call = this.calls.get(sid);
    if (!call) {
      call = this.transient(sid, direction);
      this.calls.set(sid, call);
    }
    return call;
  }

  /** A call record not (yet) kept in the table. */
  private transient(sid: string, direction: "inbound" | "outbound" = "outbound"): TwilioCall {
    return { id: sid, direction, answered: false, ended: false, hangupRequested: false, transport: new TwilioStreamTransport() };
  }

  private decide(call: TwilioCall, decision: "answer" | "reject"): void {
    call.decision ??= decision;
    call.decided?.();
  }

  private decision(call: TwilioCall): Promise<void> {
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

  /** Closes the media (the caller's last words reported first), then reports the end once. */
  private async endWith(call: TwilioCall, state: TerminalState, reason: string): Promise<void> {
    await this.teardown(call);
    this.reportEnd(call, state, reason);
  }

  private async teardown(call: TwilioCall): Promise<void> {
    if (call.ended) return;
    call.ended = true;
    if (call.graceTimer) clearTimeout(call.graceTimer);
    call.transport.close();
    await this.endMedia(call);
    this.forgetLater(call);
  }
}

function twiml(response: twilio.twiml.VoiceResponse): WebhookReply {
  return { status: 200, contentType: TWIML, body: response.toString() };
}

function hangupTwiml(): twilio.twiml.VoiceResponse {
  const response = new twilio.twiml.VoiceResponse();
  response.hangup();
  return response;
}

function rejectTwiml(): twilio.twiml.VoiceResponse {
  const response = new twilio.twiml.VoiceResponse();
  response.reject({ reason: "rejected" });
  return response;
}

/** The SDK's own HTTP client, with every request sent to `base` instead of Twilio's hosts. */
function redirectedClient(base: string): twilio.RequestClient {
  const target = new URL(base);
  class Redirected extends twilio.RequestClient {
    override request<TData>(opts: RequestOptions<TData>): Promise<RequestResponse<TData>> {
      const uri = new URL(opts.uri);
      uri.protocol = target.protocol;
      uri.host = target.host;
      return super.request<TData>({ ...opts, uri: uri.toString() });
    }
  }
  return new Redirected();
}
