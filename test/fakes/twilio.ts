/**
 * Twilio's side of a call, on loopback: a REST server speaking the Calls API
 * (what the SDK sends is recorded), signed webhooks (the SDK's own signing
 * helper), and a Media Streams client that plays caller audio in real time and
 * records what comes back (media, marks, clears) with arrival times.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import twilio from "twilio";
import WebSocket from "ws";
import { decodeG711, encodeG711 } from "../../src/audio/g711.js";

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
}

export function callSid(n: number): string {
  return `CA${n.toString(16).padStart(32, "0")}`;
}

export class FakeTwilio {
  readonly requests: RestRequest[] = [];
  readonly calls = new Map<string, FakeCall>();
  /** The account as the Accounts API reports it. */
  account = { status: "active", type: "Full" };
  /** Numbers the account owns (IncomingPhoneNumbers) and verified caller ids (OutgoingCallerIds). */
  owned = ["+15550009999"];
  verified: string[] = [];
  private server!: Server;
  private seq = 0;
  baseUrl = "";

  static async start(): Promise<FakeTwilio> {
    const fake = new FakeTwilio();
    fake.server = createServer((req, res) => void fake.handle(req).then(({ status, body }) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    }));
    await new Promise<void>((r) => fake.server.listen(0, "127.0.0.1", r));
    fake.baseUrl = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  /** Requests the SDK made to a path ending in `suffix`. */
  made(method: string, suffix: RegExp): RestRequest[] {
    return this.requests.filter((r) => r.method === method && suffix.test(r.path));
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body: unknown }> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const form: Record<string, string | string[]> = {};
    for (const [k, v] of new URLSearchParams(Buffer.concat(chunks).toString())) {
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
    const base = `${account}/Calls`;
    if (req.method === "POST" && path === `${base}.json`) {
      this.seq += 1;
      const call: FakeCall = { sid: callSid(this.seq), status: "queued", url: form.Url as string, statusCallback: form.StatusCallback as string };
      this.calls.set(call.sid, call);
      return { status: 201, body: this.resource(call) };
    }
    const one = path.match(new RegExp(`^${base}/(CA[0-9a-f]{32})\\.json$`));
    const call = one ? this.calls.get(one[1]!) : undefined;
    if (!call) return { status: 404, body: { code: 20404, message: "The requested resource was not found", status: 404 } };
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

export interface Received {
  at: number;
  event: string;
  pcm?: Int16Array;
  name?: string;
}

/** Twilio's Media Streams client for one call. */
export class MediaStreamClient {
  readonly received: Received[] = [];
  closed = false;
  private constructor(private readonly ws: WebSocket, readonly streamSid: string) {
    ws.on("message", (data) => {
      const msg = JSON.parse(data.toString()) as { event: string; media?: { payload: string }; mark?: { name: string } };
      const at = performance.now();
      if (msg.event === "media") this.received.push({ at, event: "media", pcm: decodeG711("ulaw", Buffer.from(msg.media!.payload, "base64")) });
      else this.received.push({ at, event: msg.event, name: msg.mark?.name });
      // Audio arrives paced in real time: a mark has played when it arrives.
      if (msg.event === "mark") this.send({ event: "mark", streamSid: this.streamSid, mark: msg.mark });
    });
    ws.on("close", () => (this.closed = true));
  }

  static async connect(url: string, start: { callSid: string; token: string; streamSid?: string }): Promise<MediaStreamClient> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const streamSid = start.streamSid ?? `MZ${Math.random().toString(16).slice(2).padEnd(32, "0")}`;
    const client = new MediaStreamClient(ws, streamSid);
    client.send({ event: "connected", protocol: "Call", version: "1.0.0" });
    client.send({
      event: "start",
      sequenceNumber: "1",
      streamSid,
      start: { accountSid: ACCOUNT_SID, streamSid, callSid: start.callSid, tracks: ["inbound"], customParameters: { token: start.token }, mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 } },
    });
    return client;
  }

  send(message: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** Plays 8 kHz PCM as 20 ms media messages in real time; resolves with the time the first frame went out. */
  async play(pcm: Int16Array): Promise<number> {
    const started = performance.now();
    for (let i = 0, n = 0; i < pcm.length; i += 160, n += 1) {
      const wait = started + n * 20 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const chunk = new Int16Array(160);
      chunk.set(pcm.subarray(i, Math.min(i + 160, pcm.length)));
      this.send({ event: "media", streamSid: this.streamSid, media: { track: "inbound", payload: Buffer.from(encodeG711("ulaw", chunk)).toString("base64") } });
    }
    return started;
  }

  /** Silence for `ms`, so the far end hears an utterance end. */
  async silence(ms: number): Promise<void> {
    await this.play(new Int16Array((ms / 1000) * 8000));
  }

  dtmf(digit: string): void {
    this.send({ event: "dtmf", streamSid: this.streamSid, sequenceNumber: "9", dtmf: { track: "inbound_track", digit } });
  }

  /** Media messages received after `since` (performance.now()). */
  mediaAfter(since: number): Received[] {
    return this.received.filter((r) => r.event === "media" && r.at >= since);
  }

  firstAfter(event: string, since: number): Received | undefined {
    return this.received.find((r) => r.event === event && r.at >= since);
  }

  close(): void {
    this.ws.close();
  }

  /** Cuts the socket without a close handshake (a network drop). */
  drop(): void {
    this.ws.terminate();
  }

  raw(): WebSocket {
    return this.ws;
  }
}
