/**
 * Plivo through its official SDK: calls made, cancelled and hung up over the
 * Voice API, keys sent with Send Digits, Plivo XML built with the SDK's
 * Response (a bidirectional <Stream> to us; <Hangup> for refused callers),
 * webhooks checked with the SDK's V3 signature validator (HMAC-SHA256 over
 * the URL, the sorted parameters and a nonce) and replay keys shared with
 * the ingress. Audio is the shared media-stream transport.
 *
 * Plivo facts this relies on:
 * - an outbound call is known by its request_uuid until Plivo's answer
 *   webhook names its CallUUID (both arrive there); inbound calls by CallUUID;
 * - the <Stream>'s extraHeaders come back in the stream's `start` message:
 *   they carry our call id and its credential;
 * - `checkpoint` is echoed as `playedStream` once the audio before it played.
 */
import { createHash } from "node:crypto";
import plivo from "plivo";
import { VoiceCallError } from "../../errors.js";
import { DocumentSpeech, documentReply, heardInput, isDocumentType } from "../document-speech.js";
import { StreamCarrier, type StreamCall, type StreamCarrierOptions } from "../stream-carrier.js";
import type {
  CallHint,
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
import { PLIVO_WIRE, plivoStreamEvent, streamHeaders } from "./stream.js";
import { plivoDocuments, plivoXml, type PlivoXml } from "./xml.js";
import { PlivoRooms } from "./conference.js";
import { PlivoFailure, plivoClient, sdk, type PlivoClient } from "./client.js";

export type PlivoProviderOptions = StreamCarrierOptions;

const XML = "text/xml";

/** A Dial's DialStatus as a transfer's outcome. */
const DIAL_OUTCOMES: Record<string, TransferOutcome> = { completed: "connected", busy: "busy", timeout: "no-answer", "no-answer": "no-answer", failed: "failed" };

/** Plivo's CallStatus on the hangup webhook to how a call ended. */
function endOf(status: string, answered: boolean, byUs: boolean): TerminalState {
  if (byUs) return "hangup-bot";
  switch (status) {
    case "busy":
      return "busy";
    case "no-answer":
    case "timeout":
      return "no-answer";
    case "cancel":
      return "hangup-bot";
    case "completed":
      return answered ? "hangup-user" : "completed";
    default:
      return answered ? "hangup-user" : "failed";
  }
}


export class PlivoProvider extends StreamCarrier {
  readonly id = "plivo" as const;
  readonly capabilities: ProviderCapabilities;
  readonly ingress: CarrierIngress;
  private readonly client: PlivoClient;
  private readonly authId: string;
  private readonly authToken: string;
  /** CallUUID of an outbound call, by the request_uuid it is known by, once Plivo's answer webhook names it; and back. */
  private readonly callUuids = new Map<string, string>();
  private readonly requestUuids = new Map<string, string>();
  /** With streaming off: Plivo speaks (Speak) and listens (GetInput) itself. */
  protected declare carrierSpeech?: DocumentSpeech;
  /** Calls whose transfer is dialling: who, for the Dial document Plivo fetches. */
  private readonly dialling = new Map<string, TransferRequest>();
  /** Plivo says a machine as soon as it knows: a message left on it waits for the beep on our audio. */
  protected override readonly carrierAmdWaitsForGreeting = false;
  /** Warm transfers' Conferences. */
  private readonly rooms: PlivoRooms;

  constructor(protected override readonly options: PlivoProviderOptions) {
    super(options, "plivo", PLIVO_WIRE);
    const { authId, authToken } = options.config.plivo ?? {};
    if (!authId || !authToken) throw new VoiceCallError("INVALID_CONFIG", "plivo.authId and plivo.authToken are required");
    this.authId = authId;
    this.authToken = authToken;
    this.client = plivoClient(authId, authToken, options.apiBaseUrl);
    this.rooms = new PlivoRooms(authId, authToken, options.endpoints, (work) => this.background(work, "fetching a recording"));
    // A warm transfer briefs the person on a stream of ours: not with Plivo's own speech.
    this.capabilities = { inbound: true, dtmfOut: true, e164Only: true, turnTokens: true, warmTransfer: options.config.streaming.enabled };
    if (!options.config.streaming.enabled) {
      this.carrierSpeech = new DocumentSpeech({
        transfer: (id, query) => this.moveTo(id, query),
        url: (query) => options.endpoints.webhook(query),
        documents: plivoDocuments,
        waitSeconds: options.config.maxDurationSeconds + 60,
        // Plivo caps speech input at 60 s.
        listenSeconds: 60,
        // Plivo's live-call API does not know a call it has not put up yet (an inbound call still being answered).
        notUpYet: (err) => err instanceof PlivoFailure && err.status === 404,
      });
    }
    this.ingress = {
      webhook: {
        requiredHeaders: ["x-plivo-signature-v3", "x-plivo-signature-v3-nonce"],
        verify: (request) => this.verify(request),
        handle: (request) => this.onWebhook(request),
        replayReply: (request) => this.replayReply(request),
        // An outbound call is known by its request_uuid until Plivo names its CallUUID; a stream's Redirect names our call.
        callsOf: (request) => {
          const form = new URLSearchParams(request.rawBody.toString("utf8"));
          return [request.query.get("call"), form.get("RequestUUID"), form.get("CallUUID")].filter((id): id is string => !!id);
        },
        retryLater: (request) => xml(retryXml(request.url)),
      },
      stream: { open: (text, connection) => this.openStream(text, connection), callOf: (text) => this.streamCallOf(text) },
    };
  }

  protected async open(): Promise<void> {
    if (!this.carrierSpeech) this.warmSpeech(8000);
  }

  /** Moves an answered call to the XML our webhook serves for `query` (Transfer API). */
  private async moveTo(providerCallId: string, query: Record<string, string>): Promise<void> {
    const uuid = this.uuidOf(providerCallId);
    if (!uuid) throw new VoiceCallError("INVALID_STATE", `call ${providerCallId} is not answered yet`);
    // The SDK's typing asks for the bridged leg's URL too; only our leg moves.
    const params = { legs: "aleg", alegUrl: this.options.endpoints.webhook(query), alegMethod: "POST" } as Parameters<PlivoClient["calls"]["transfer"]>[1];
    await sdk(this.client.calls.transfer(uuid, params));
  }

  /**
   * Blind transfer: the call moves (Transfer API) to a `<Dial>` of the
   * person our webhook serves (our stream ends with it). The Dial's
   * callbackUrl tells when the person answers: the caller is theirs, we
   * leave. A Dial that ends unanswered asks its action URL what next: the
   * stream again, so the caller is back with us.
   */
  async transfer(providerCallId: string, request: TransferRequest): Promise<TransferResult> {
    const call = this.live(providerCallId);
    if (request.mode === "warm") return this.warmTransferWith(call, request);
    this.dialling.set(call.id, request);
    try {
      return await this.transferWith(call, request.ringTimeoutMs, () => this.moveTo(call.id, { type: "transfer-dial" }));
    } finally {
      this.dialling.delete(call.id);
    }
  }

  /**
   * A warm transfer's caller and person move (Transfer API) into one
   * Conference named after the caller: the person first, so the caller never
   * waits alone; when either leaves, it ends for both. A recorded call's
   * Conference is recorded by Plivo (WAV), its file fetched when Plivo says.
   */
  protected override async join(caller: StreamCall, person: StreamCall, record?: TransferRequest["record"]): Promise<void> {
    this.rooms.open(caller.id, record);
    await this.moveTo(person.id, { type: "transfer-room", room: caller.id });
    await this.moveTo(caller.id, { type: "transfer-room", room: caller.id });
  }

  /** The Dial a transferred call moves to. */
  private dialXml(call: StreamCall): WebhookReply {
    const request = this.dialling.get(call.id);
    if (!request || call.ended) return xml(hangupXml());
    const { endpoints, config } = this.options;
    const response = plivoXml();
    response
      .addDial({
        action: endpoints.webhook({ type: "transfer-end" }),
        method: "POST",
        callbackUrl: endpoints.webhook({ type: "transfer-leg" }),
        callbackMethod: "POST",
        timeout: String(Math.max(5, Math.ceil(request.ringTimeoutMs / 1000))),
        ...(config.fromNumber ? { callerId: config.fromNumber } : {}),
      })
      .addNumber(request.to);
    return xml(response);
  }

  /** The Dial ended: unanswered, the caller comes back to us (the stream again); after a transfer that connected, the call is over. */
  private onTransferEnd(call: StreamCall | undefined, form: URLSearchParams): WebhookReply {
    const status = form.get("DialStatus") ?? "failed";
    const outcome = DIAL_OUTCOMES[status] ?? "failed";
    const legId = form.get("DialBLegUUID");
    if (!call || call.ended || !this.settleTransfer(call.id, { outcome, reason: `Plivo's Dial ended ${status}`, ...(legId ? { legId } : {}) })) return xml(hangupXml());
    return xml(outcome === "connected" ? hangupXml() : this.streamXml(call));
  }

  /** The id mapping goes with the call (late webhooks, Plivo's hangup after ours, still found it until now). */
  protected override forgotten(call: StreamCall): void {
    // A Conference whose recording is awaited stays until Plivo's callback.
    this.rooms.forget(call.id);
    const uuid = this.callUuids.get(call.id);
    this.callUuids.delete(call.id);
    if (uuid) this.requestUuids.delete(uuid);
  }

  /** The CallUUID Plivo knows a call by (outbound: once the answer named it). */
  private uuidOf(providerCallId: string): string | undefined {
    return this.callUuids.get(providerCallId) ?? (this.calls.get(providerCallId)?.direction === "inbound" ? providerCallId : undefined);
  }

  protected parseStream(text: string) {
    return plivoStreamEvent(text);
  }

  // ------------------------------------------------------------ call control

  async placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }> {
    const { endpoints, config } = this.options;
    const created = await sdk(this.client.calls.create(request.from ?? config.fromNumber ?? "", request.to, endpoints.webhook({ type: "answer" }), {
      answerMethod: "POST",
      hangupUrl: endpoints.webhook({ type: "hangup" }),
      hangupMethod: "POST",
      ringUrl: endpoints.webhook({ type: "ring" }),
      ringMethod: "POST",
      ringTimeout: Math.max(5, Math.ceil((request.ringTimeoutMs ?? config.ringTimeoutMs) / 1000)),
      // Plivo's own detection, asynchronous: its verdict is posted to ?type=amd while the call is up.
      ...(this.carrierDetects(request)
        ? { machineDetection: "true", machineDetectionTime: Math.min(10_000, Math.max(2000, config.outbound.amd.timeoutMs)), machineDetectionUrl: endpoints.webhook({ type: "amd" }), machineDetectionMethod: "POST" }
        : {}),
    }));
    const id = Array.isArray(created.requestUuid) ? created.requestUuid[0] : created.requestUuid;
    if (!id) throw new VoiceCallError("PROVIDER_ERROR", "Plivo accepted the call without a request_uuid");
    if (this.carrierDetects(request)) this.verdicts.expect(id);
    this.callFor(id, "outbound");
    return { providerCallId: id };
  }

  protected async hangUpAtCarrier(call: StreamCall): Promise<void> {
    // Not answered yet: the request is cancelled; in progress: the call is hung up.
    const uuid = this.uuidOf(call.id);
    await sdk(uuid ? this.client.calls.hangup(uuid) : this.client.calls.cancel(call.id)).catch((err: PlivoFailure) => {
      // Already gone at Plivo.
      if (err.status !== 404) throw err;
    });
  }

  /** Keys through Send Digits (w and W pause 0.5 s and 1 s there too). */
  override async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    this.live(providerCallId);
    const uuid = this.uuidOf(providerCallId);
    if (!uuid) throw new VoiceCallError("INVALID_STATE", `call ${providerCallId} is not answered yet`);
    await sdk(this.client.calls.sendDigits(uuid, digits, {}));
  }

  /** Live or still queued at Plivo: active; neither: ended. */
  async getCallStatus(providerCallId: string, hint?: CallHint): Promise<RemoteCallStatus> {
    const uuid = this.callUuids.get(providerCallId) ?? providerCallId;
    const found = async (lookup: () => Promise<unknown>) =>
      sdk(lookup()).then(
        () => true,
        (err: PlivoFailure) => {
          if (err.status === 404) return false;
          throw err;
        },
      );
    try {
      if ((await found(() => this.client.calls.getLiveCall(uuid))) || (await found(() => this.client.calls.getQueuedCall(providerCallId)))) return { status: "active" };
      // An answered outbound call restored here (a restart, a take-over) may be live under a CallUUID this
      // instance was never told, which only its stream's Redirect names: taken as live, and hung up if that
      // does not come within the stream wait (readopt). Inbound calls are known by their CallUUID, checked above.
      if (uuid === providerCallId && hint?.direction === "outbound" && hint.answered) return { status: "active" };
      return { status: "ended", state: "completed", reason: "Plivo has no live or queued call by that id" };
    } catch (err) {
      return { status: "unknown", reason: (err as Error).message };
    }
  }

  async check(): Promise<SetupFinding[]> {
    try {
      await sdk(this.client.accounts.get());
    } catch (err) {
      const status = (err as PlivoFailure).status;
      const refused = status === 401 || status === 403;
      return [{
        check: "plivo-account",
        status: "fail",
        detail: refused ? `Plivo refused the credentials (HTTP ${status})` : `Plivo's API did not answer: ${(err as Error).message}`,
        fix: refused ? "check plivo.authId and plivo.authToken (PLIVO_AUTH_ID / PLIVO_AUTH_TOKEN)" : "check this machine's connection to api.plivo.com",
      }];
    }
    const out: SetupFinding[] = [{ check: "plivo-account", status: "ok", detail: `credentials accepted for ${this.authId}` }];
    const from = this.options.config.fromNumber;
    if (from) {
      // GET Number/{number}/: the SDK's resource interface has get() without a declared type.
      const numbers = this.client.numbers as unknown as { get(number: string): Promise<unknown> };
      const owned = await sdk(numbers.get(from.replace(/^\+/, ""))).then(() => true, () => false);
      out.push(owned
        ? { check: "plivo-from-number", status: "ok", detail: `fromNumber ${from} is a number on this account` }
        : { check: "plivo-from-number", status: "fail", detail: `fromNumber ${from} is not a number on this account`, fix: "set fromNumber to a number the account owns (Phone Numbers in the console)" });
    }
    return out;
  }

  // ---------------------------------------------------------------- webhooks

  /** V3 signature over the URL, the sorted form fields and the nonce, by the SDK; the replay key is the nonce and URL. */
  private verify(request: WebhookRequest): WebhookVerdict {
    const signature = request.headers["x-plivo-signature-v3"] ?? "";
    const nonce = request.headers["x-plivo-signature-v3-nonce"] ?? "";
    const params = Object.fromEntries(new URLSearchParams(request.rawBody.toString("utf8")));
    let valid = false;
    try {
      valid = plivo.validateV3Signature("POST", request.url, nonce, this.authToken, signature, params) as boolean;
    } catch {
      valid = false;
    }
    if (!valid) return { ok: false, reason: "X-Plivo-Signature-V3 does not match" };
    const replayKey = createHash("sha256").update(`plivo\n${nonce}\n${request.url}\n`).update(request.rawBody).digest("base64url");
    return { ok: true, replayKey };
  }

  private async onWebhook(request: WebhookRequest): Promise<WebhookReply> {
    const form = new URLSearchParams(request.rawBody.toString("utf8"));
    const callUuid = form.get("CallUUID") ?? "";
    if (!/^[0-9a-f-]{8,64}$/i.test(callUuid)) throw new VoiceCallError("INVALID_PARAMS", "CallUUID: missing or malformed");
    // A stream's Redirect names our call in its (signed) URL: an outbound call taken over by this instance
    // learns its CallUUID here.
    const named = request.query.get("call") ?? "";
    const requestUuid = named && named !== callUuid && this.calls.has(named) ? named : (form.get("RequestUUID") ?? "");
    // Our outbound calls are known by the request_uuid we got; the answer names their CallUUID (later webhooks may carry only that).
    const id = requestUuid && this.calls.has(requestUuid) ? requestUuid : (this.requestUuids.get(callUuid) ?? callUuid);
    if (id === requestUuid && requestUuid) {
      this.callUuids.set(requestUuid, callUuid);
      this.requestUuids.set(callUuid, requestUuid);
    }
    const type = request.query.get("type") ?? "answer";
    switch (type) {
      case "answer":
        return this.onAnswer(id, form);
      case "resume":
        return this.onResume(id);
      case "ring": {
        const call = this.calls.get(id);
        if (call) this.emit(call, { type: "ringing" });
        return { status: 204 };
      }
      case "input":
        this.onInput(id, request.query.get("turn") ?? "", form);
        return documentReply(this.carrierSpeech?.reply(type, request.query));
      case "speak":
      case "spoken":
      case "listen":
        return documentReply(this.carrierSpeech?.reply(type, request.query));
      case "transfer-dial":
        return this.dialXml(this.calls.get(id) ?? this.transient(id));
      case "transfer-leg": {
        // The Dial's callback: the person answered.
        const legId = form.get("DialBLegUUID");
        if (form.get("DialAction") === "answer") this.settleTransfer(id, { outcome: "connected", ...(legId ? { legId } : {}) });
        return { status: 204 };
      }
      case "transfer-end":
        return this.onTransferEnd(this.calls.get(id), form);
      case "amd": {
        // Machine: true or false; Plivo says nothing of the time it took, counted here from the answer.
        const machine = form.get("Machine");
        const ms = this.verdicts.since(id);
        const reason = `Plivo: Machine ${(machine ?? "missing").slice(0, 16)}`;
        this.verdicts.settle(id, { outcome: machine === "true" ? "machine" : machine === "false" ? "human" : "unknown", ms, reason });
        return { status: 204 };
      }
      case "transfer-room":
        return xml(this.rooms.document(request.query.get("room") ?? "") ?? hangupXml());
      case "transfer-recorded":
        this.rooms.event(request.query.get("room") ?? "", form);
        return { status: 204 };
      case "hangup": {
        const call = this.calls.get(id) ?? this.transient(id);
        const status = form.get("CallStatus") ?? "";
        const detail = [status, form.get("HangupCauseName"), form.get("HangupSource") && `by ${form.get("HangupSource")}`].filter(Boolean).join(", ");
        this.background(this.endWith(call, endOf(status, call.answered, call.hangupRequested), `Plivo reports ${detail || "hangup"}`), "ending a call");
        return { status: 204 };
      }
      default:
        throw new VoiceCallError("INVALID_PARAMS", `type: unknown webhook type ${type.slice(0, 32)}`);
    }
  }

  /** Plivo asks what to do with an answered (outbound) or ringing-in (inbound) call: stream it to us, or refuse it. */
  private async onAnswer(id: string, form: URLSearchParams): Promise<WebhookReply> {
    this.verdicts.answered(id);
    const call = await this.admit(id, { inbound: form.get("Direction") === "inbound", from: form.get("From"), to: form.get("To") }, "CallUUID");
    if (call === "ended") return xml(hangupXml());
    if (call === "refused") return xml(hangupXml("rejected"));
    if (this.carrierSpeech) {
      // Plivo speaks and listens: the call is up now; it waits for what we ask next.
      this.up(call);
      return documentReply(this.carrierSpeech.wait());
    }
    this.prepareMedia(call);
    return xml(this.streamXml(call));
  }

  /**
   * The call's stream ended and Plivo ran the Redirect after it: the instance that held the call went (or
   * the stream dropped). The call goes on with a new stream; a call not held here any more is hung up.
   */
  private onResume(id: string): WebhookReply {
    const call = this.calls.get(id);
    if (!call || call.ended || call.decision !== "answer" || this.carrierSpeech) return xml(hangupXml());
    this.prepareMedia(call);
    return xml(this.streamXml(call));
  }

  /** What Plivo heard in a GetInput. */
  private onInput(id: string, turn: string, form: URLSearchParams): void {
    const call = this.calls.get(id);
    const heard = heardInput(form.get("Speech"), form.get("Digits"), turn);
    if (call && !call.ended && heard) this.emit(call, heard);
  }

  private replayReply(request: WebhookRequest): WebhookReply {
    const type = request.query.get("type") ?? "answer";
    // A retried document fetch gets the same document; nothing is acted on twice.
    if (isDocumentType(type)) return documentReply(this.carrierSpeech?.reply(type, request.query, true));
    if (type === "transfer-room") return xml(this.rooms.document(request.query.get("room") ?? "") ?? hangupXml());
    if (type !== "answer" && type !== "transfer-dial" && type !== "resume") return { status: 204 };
    const form = new URLSearchParams(request.rawBody.toString("utf8"));
    const call =
      this.calls.get(request.query.get("call") ?? "") ??
      this.calls.get(form.get("RequestUUID") ?? "") ??
      this.calls.get(this.requestUuids.get(form.get("CallUUID") ?? "") ?? form.get("CallUUID") ?? "");
    if (type === "transfer-dial") return call ? this.dialXml(call) : xml(hangupXml());
    return xml(call && !call.ended && call.decision !== "reject" ? this.streamXml(call) : hangupXml());
  }

  /** A bidirectional mu-law stream to us, kept up for the whole call, carrying the call's credential. */
  private streamXml(call: StreamCall): PlivoXml {
    const response = plivoXml();
    response.addStream(this.options.endpoints.stream(), {
      bidirectional: "true",
      audioTrack: "inbound",
      keepCallAlive: "true",
      contentType: "audio/x-mulaw;rate=8000",
      extraHeaders: streamHeaders(call.id, this.streamToken(call.id)),
    });
    // keepCallAlive holds the document at the stream until it ends: a call still up then (its instance
    // went) asks us again, and whichever instance holds it by then streams it anew.
    response.addRedirect(this.options.endpoints.webhook({ type: "resume", call: call.id }), { method: "POST" });
    return response;
  }
}

function xml(response: PlivoXml): WebhookReply {
  return { status: 200, contentType: XML, body: response.toXML() };
}

/** Ask again in a second: the call's instance went, and another has not taken it over yet. */
function retryXml(url: string): PlivoXml {
  const response = plivoXml();
  response.addWait({ length: "1" });
  response.addRedirect(url, { method: "POST" });
  return response;
}

function hangupXml(reason?: string): PlivoXml {
  const response = plivoXml();
  response.addHangup(reason ? { reason } : {});
  return response;
}
