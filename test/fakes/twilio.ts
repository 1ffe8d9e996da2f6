/**
 * Twilio's side of a call, on loopback: a REST server speaking the Calls API
 * (what the SDK sends is recorded), signed webhooks (the SDK's own signing
 * helper); the Media Streams client is test/fakes/media-stream.ts.
 */
import type { IncomingMessage } from "node:http";
import twilio from "twilio";
import type { CallRecord } from "../../src/calls/types.js";
import type { VoiceCallClient } from "../../src/server/client.js";
import { waitFor } from "../helpers.js";
import { FakeRestApi } from "./http.js";
import { MediaStreamClient } from "./media-stream.js";

export const ACCOUNT_SID = `AC${"1".repeat(32)}`;
export const AUTH_TOKEN = "test-auth-token-0123456789abcdef";

export interface RestRequest {
  method: string;
  path: string;
  form: Record<string, string | string[]>;
}

interface FakeCall {
  sid: string;
  status: string;
  url?: string;
  statusCallback?: string;
  to?: string;
}

export function callSid(n: number): string {
  return `CA${n.toString(16).padStart(32, "0")}`;
}

export class FakeTwilio extends FakeRestApi<RestRequest> {
  readonly calls = new Map<string, FakeCall>();
  /** The account as the Accounts API reports it. */
  account = { status: "active", type: "Full" };
  /** Numbers the account owns (IncomingPhoneNumbers) and verified caller ids (OutgoingCallerIds). */
  owned = ["+15550009999"];
  verified: string[] = [];
  /** The account's recordings (RecordingSid -> WAV), served at Recordings/<sid>.wav. */
  readonly recordings = new Map<string, Buffer>();
  private seq = 0;

  static start(): Promise<FakeTwilio> {
    return new FakeTwilio().listen();
  }

  protected async handle(req: IncomingMessage, text: string): Promise<{ status: number; body: unknown }> {
    const form: Record<string, string | string[]> = {};
    for (const [k, v] of new URLSearchParams(text)) {
      const prev = form[k];
      form[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const [path, search] = (req.url ?? "").split("?") as [string, string | undefined];
    this.requests.push({ method: req.method ?? "", path, form });
    // HTTP Basic with the account SID and auth token, as Twilio checks it.
    const expected = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64")}`;
    if (req.headers.authorization !== expected) return { status: 401, body: { code: 20003, message: "Authenticate", status: 401 } };
    const account = `/2010-04-01/Accounts/${ACCOUNT_SID}`;
    if (req.method === "GET" && path === `${account}.json`) {
      return { status: 200, body: { sid: ACCOUNT_SID, friendly_name: "test", status: this.account.status, type: this.account.type, uri: `${account}.json` } };
    }
    const listed = path.match(new RegExp(`^${account}/(IncomingPhoneNumbers|OutgoingCallerIds)\\.json$`));
    if (req.method === "GET" && listed) {
      const wanted = new URLSearchParams(search ?? "").get("PhoneNumber");
      const pool = listed[1] === "IncomingPhoneNumbers" ? this.owned : this.verified;
      const key = listed[1] === "IncomingPhoneNumbers" ? "incoming_phone_numbers" : "outgoing_caller_ids";
      const items = pool.filter((n) => !wanted || n === wanted).map((n, i) => ({ sid: `PN${String(i).padStart(32, "0")}`, phone_number: n, account_sid: ACCOUNT_SID }));
      return { status: 200, body: { [key]: items, page: 0, page_size: 50, next_page_uri: null, uri: path } };
    }
    const recording = path.match(new RegExp(`^${account}/Recordings/(RE[0-9a-f]{32})\\.wav$`));
    if (req.method === "GET" && recording) {
      const wav = this.recordings.get(recording[1]!);
      return wav ? { status: 200, body: wav } : { status: 404, body: { code: 20404, message: "The requested resource was not found", status: 404 } };
    }
    const base = `${account}/Calls`;
    if (req.method === "POST" && path === `${base}.json`) {
      this.seq += 1;
      const call: FakeCall = { sid: callSid(this.seq), status: "queued", url: form.Url as string, statusCallback: form.StatusCallback as string, to: form.To as string };
      this.calls.set(call.sid, call);
      return { status: 201, body: this.resource(call) };
    }
    const one = path.match(new RegExp(`^${base}/(CA[0-9a-f]{32})\\.json$`));
    const call = one ? this.calls.get(one[1]!) : undefined;
    if (!call) return { status: 404, body: { code: 20404, message: "The requested resource was not found", status: 404 } };
    // Twilio redirects only calls in progress.
    if (req.method === "POST" && form.Url && call.status !== "in-progress") return { status: 400, body: { code: 21220, message: "Call is not in-progress. Cannot redirect.", status: 400 } };
    if (req.method === "POST") call.status = (form.Status as string) ?? call.status;
    return { status: 200, body: this.resource(call) };
  }

  private resource(call: FakeCall): Record<string, unknown> {
    return { sid: call.sid, account_sid: ACCOUNT_SID, status: call.status, to: "+15550001234", from: "+15550009999", direction: "outbound-api", uri: "" };
  }

  /** POSTs a webhook signed the way Twilio signs it (the SDK's helper); `sign` changes what is signed. */
  async webhook(url: string, params: Record<string, string>, options: { signUrl?: string; signParams?: Record<string, string>; headers?: Record<string, string>; noSignature?: boolean } = {}): Promise<{ status: number; body: string }> {
    const signature = twilio.getExpectedTwilioSignature(AUTH_TOKEN, options.signUrl ?? url, options.signParams ?? params);
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...(options.noSignature ? {} : { "x-twilio-signature": signature }), ...options.headers },
      body: new URLSearchParams(params).toString(),
    });
    return { status: res.status, body: await res.text() };
  }

  /** The voice webhook Twilio sends when `sid` is answered (outbound) or rings in (inbound). */
  voiceParams(sid: string, direction: "inbound" | "outbound-api", from = "+15550001234", to = "+15550009999"): Record<string, string> {
    return { AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: "in-progress", Direction: direction, From: from, To: to };
  }
}

/** The stream URL and its token from `<Connect><Stream>` TwiML. */
export function streamOf(twimlText: string): { url: string; token: string } | undefined {
  const url = twimlText.match(/<Stream url="([^"]+)"/)?.[1];
  const token = twimlText.match(/<Parameter name="token" value="([^"]+)"/)?.[1];
  return url && token ? { url: url.replace(/&amp;/g, "&"), token } : undefined;
}

export { MediaStreamClient, isLoud, loudMs, type Received } from "./media-stream.js";

/**
 * A Twilio caller ringing a running service: the signed voice webhook, the
 * media stream its TwiML names, and the call once its greeting has played.
 */
export async function ringTwilio(
  twilio: FakeTwilio,
  opts: { webhookUrl: string; service: VoiceCallClient; sid: string; from: string; to: string },
): Promise<{ stream: MediaStreamClient; callId: string; twiml: string }> {
  const reply = await twilio.webhook(opts.webhookUrl, twilio.voiceParams(opts.sid, "inbound", opts.from, opts.to));
  const target = streamOf(reply.body);
  if (!target) throw new Error(`the voice webhook answered without a media stream: ${reply.status} ${reply.body}`);
  const stream = await MediaStreamClient.connect(target.url, { callSid: opts.sid, token: target.token });
  const call = await waitFor(
    async () => ((await opts.service.call("voicecall.list", {})) as { calls: CallRecord[] }).calls.find((c) => c.providerCallId === opts.sid && c.state === "listening"),
    "the greeting played",
    30_000,
  );
  return { stream, callId: call.callId, twiml: reply.body };
}
