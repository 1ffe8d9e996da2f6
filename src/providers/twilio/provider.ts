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
 *
 * With `streaming.enabled: false` Twilio speaks (`<Say>`), listens
 * (`<Gather>` for speech and keys, its action URL naming the turn) and
 * presses keys (`<Play digits>`) itself, in documents the call is moved to
 * (document-speech.ts); with no stream to tear down, moving it is safe.
 */
import { createHash } from "node:crypto";
import twilio from "twilio";
import type RequestClient from "twilio/lib/base/RequestClient.js";
type RequestResponse<T> = Awaited<ReturnType<RequestClient["request"]>> & { body: T };

type RequestOptions<T> = RequestClient.RequestOptions<T>;
import { VoiceCallError } from "../../errors.js";
import { DocumentSpeech, documentReply, heardInput, isDocumentType } from "../document-speech.js";
import { StreamCarrier, type StreamCall, type StreamCarrierOptions } from "../stream-carrier.js";
import type {
  CarrierIngress,
  PlaceCallRequest,
  ProviderCapabilities,
  RemoteCallStatus,
  SetupFinding,
  TerminalState,
  TransferOutcome,
  TransferRequest,
  TransferResult,
  WebhookReply,
  WebhookRequest,
  WebhookVerdict,
} from "../types.js";
import { TWILIO_WIRE, twilioStreamEvent } from "./stream.js";
import { hangupTwiml, rejectTwiml, retryTwiml, twilioDocuments, type TwiML } from "./twiml.js";
import { twilioAmdParams, twilioVerdict } from "./amd.js";
import { TwilioRecordings, recordingAttributes } from "./recordings.js";

export type TwilioProviderOptions = StreamCarrierOptions;

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

/** A Dial's DialCallStatus as a transfer's outcome. */
const DIAL_OUTCOMES: Record<string, TransferOutcome> = { completed: "connected", answered: "connected", busy: "busy", "no-answer": "no-answer", failed: "failed", canceled: "failed" };

export class TwilioProvider extends StreamCarrier {
  readonly id = "twilio" as const;
  readonly capabilities: ProviderCapabilities;
  readonly ingress: CarrierIngress;
  private readonly client: twilio.Twilio;
  private readonly accountSid: string;
  private readonly authToken: string;
  /** Twilio's recordings of transferred calls, fetched when done. */
  private readonly recordings: TwilioRecordings;
  /** With streaming off: Twilio speaks (Say), listens (Gather) and presses keys (Play) itself. */
  protected declare carrierSpeech?: DocumentSpeech;

  constructor(protected override readonly options: TwilioProviderOptions) {
    super(options, "twilio", TWILIO_WIRE);
    const { accountSid, authToken, region } = options.config.twilio ?? {};
    if (!accountSid || !authToken) throw new VoiceCallError("INVALID_CONFIG", "twilio.accountSid and twilio.authToken are required");
    this.accountSid = accountSid;
    this.authToken = authToken;
    this.client = twilio(accountSid, authToken, { region, httpClient: options.apiBaseUrl ? redirectedClient(options.apiBaseUrl) : undefined, autoRetry: true, maxRetries: 2 });
    this.recordings = new TwilioRecordings(accountSid, authToken, options.apiBaseUrl, this.log);
    // A warm transfer briefs the person on a stream of ours: not with Twilio's own speech.
    this.capabilities = { inbound: true, dtmfOut: true, e164Only: true, turnTokens: true, warmTransfer: options.config.streaming.enabled };
    if (!options.config.streaming.enabled) {
      this.carrierSpeech = new DocumentSpeech({
        transfer: async (id, query) => {
          await this.client.calls(id).update({ url: options.endpoints.webhook(query), method: "POST" });
        },
        url: (query) => options.endpoints.webhook(query),
        documents: twilioDocuments,
        waitSeconds: options.config.maxDurationSeconds + 60,
        listenSeconds: 60,
        // 21220: the call is not in progress yet (an inbound call's first TwiML is still being fetched).
        notUpYet: (err) => (err as { code?: number }).code === 21220,
      });
    }
    this.ingress = {
      webhook: {
        requiredHeaders: ["x-twilio-signature"],
        verify: (request) => this.verify(request),
        handle: (request) => this.onWebhook(request),
        replayReply: (request) => this.replayReply(request),
        // A transfer's person's leg names the caller's call as its parent.
        callsOf: (request) => {
          const form = new URLSearchParams(request.rawBody.toString("utf8"));
          return [form.get("ParentCallSid"), form.get("CallSid")].filter((id): id is string => !!id);
        },
        retryLater: (request) => twiml(retryTwiml(request.url)),
      },
      stream: { open: (text, connection) => this.openStream(text, connection), callOf: (text) => this.streamCallOf(text) },
    };
  }

  protected async open(): Promise<void> {
    // Without a public URL the service starts (the config warning says so); calls fail naming it.
    if (!this.carrierSpeech) this.warmSpeech(8000);
  }

  override async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    if (!this.carrierSpeech) return super.sendDtmf(providerCallId, digits);
    this.live(providerCallId);
    await this.carrierSpeech.press(providerCallId, digits);
  }

  // ------------------------------------------------------------ call control

  async placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }> {
    const { endpoints, config } = this.options;
    const carrierAmd = this.carrierDetects(request);
    const created = await this.client.calls.create({
      to: request.to,
      from: request.from ?? config.fromNumber ?? "",
      url: endpoints.webhook({ type: "voice" }),
      method: "POST",
      statusCallback: endpoints.webhook({ type: "status" }),
      statusCallbackMethod: "POST",
      statusCallbackEvent: ["initiated", "ringing", "answered", "completed"],
      timeout: Math.max(5, Math.ceil((request.ringTimeoutMs ?? config.ringTimeoutMs) / 1000)),
      ...(carrierAmd ? twilioAmdParams(config.outbound.amd, endpoints.webhook({ type: "amd" })) : {}),
    });
    if (carrierAmd) this.verdicts.expect(created.sid);
    this.callFor(created.sid, "outbound");
    return { providerCallId: created.sid };
  }

  /**
   * Blind transfer: the call's TwiML becomes a `<Dial>` of the person (our
   * stream ends with it). The person's leg reports its answer to
   * `?type=transfer-leg`: the caller is theirs, we leave. A dial that ends
   * unanswered asks `?type=transfer-end` what next: the stream again, so the
   * caller is back with us. A recorded call's Dial is recorded by Twilio
   * (both sides, dual channel). Warm: the person is a call of ours first
   * (stream-carrier.ts), then both join one Conference.
   */
  async transfer(providerCallId: string, request: TransferRequest): Promise<TransferResult> {
    const call = this.live(providerCallId);
    if (request.mode === "warm") return this.warmTransferWith(call, request);
    const { endpoints, config } = this.options;
    const response = new twilio.twiml.VoiceResponse();
    const dial = response.dial({
      action: endpoints.webhook({ type: "transfer-end" }),
      method: "POST",
      timeout: Math.max(5, Math.ceil(request.ringTimeoutMs / 1000)),
      ...(config.fromNumber ? { callerId: config.fromNumber } : {}),
      ...(request.record ? recordingAttributes(this.recordingCallback(call.id)).dial : {}),
    });
    dial.number({ statusCallback: endpoints.webhook({ type: "transfer-leg" }), statusCallbackEvent: ["answered"], statusCallbackMethod: "POST" }, request.to);
    return this.transferWith(call, request.ringTimeoutMs, async () => {
      if (request.record) this.recordings.expect(call.id, request.record);
      await this.client.calls(call.id).update({ twiml: response.toString() });
    });
  }

  /**
   * A warm transfer's caller and person into one Conference, named after
   * the caller's CallSid: the person first, so the caller never waits alone;
   * when either leaves, it ends for both. A recorded call's Conference is
   * recorded by Twilio (one mixed channel, as Twilio records conferences).
   */
  protected override async join(caller: StreamCall, person: StreamCall, record?: TransferRequest["record"]): Promise<void> {
    const room = new twilio.twiml.VoiceResponse();
    room.dial().conference(
      {
        beep: "false",
        startConferenceOnEnter: true,
        endConferenceOnExit: true,
        waitUrl: "",
        ...(record ? recordingAttributes(this.recordingCallback(caller.id)).conference : {}),
      },
      `transfer-${caller.id}`,
    );
    room.hangup();
    await this.client.calls(person.id).update({ twiml: room.toString() });
    if (record) this.recordings.expect(caller.id, record);
    await this.client.calls(caller.id).update({ twiml: room.toString() });
  }

  private recordingCallback(callSid: string): string {
    return this.options.endpoints.webhook({ type: "recording", call: callSid });
  }

  /** The person's leg answered (its Number statusCallback): the transfer is done. */
  private onTransferLeg(form: URLSearchParams): WebhookReply {
    if (form.get("CallStatus") === "in-progress") this.settleTransfer(form.get("ParentCallSid") ?? "", { outcome: "connected", ...(form.get("CallSid") ? { legId: form.get("CallSid")! } : {}) });
    return { status: 204 };
  }

  /** The Dial ended: unanswered, the caller comes back to us (a new stream); after a transfer that connected, the call is over. */
  private onTransferEnd(sid: string, form: URLSearchParams): WebhookReply {
    const call = this.calls.get(sid);
    const status = form.get("DialCallStatus") ?? "failed";
    const outcome = DIAL_OUTCOMES[status] ?? "failed";
    const legId = form.get("DialCallSid");
    if (!call || call.ended || !this.settleTransfer(sid, { outcome, reason: `Twilio's Dial ended ${status}`, ...(legId ? { legId } : {}) })) return twiml(hangupTwiml());
    return outcome === "connected" ? twiml(hangupTwiml()) : twiml(this.streamTwiml(sid));
  }

  protected async hangUpAtCarrier(call: StreamCall): Promise<void> {
    // A call not answered yet is canceled; one in progress is completed.
    await this.client.calls(call.id).update({ status: call.answered ? "completed" : "canceled" });
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
    const type = request.query.get("type") ?? "voice";
    // A Conference's recording callback names the conference, not a call: our call is in the query.
    if (type === "recording") {
      this.background(this.recordings.completed(request.query.get("call") ?? "", form), "fetching a recording");
      return { status: 204 };
    }
    const sid = form.get("CallSid");
    if (!sid || !/^CA[0-9a-f]{32}$/i.test(sid)) throw new VoiceCallError("INVALID_PARAMS", "CallSid: missing or malformed");
    if (type === "status") return this.onStatus(sid, form);
    if (type === "amd") {
      this.verdicts.settle(sid, twilioVerdict(form));
      return { status: 204 };
    }
    if (type === "transfer-leg") return this.onTransferLeg(form);
    if (type === "transfer-end") return this.onTransferEnd(sid, form);
    if (type === "voice" || type === "resume") return this.onVoice(sid, form);
    if (type === "input") this.onInput(sid, request.query.get("turn") ?? "", form);
    if (isDocumentType(type)) return documentReply(this.carrierSpeech?.reply(type, request.query));
    throw new VoiceCallError("INVALID_PARAMS", `type: unknown webhook type ${type.slice(0, 32)}`);
  }

  /** Twilio asks what to do with a call: stream it to us (or refuse an inbound call the manager turned away). */
  private async onVoice(sid: string, form: URLSearchParams): Promise<WebhookReply> {
    // Outbound calls are ours: placeCall knew the CallSid before Twilio could ask about it.
    const call = await this.admit(sid, { inbound: form.get("Direction") === "inbound", from: form.get("From"), to: form.get("To") }, "CallSid");
    if (call === "ended") return twiml(hangupTwiml());
    if (call === "refused") return twiml(rejectTwiml());
    if (this.carrierSpeech) {
      // Twilio speaks and listens: the call is up now; it waits for what we ask next.
      this.up(call);
      return documentReply(this.carrierSpeech.wait());
    }
    this.prepareMedia(call);
    return twiml(this.streamTwiml(sid));
  }

  /** What Twilio's Gather heard. */
  private onInput(sid: string, turn: string, form: URLSearchParams): void {
    const call = this.calls.get(sid);
    const heard = heardInput(form.get("SpeechResult"), form.get("Digits"), turn);
    if (call && !call.ended && heard) this.emit(call, heard);
  }

  private onStatus(sid: string, form: URLSearchParams): WebhookReply {
    const status = form.get("CallStatus") ?? "";
    // A status for a call not known (yet) is passed on without being kept: the manager holds early events briefly.
    const call = this.calls.get(sid) ?? this.transient(sid);
    if (status === "ringing") this.emit(call, { type: "ringing" });
    const end = endOf(status, call.answered);
    if (end) {
      this.verdicts.forget(sid);
      const detail = [status, form.get("SipResponseCode") && `SIP ${form.get("SipResponseCode")}`].filter(Boolean).join(", ");
      this.background(this.endWith(call, call.hangupRequested ? "hangup-bot" : end, `Twilio reports ${detail}`), "ending a call");
    }
    return { status: 204 };
  }

  private replayReply(request: WebhookRequest): WebhookReply {
    const type = request.query.get("type") ?? "voice";
    if (type === "status" || type === "transfer-leg" || type === "amd" || type === "recording") return { status: 204 };
    // A retried TwiML fetch gets the same answer; nothing new is started.
    if (isDocumentType(type)) return documentReply(this.carrierSpeech?.reply(type, request.query, true));
    const sid = new URLSearchParams(request.rawBody.toString("utf8")).get("CallSid") ?? "";
    const call = this.calls.get(sid);
    if (!call || call.ended || call.decision === "reject") return twiml(hangupTwiml());
    return this.carrierSpeech ? documentReply(this.carrierSpeech.wait()) : twiml(this.streamTwiml(sid));
  }

  /** `<Connect><Stream>` with the credential for this CallSid, then back to us if the stream drops. */
  private streamTwiml(sid: string): TwiML {
    const response = new twilio.twiml.VoiceResponse();
    const stream = response.connect().stream({ url: this.options.endpoints.stream() });
    stream.parameter({ name: "token", value: this.streamToken(sid) });
    response.redirect({ method: "POST" }, this.options.endpoints.webhook({ type: "resume" }));
    return response;
  }

  protected parseStream(text: string) {
    return twilioStreamEvent(text);
  }
}

function twiml(response: TwiML): WebhookReply {
  return { status: 200, contentType: TWIML, body: response.toString() };
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
