/**
 * Telnyx Call Control v2 through its official SDK: calls dialled, answered,
 * rejected and hung up over REST, media streaming started with the answer
 * (bidirectional RTP, PCMU), keys sent with send_dtmf. Webhooks are JSON
 * events signed with Ed25519 over `timestamp|body`, checked by the SDK's
 * own verifier (5-minute window); a missing key, header or bad timestamp is
 * a refusal, never a skip. Audio is the shared media-stream transport, so
 * speech, barge-in (`clear`), markers and auto-responses behave as on every
 * other carrier.
 *
 * With `streaming.enabled: false` Telnyx speaks and listens itself
 * (carrier-speech.ts): Call Control speak, transcription and DTMF webhooks.
 *
 * Telnyx facts this relies on:
 * - an inbound call is `call.initiated` for a call_control_id we did not
 *   dial (its direction is read from the event, not trusted from elsewhere);
 * - the stream's credential travels as client_state on streaming_start /
 *   answer and comes back in the stream's `start` frame;
 * - keys pressed arrive on the stream (`dtmf` frames); the webhook's
 *   call.dtmf.received is used only without the stream, so a key is never
 *   counted twice.
 */
import { createHash } from "node:crypto";
import Telnyx from "telnyx";
import { z } from "zod";
import { VoiceCallError, parseJsonOrThrow } from "../../errors.js";
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
import { TelnyxCarrierSpeech } from "./carrier-speech.js";
import { TELNYX_WIRE, telnyxStreamEvent } from "./stream.js";
import { fetchBytes, keepCarrierRecording, type TransferRecording } from "../carrier-recording.js";
import type { AmdVerdict } from "../../audio/amd.js";
import { telnyxAmdParams, telnyxVerdict } from "./amd.js";

export type TelnyxProviderOptions = StreamCarrierOptions;

const API_BASE = "https://api.telnyx.com/v2";

const Event = z.object({
  data: z.object({
    id: z.string().min(1).max(128),
    event_type: z.string().min(1).max(128),
    payload: z
      .object({
        call_control_id: z.string().min(1).max(256),
        direction: z.string().max(32).optional(),
        from: z.string().max(256).optional(),
        to: z.string().max(256).optional(),
        hangup_cause: z.string().max(64).optional(),
        hangup_source: z.string().max(32).optional(),
        sip_hangup_cause: z.string().max(16).optional(),
        client_state: z.string().max(4096).optional(),
        status: z.string().max(32).optional(),
        digit: z.string().max(8).optional(),
        transcription_data: z.object({ transcript: z.string().max(10_000).optional(), is_final: z.boolean().optional() }).passthrough().optional(),
        result: z.string().max(64).optional(),
        recording_urls: z.object({ wav: z.string().max(4096).nullable().optional() }).passthrough().optional(),
        recording_started_at: z.string().max(64).nullable().optional(),
        recording_ended_at: z.string().max(64).nullable().optional(),
      })
      .passthrough(),
  }),
});

/** The hangup_cause of a transfer's leg that ended before it was answered, as the transfer's outcome. */
const TRANSFER_CAUSES: Record<string, TransferOutcome> = { user_busy: "busy", timeout: "no-answer", no_answer: "no-answer", call_rejected: "declined" };

/** Telnyx's hangup_cause to how a call ended. */
function endOf(cause: string, answered: boolean, byUs: boolean): TerminalState {
  if (byUs) return "hangup-bot";
  switch (cause) {
    case "user_busy":
    case "call_rejected":
      return answered ? "hangup-user" : "busy";
    case "timeout":
    case "no_answer":
      return "no-answer";
    case "originator_cancel":
      return "hangup-bot";
    case "normal_clearing":
      return answered ? "hangup-user" : "completed";
    default:
      return answered ? "hangup-user" : "failed";
  }
}

export class TelnyxProvider extends StreamCarrier {
  readonly id = "telnyx" as const;
  readonly capabilities: ProviderCapabilities;
  readonly ingress: CarrierIngress;
  /** Transferred calls Telnyx records, by the caller's call_control_id, until call.recording.saved. */
  private readonly recordings = new Map<string, TransferRecording>();
  /** A machine's verdict waiting for its greeting to end (greeting_end), by call. */
  private readonly greetings = new Map<string, AmdVerdict>();
  private readonly client: Telnyx;
  private readonly connectionId: string;
  private readonly publicKey?: string;
  /** With streaming off: Telnyx speaks (speak) and listens (transcription) itself. */
  protected declare carrierSpeech?: TelnyxCarrierSpeech;

  constructor(protected override readonly options: TelnyxProviderOptions) {
    super(options, "telnyx", TELNYX_WIRE);
    const { apiKey, connectionId, publicKey } = options.config.telnyx ?? {};
    if (!apiKey || !connectionId) throw new VoiceCallError("INVALID_CONFIG", "telnyx.apiKey and telnyx.connectionId are required");
    this.connectionId = connectionId;
    this.publicKey = publicKey;
    // Everything given explicitly: the SDK would otherwise read TELNYX_* variables itself.
    this.client = new Telnyx({ apiKey, publicKey: publicKey ?? null, baseURL: options.apiBaseUrl ?? API_BASE, maxRetries: 2, timeout: 15_000 });
    // A warm transfer briefs the person on a stream of ours: not with Telnyx's own speech.
    this.capabilities = { inbound: true, dtmfOut: true, e164Only: true, turnTokens: true, warmTransfer: options.config.streaming.enabled };
    if (!options.config.streaming.enabled) {
      this.carrierSpeech = new TelnyxCarrierSpeech({
        speak: async (id, text, ref) => {
          await this.client.calls.actions.speak(id, { payload: text, voice: "female", language: "en-US", client_state: Buffer.from(ref).toString("base64") });
        },
        stopSpeaking: async (id) => {
          await this.client.calls.actions.stopPlayback(id, { stop: "all" });
        },
        heard: (id, event) => {
          const call = this.calls.get(id);
          if (call && !call.ended) this.emit(call, event.type === "speech" ? { ...event, isFinal: true } : event);
        },
      });
    }
    this.ingress = {
      webhook: {
        requiredHeaders: ["telnyx-signature-ed25519", "telnyx-timestamp"],
        verify: (request) => this.verify(request),
        handle: (request) => this.onWebhook(request),
        replayReply: () => ({ status: 200 }),
        // A transfer's person's leg carries the caller's call in its client_state.
        callsOf: (request) => {
          const parsed = Event.safeParse(safeJson(request.rawBody.toString("utf8")));
          if (!parsed.success) return [];
          const { call_control_id: id, client_state: state } = parsed.data.data.payload;
          const transferOf = Buffer.from(state ?? "", "base64").toString("utf8").match(/^transfer:(.+)$/)?.[1];
          return transferOf ? [transferOf, id] : [id];
        },
      },
      stream: { open: (text, connection) => this.openStream(text, connection), callOf: (text) => this.streamCallOf(text) },
    };
  }

  protected async open(): Promise<void> {
    if (!this.carrierSpeech) this.warmSpeech(8000);
  }

  protected parseStream(text: string) {
    return telnyxStreamEvent(text);
  }

  // ------------------------------------------------------------ call control

  async placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }> {
    const { endpoints, config } = this.options;
    const { data } = await this.client.calls.dial({
      connection_id: this.connectionId,
      to: request.to,
      from: request.from ?? config.fromNumber ?? "",
      webhook_url: endpoints.webhook(),
      webhook_url_method: "POST",
      timeout_secs: Math.max(5, Math.ceil((request.ringTimeoutMs ?? config.ringTimeoutMs) / 1000)),
      ...(this.carrierDetects(request) ? telnyxAmdParams(config.outbound.amd) : {}),
    });
    const id = data?.call_control_id;
    if (!id) throw new VoiceCallError("PROVIDER_ERROR", "Telnyx accepted the call without a call_control_id");
    if (this.carrierDetects(request)) this.verdicts.expect(id);
    this.callFor(id, "outbound");
    return { providerCallId: id };
  }

  protected async hangUpAtCarrier(call: StreamCall): Promise<void> {
    await this.client.calls.actions.hangup(call.id, {}).catch((err: { status?: number }) => {
      // 422: the call is already gone at Telnyx.
      if (err.status !== 422 && err.status !== 404) throw err;
    });
  }

  /** Keys as RFC 2833 events through Call Control (w is a 0.5 s pause there too). */
  override async sendDtmf(providerCallId: string, digits: string): Promise<void> {
    this.live(providerCallId);
    await this.client.calls.actions.sendDtmf(providerCallId, { digits, duration_millis: 250 });
  }

  async getCallStatus(providerCallId: string): Promise<RemoteCallStatus> {
    try {
      const { data } = await this.client.calls.retrieveStatus(providerCallId);
      return data?.is_alive ? { status: "active" } : { status: "ended", state: "completed", reason: "Telnyx reports the call is no longer alive" };
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404) return { status: "ended", state: "completed", reason: "Telnyx does not know the call" };
      return { status: "unknown", reason: (err as Error).message };
    }
  }

  async check(): Promise<SetupFinding[]> {
    try {
      await this.client.balance.retrieve();
    } catch (err) {
      const status = (err as { status?: number }).status;
      const refused = status === 401 || status === 403;
      return [{
        check: "telnyx-account",
        status: "fail",
        detail: refused ? `Telnyx refused the API key (HTTP ${status})` : `Telnyx's API did not answer: ${(err as Error).message}`,
        fix: refused ? "check telnyx.apiKey (TELNYX_API_KEY)" : "check this machine's connection to api.telnyx.com",
      }];
    }
    const out: SetupFinding[] = [{ check: "telnyx-account", status: "ok", detail: "API key accepted" }];
    out.push(this.publicKey
      ? { check: "telnyx-webhooks", status: "ok", detail: "webhooks are verified with telnyx.publicKey (Ed25519, 5-minute window)" }
      : { check: "telnyx-webhooks", status: "warn", detail: "skipSignatureVerification is on: anyone can post events to the webhook", fix: "set telnyx.publicKey (Mission Control: Keys & Credentials, Public Key) and turn skipSignatureVerification off" });
    return out;
  }

  // ---------------------------------------------------------------- webhooks

  /** Ed25519 over `timestamp|body` with the account's public key, by the SDK; the replay key is the signed delivery. */
  private async verify(request: WebhookRequest): Promise<WebhookVerdict> {
    if (!this.publicKey) return { ok: false, reason: "telnyx.publicKey is not set" };
    const body = request.rawBody.toString("utf8");
    try {
      await this.client.webhooks.unwrap(body, { headers: request.headers as Record<string, string>, key: this.publicKey });
    } catch (err) {
      return { ok: false, reason: (err as Error).message.replace(/: .{60,}$/, "") };
    }
    const replayKey = createHash("sha256").update(`telnyx\n${request.headers["telnyx-timestamp"]}\n`).update(request.rawBody).digest("base64url");
    return { ok: true, replayKey };
  }

  private async onWebhook(request: WebhookRequest): Promise<WebhookReply> {
    const { event_type: type, payload } = parseJsonOrThrow(Event, request.rawBody.toString("utf8"), "webhook").data;
    const id = payload.call_control_id;
    // The person's leg of a transfer carries the call it came from in its client_state.
    const transferOf = Buffer.from(payload.client_state ?? "", "base64").toString("utf8").match(/^transfer:(.+)$/)?.[1];
    if (transferOf) return this.onTransferLeg(transferOf, id, type, payload.hangup_cause);
    const known = this.calls.get(id);
    switch (type) {
      case "call.initiated":
        // Ours if we dialled it; otherwise a caller is ringing in (whatever else the event claims).
        if (!known && payload.direction !== "outgoing") this.background(this.onInbound(id, payload.from, payload.to), "taking an inbound call");
        break;
      case "call.answered":
        if (!known || known.ended) break;
        this.verdicts.answered(id);
        if (this.carrierSpeech) this.background(this.startListening(known), "starting transcription");
        else if (known.direction === "outbound") this.background(this.startStream(known), "starting the media stream");
        break;
      case "call.speak.ended":
        this.carrierSpeech?.spoken(Buffer.from(payload.client_state ?? "", "base64").toString("utf8"), payload.status);
        break;
      case "call.transcription": {
        const data = payload.transcription_data;
        if (known && !known.ended && data) this.carrierSpeech?.transcript(id, data.transcript ?? "", data.is_final ?? false);
        break;
      }
      case "call.dtmf.received":
        // With the stream, keys arrive as its dtmf frames instead.
        if (this.carrierSpeech && known && !known.ended && payload.digit && /^[0-9A-D*#]$/.test(payload.digit)) this.emit(known, { type: "dtmf", digits: payload.digit });
        break;
      case "call.machine.detection.ended":
      case "call.machine.greeting.ended":
        this.onMachineDetection(id, type, payload.result);
        break;
      case "call.recording.saved":
        this.background(this.recordingSaved(id, payload.recording_urls?.wav ?? undefined, payload.recording_started_at, payload.recording_ended_at), "fetching a recording");
        break;
      case "call.hangup": {
        const call = known ?? this.transient(id);
        const state = endOf(payload.hangup_cause ?? "", call.answered, call.hangupRequested);
        const detail = [payload.hangup_cause, payload.hangup_source && `by ${payload.hangup_source}`, payload.sip_hangup_cause && `SIP ${payload.sip_hangup_cause}`].filter(Boolean).join(", ");
        this.background(this.endWith(call, state, `Telnyx reports ${detail || "hangup"}`), "ending a call");
        break;
      }
      default:
        break;
    }
    return { status: 200 };
  }

  /**
   * Blind transfer through Call Control's transfer: Telnyx dials the person
   * and bridges them with the caller once they answer; the person's leg
   * reports under its own id, with the call it came from in its client
   * state. Unanswered, the caller is still on our stream. Warm: the person
   * is a call of ours first (stream-carrier.ts), then the two are bridged.
   */
  async transfer(providerCallId: string, request: TransferRequest): Promise<TransferResult> {
    const call = this.live(providerCallId);
    if (request.mode === "warm") return this.warmTransferWith(call, request);
    const { config, endpoints } = this.options;
    const result = await this.transferWith(call, request.ringTimeoutMs, async () => {
      await this.client.calls.actions.transfer(call.id, {
        to: request.to,
        ...(config.fromNumber ? { from: config.fromNumber } : {}),
        timeout_secs: Math.max(5, Math.ceil(request.ringTimeoutMs / 1000)),
        target_leg_client_state: Buffer.from(`transfer:${call.id}`).toString("base64"),
        webhook_url: endpoints.webhook(),
        webhook_url_method: "POST",
      });
      // Our stream goes on while the person's phone rings: the caller can still be heard and spoken to.
      call.held = false;
    });
    // Put through: our stream stops (the caller and the person are bridged at Telnyx).
    if (result.outcome === "connected") await this.putThrough([call.id], request.record);
    return result;
  }

  /** A warm transfer's caller and person bridged at Telnyx (when either hangs up, Telnyx hangs up the other). */
  /** What was kept for a call's detection goes with it. */
  protected override forgotten(call: StreamCall): void {
    this.greetings.delete(call.id);
  }

  protected override async join(caller: StreamCall, person: StreamCall, record?: TransferRequest["record"]): Promise<void> {
    await this.client.calls.actions.bridge(caller.id, { call_control_id_to_bridge_with: person.id });
    await this.putThrough([caller.id, person.id], record);
  }

  /** Our streams of bridged calls stop; a recorded call is recorded by Telnyx (both sides, dual channel) until it ends. */
  private async putThrough(ids: string[], record: TransferRequest["record"]): Promise<void> {
    await Promise.all(ids.map((id) => this.client.calls.actions.stopStreaming(id, {}).catch((err) => this.log.warn({ callId: id, err: String(err) }, "could not stop the stream after a transfer"))));
    if (!record) return;
    const callerId = ids[0]!;
    this.recordings.set(callerId, record);
    try {
      await this.client.calls.actions.startRecording(callerId, { format: "wav", channels: "dual" });
    } catch (err) {
      this.recordings.delete(callerId);
      record.done({ failed: `Telnyx did not record the transferred call: ${(err as Error).message}` });
    }
  }

  /** Telnyx saved a transferred call's recording: its WAV is fetched (a signed link, no credentials sent) beside ours. */
  private async recordingSaved(id: string, wavUrl: string | undefined, startedAt?: string | null, endedAt?: string | null): Promise<void> {
    const record = this.recordings.get(id);
    if (!record) return;
    this.recordings.delete(id);
    if (!wavUrl || !/^https?:\/\//.test(wavUrl)) return record.done({ failed: "Telnyx saved the recording without a WAV link" });
    const span = startedAt && endedAt ? Date.parse(endedAt) - Date.parse(startedAt) : NaN;
    await keepCarrierRecording(record, () => fetchBytes(wavUrl), { carrier: "Telnyx", ...(Number.isFinite(span) && span >= 0 ? { durationMs: span } : {}) });
  }

  /** An event of a transfer's leg: answered or bridged, the transfer is done; hung up first, it failed, saying why. */
  private onTransferLeg(callId: string, legId: string, type: string, cause: string | undefined): WebhookReply {
    if (type === "call.answered" || type === "call.bridged") this.settleTransfer(callId, { outcome: "connected", legId });
    else if (type === "call.hangup") this.settleTransfer(callId, { outcome: TRANSFER_CAUSES[cause ?? ""] ?? "failed", reason: `Telnyx reports ${cause ?? "hangup"}`, legId });
    return { status: 200 };
  }

  /**
   * Telnyx's verdict: a person or an unknown settles it; a machine too,
   * unless a message is to be left after its greeting (greeting_end): then
   * it settles when the greeting ends.
   */
  private onMachineDetection(id: string, type: string, result: string | undefined): void {
    const ms = this.verdicts.since(id);
    if (type === "call.machine.greeting.ended") {
      const machine = this.greetings.get(id) ?? telnyxVerdict("machine", ms);
      this.greetings.delete(id);
      this.verdicts.settle(id, { ...machine, reason: `${machine.reason}, greeting ${(result ?? "ended").slice(0, 40)}` });
      return;
    }
    const verdict = telnyxVerdict(result, ms);
    if (verdict.outcome === "machine" && this.options.config.outbound.amd.onMachine === "message") return void this.greetings.set(id, verdict);
    this.verdicts.settle(id, verdict);
  }

  /** A caller rings in: the manager decides; answered calls stream to us from the answer on. */
  private async onInbound(id: string, from: string | undefined, to: string | undefined): Promise<void> {
    const call = await this.admit(id, { inbound: true, from, to }, "call_control_id");
    if (call === "refused") await this.client.calls.actions.reject(id, { cause: "CALL_REJECTED" });
    if (typeof call === "string") return;
    const webhook = { webhook_url: this.options.endpoints.webhook(), webhook_url_method: "POST" as const };
    if (this.carrierSpeech) return void (await this.client.calls.actions.answer(id, webhook));
    this.prepareMedia(call);
    await this.client.calls.actions.answer(id, { ...this.streamParams(id), ...webhook });
  }

  /** Without the stream: Telnyx transcribes the caller from the answer on, and the call is up. */
  private async startListening(call: StreamCall): Promise<void> {
    try {
      await this.client.calls.actions.startTranscription(call.id, { transcription_tracks: "inbound" });
    } finally {
      // Up either way: a transcription Telnyx refused is logged, and the call can still speak and take keys.
      this.up(call);
    }
  }

  /** A call taken over from another instance: Telnyx keeps the call up when its stream drops, and streams it to us again when asked. */
  protected override async resumeStream(call: StreamCall): Promise<void> {
    await this.client.calls.actions.startStreaming(call.id, this.streamParams(call.id));
  }

  /** An outbound call was answered: its audio streams to us, the recogniser already open. */
  private async startStream(call: StreamCall): Promise<void> {
    this.prepareMedia(call);
    await this.client.calls.actions.startStreaming(call.id, this.streamParams(call.id));
  }

  private streamParams(id: string) {
    return {
      stream_url: this.options.endpoints.stream(),
      stream_track: "inbound_track" as const,
      stream_bidirectional_mode: "rtp" as const,
      stream_bidirectional_codec: "PCMU" as const,
      client_state: Buffer.from(this.streamToken(id)).toString("base64"),
    };
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
