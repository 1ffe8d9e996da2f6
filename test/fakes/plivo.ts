/**
 * Plivo's side of a call, on loopback: a REST server speaking the Voice API
 * (make, cancel, hang up, send digits, live/queued lookups, account and
 * number; what the SDK sends is recorded) and webhooks signed with Plivo's
 * V3 algorithm: HMAC-SHA256 with the auth token over the URL (its query
 * sorted), the sorted POST parameters and a nonce.
 */
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { FakeRestApi, type JsonRequest } from "./http.js";

export const AUTH_ID = "MAODUMZJYZNWY1ZGYXOT";
export const AUTH_TOKEN = "plivo-test-token-0123456789abcdef";


/** The string Plivo signs for a POST to `url` with form `params`, per its V3 documentation. */
export function v3Base(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  const query = [...u.searchParams.entries()].map(([k, v]) => `${k}=${v}`).sort().join("&");
  const base = `${u.protocol}//${u.host}${u.pathname}`;
  const withQuery = Object.keys(params).length > 0 ? `${base}?${query}${query ? "." : ""}` : query ? `${base}?${query}` : base;
  const body = Object.keys(params).sort().map((k) => `${k}${params[k]}`).join("");
  return withQuery + body;
}

export function v3Signature(url: string, params: Record<string, string>, nonce: string, token = AUTH_TOKEN): string {
  return createHmac("sha256", token).update(`${v3Base(url, params)}.${nonce}`).digest("base64");
}

export class FakePlivo extends FakeRestApi<JsonRequest> {
  /** Calls by id: "queued" (request made, not answered), "live", or "ended". */
  readonly calls = new Map<string, "queued" | "live" | "ended">();
  owned = ["15550009999"];
  /** The request_uuid of the last call made to each number. */
  readonly dialled = new Map<string, string>();
  /** Files served at <baseUrl>/files/<name> (a recording's RecordUrl), without credentials. */
  readonly files = new Map<string, Buffer>();

  static start(): Promise<FakePlivo> {
    return new FakePlivo().listen();
  }

  protected async handle(req: IncomingMessage, text: string): Promise<{ status: number; body: unknown }> {
    const [rawPath, search] = (req.url ?? "").split("?") as [string, string | undefined];
    const prefix = `/v1/Account/${AUTH_ID}`;
    const path = rawPath.startsWith(prefix) ? rawPath.slice(prefix.length) || "/" : rawPath;
    let body: Record<string, any> = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = {};
    }
    this.requests.push({ method: req.method ?? "", path: search ? `${path}?${search}` : path, body });
    const file = path.match(/^\/files\/([^/]+)$/);
    if (req.method === "GET" && file) {
      const bytes = this.files.get(file[1]!);
      return bytes ? { status: 200, body: bytes } : { status: 404, body: { api_id: "x", error: "not found" } };
    }
    if (req.headers.authorization !== `Basic ${Buffer.from(`${AUTH_ID}:${AUTH_TOKEN}`).toString("base64")}`) return { status: 401, body: { api_id: "x", error: "authentication failed" } };
    const notFound = { status: 404, body: { api_id: "x", error: "not found" } };
    if (req.method === "GET" && (path === "/" || path === "//")) return { status: 200, body: { api_id: "x", account_type: "standard", auth_id: AUTH_ID, name: "test" } };
    if (req.method === "POST" && path === "/Call/") {
      const id = randomUUID();
      this.calls.set(id, "queued");
      this.dialled.set(body.to, id);
      return { status: 201, body: { api_id: "x", message: "call fired", request_uuid: id } };
    }
    const number = path.match(/^\/Number\/(\d+)\/$/);
    if (req.method === "GET" && number) return this.owned.includes(number[1]!) ? { status: 200, body: { number: number[1] } } : notFound;
    const request = path.match(/^\/Request\/([0-9a-f-]+)\/$/);
    if (req.method === "DELETE" && request) {
      if (this.calls.get(request[1]!) !== "queued") return notFound;
      this.calls.set(request[1]!, "ended");
      return { status: 204, body: {} };
    }
    const call = path.match(/^\/Call\/([0-9a-f-]+)\/?(DTMF\/)?$/);
    if (call) {
      const state = this.calls.get(call[1]!);
      if (req.method === "GET") {
        const wanted = new URLSearchParams(search ?? "").get("status");
        return state === wanted ? { status: 200, body: { call_uuid: call[1], call_status: wanted } } : notFound;
      }
      if (state !== "live") return notFound;
      if (req.method === "DELETE") this.calls.set(call[1]!, "ended");
      return { status: req.method === "DELETE" ? 204 : 202, body: { api_id: "x", message: "digits sent" } };
    }
    return notFound;
  }

  /** POSTs a form webhook signed with V3; `options` change what is signed or sent. */
  async webhook(url: string, params: Record<string, string>, options: { signUrl?: string; signParams?: Record<string, string>; nonce?: string; unsigned?: boolean } = {}): Promise<{ status: number; body: string }> {
    const nonce = options.nonce ?? randomBytes(10).toString("hex");
    const signature = v3Signature(options.signUrl ?? url, options.signParams ?? params, nonce);
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...(options.unsigned ? {} : { "x-plivo-signature-v3": signature, "x-plivo-signature-v3-nonce": nonce }) },
      body: new URLSearchParams(params).toString(),
    });
    return { status: res.status, body: await res.text() };
  }
}

/** The stream URL and extraHeaders from a <Stream> answer. */
export function plivoStreamOf(xmlText: string): { url: string; headers: string } | undefined {
  const match = xmlText.match(/<Stream [^>]*extraHeaders="([^"]+)"[^>]*>([^<]+)<\/Stream>/);
  return match ? { url: match[2]!.replace(/&amp;/g, "&"), headers: match[1]!.replace(/&amp;/g, "&") } : undefined;
}
