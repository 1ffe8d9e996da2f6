/**
 * Telnyx's side of a call, on loopback: a REST server speaking Call Control
 * v2 (dial, actions, status, balance; what the SDK sends is recorded) and
 * webhooks signed as Telnyx signs them: Ed25519 over `timestamp|body` with a
 * key pair made here, the public half given to the service as its key.
 */
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { FakeRestApi, type JsonRequest } from "./http.js";

export const API_KEY = "KEY-test-telnyx-0123456789";
export const CONNECTION_ID = "1684641123236054244";


export class FakeTelnyx extends FakeRestApi<JsonRequest> {
  /** Calls dialled or known, by call_control_id, and whether each is alive. */
  readonly alive = new Map<string, boolean>();
  /** The call_control_id of the last call dialled to each number. */
  readonly dialled = new Map<string, string>();
  /** Files served at <baseUrl>/files/<name> (a saved recording's link). */
  readonly files = new Map<string, Buffer>();
  readonly publicKey: string;
  private readonly privateKey: KeyObject;
  private seq = 0;

  private constructor() {
    super();
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    this.privateKey = privateKey;
    // Mission Control shows the raw 32-byte key, base64.
    this.publicKey = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url").toString("base64");
  }

  static start(): Promise<FakeTelnyx> {
    return new FakeTelnyx().listen("/v2");
  }

  newCallId(): string {
    this.seq += 1;
    return `v3:call-${this.seq}-${"x".repeat(20)}`;
  }

  protected async handle(req: IncomingMessage, text: string): Promise<{ status: number; body: unknown }> {
    const path = decodeURIComponent((req.url ?? "").split("?")[0]!.replace(/^\/v2/, ""));
    this.requests.push({ method: req.method ?? "", path, body: text ? JSON.parse(text) : {} });
    // A saved recording's link is presigned: no API key.
    const file = path.match(/^\/files\/([^/]+)$/);
    if (req.method === "GET" && file) {
      const bytes = this.files.get(file[1]!);
      return bytes ? { status: 200, body: bytes } : { status: 404, body: { errors: [{ code: "10005", title: "Resource not found" }] } };
    }
    if (req.headers.authorization !== `Bearer ${API_KEY}`) return { status: 401, body: { errors: [{ code: "10009", title: "Authentication failed" }] } };
    if (req.method === "GET" && path === "/balance") return { status: 200, body: { data: { balance: "10.00", currency: "USD", record_type: "balance" } } };
    if (req.method === "POST" && path === "/calls") {
      const id = this.newCallId();
      this.alive.set(id, true);
      this.dialled.set(JSON.parse(text).to, id);
      return { status: 200, body: { data: { call_control_id: id, call_leg_id: `leg-${this.seq}`, call_session_id: `session-${this.seq}`, is_alive: false, record_type: "call" } } };
    }
    const action = path.match(/^\/calls\/([^/]+)\/actions\/([a-z_]+)$/);
    if (req.method === "POST" && action) {
      const id = decodeURIComponent(action[1]!);
      if (!this.alive.get(id)) return { status: 422, body: { errors: [{ code: "90018", title: "Call has already ended" }] } };
      if (action[2] === "hangup" || action[2] === "reject") this.alive.set(id, false);
      return { status: 200, body: { data: { result: "ok" } } };
    }
    const status = path.match(/^\/calls\/([^/]+)$/);
    if (req.method === "GET" && status) {
      const id = decodeURIComponent(status[1]!);
      if (!this.alive.has(id)) return { status: 404, body: { errors: [{ code: "10005", title: "Resource not found" }] } };
      return { status: 200, body: { data: { call_control_id: id, is_alive: this.alive.get(id), record_type: "call" } } };
    }
    return { status: 404, body: { errors: [{ code: "10005", title: "Resource not found" }] } };
  }

  /** An event as Telnyx sends it. */
  event(type: string, payload: Record<string, unknown>): Record<string, unknown> {
    this.seq += 1;
    return { data: { record_type: "event", event_type: type, id: `evt-${this.seq}-${Math.random().toString(16).slice(2)}`, occurred_at: new Date().toISOString(), payload }, meta: { attempt: 1, delivered_to: "" } };
  }

  /** Telnyx's signature: Ed25519 over `timestamp|body`, base64. */
  sign(timestamp: string, body: string): string {
    return sign(null, Buffer.from(`${timestamp}|${body}`), this.privateKey).toString("base64");
  }

  /** POSTs a webhook signed the way Telnyx signs it; `options` change what is signed or sent. */
  async webhook(url: string, body: unknown, options: { timestamp?: string; signBody?: string; headers?: Record<string, string>; unsigned?: boolean } = {}): Promise<{ status: number; body: string }> {
    const raw = JSON.stringify(body);
    const timestamp = options.timestamp ?? String(Math.floor(Date.now() / 1000));
    const signature = this.sign(timestamp, options.signBody ?? raw);
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(options.unsigned ? {} : { "telnyx-signature-ed25519": signature, "telnyx-timestamp": timestamp }),
        ...options.headers,
      },
      body: raw,
    });
    return { status: res.status, body: await res.text() };
  }
}
