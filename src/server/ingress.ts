/**
 * The public side of the service: carrier webhooks on serve.path and media
 * WebSockets on streaming.streamPath. Everything here faces the internet, so
 * each step is bounded before any carrier code runs:
 * - a webhook without its carrier's signature header is refused before its
 *   body is read; bodies are capped (64 KB) and must arrive within 5 s; each
 *   source address has at most 8 requests in flight;
 * - the URL a signature covers is rebuilt from publicUrl, or from Host /
 *   X-Forwarded-* only as webhookSecurity allows;
 * - a verified delivery seen before (inside 10 minutes, across restarts) is
 *   acknowledged without effect;
 * - media sockets: frames over 256 KB close the socket before any parsing;
 *   caps on open, pending (no valid start yet) and per-address pending
 *   sockets; a socket must start within preStartTimeoutMs.
 * Every refusal is a typed error (`code`, `message`); nothing here throws
 * into the server.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError, asVoiceCallError, type ErrorCode } from "../errors.js";
import type { Logger } from "../log.js";
import type { PublicEndpoints } from "../providers/public-url.js";
import type { CarrierIngress, StreamConnection, StreamHandler, StreamSession, WebhookHandler, WebhookRequest } from "../providers/types.js";
import type { ReplayGuard } from "./replay.js";
import { FORWARDED_HEADER } from "./forward.js";

export const WEBHOOK_MAX_BODY_BYTES = 64 * 1024;
export const WEBHOOK_BODY_TIMEOUT_MS = 5000;
export const WEBHOOK_MAX_IN_FLIGHT_PER_IP = 8;
export const STREAM_MAX_FRAME_BYTES = 256 * 1024;

const STATUS: Partial<Record<ErrorCode, number>> = { UNAUTHORIZED: 401, INVALID_PARAMS: 400, LIMIT_REACHED: 429, TIMEOUT: 408, UNAVAILABLE: 503, NOT_FOUND: 404 };

export interface IngressOptions {
  config: VoiceCallConfig;
  carriers: CarrierIngress[];
  endpoints: PublicEndpoints;
  replay: ReplayGuard;
  logger: Logger;
  /**
   * On a shared store: the other instance holding the call a webhook is about (by the carrier's ids),
   * undefined when none does (this one holds it, or it is new); the webhook is then handed to it.
   */
  ownerOf?: (providerCallIds: string[]) => Promise<CallOwner | undefined>;
}

/** Another instance's call: where that instance answers, and whether its lease holds (false: it is gone, and nobody has taken the call over yet). */
export interface CallOwner {
  nodeId: string;
  address: string | null;
  leased: boolean;
}

/** What the ingress has refused and accepted, for health and tests. */
export interface IngressCounters {
  refused: Partial<Record<ErrorCode, number>>;
  webhooks: number;
  replays: number;
  /** Webhooks handed to the instance holding their call. */
  handedOver: number;
  streams: { open: number; pending: number };
}

export class Ingress {
  private readonly webhooks: WebhookHandler[];
  private readonly streams: StreamHandler[];
  private readonly inFlight = new Map<string, number>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: STREAM_MAX_FRAME_BYTES, perMessageDeflate: false });
  private readonly pendingByIp = new Map<string, number>();
  private openSockets = 0;
  private pendingSockets = 0;
  private readonly log: Logger;
  readonly counters: IngressCounters = { refused: {}, webhooks: 0, replays: 0, handedOver: 0, streams: { open: 0, pending: 0 } };

  constructor(private readonly options: IngressOptions) {
    this.webhooks = options.carriers.flatMap((c) => (c.webhook ? [c.webhook] : []));
    this.streams = options.carriers.flatMap((c) => (c.stream ? [c.stream] : []));
    this.log = options.logger.child({ part: "ingress" });
  }

  get enabled(): boolean {
    return this.webhooks.length > 0 || this.streams.length > 0;
  }

  /** Takes the request when it is for serve.path; false leaves it to other routes. */
  handleRequest(req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
    if (this.webhooks.length === 0 || pathname !== this.options.config.serve.path) return false;
    const ip = req.socket.remoteAddress ?? "unknown";
    const running = this.inFlight.get(ip) ?? 0;
    if (running >= WEBHOOK_MAX_IN_FLIGHT_PER_IP) {
      this.refuse(res, new VoiceCallError("LIMIT_REACHED", `more than ${WEBHOOK_MAX_IN_FLIGHT_PER_IP} webhook requests in flight from this address`), true);
      return true;
    }
    this.inFlight.set(ip, running + 1);
    const done = () => {
      const left = (this.inFlight.get(ip) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(ip);
      else this.inFlight.set(ip, left);
    };
    res.once("close", done);
    this.webhook(req, res, ip).catch((err) => {
      const error = asVoiceCallError(err);
      if (error.code === "INTERNAL") this.log.error({ err: error.message }, "webhook failed");
      if (!res.headersSent) this.refuse(res, error, true);
      else res.destroy();
    });
    return true;
  }

  /** Takes the upgrade when it is for streaming.streamPath. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, pathname: string): boolean {
    if (this.streams.length === 0 || pathname !== this.options.config.streaming.streamPath) return false;
    socket.on("error", () => undefined);
    const { maxConnections, maxPendingConnections, maxPendingConnectionsPerIp } = this.options.config.streaming;
    const ip = req.socket.remoteAddress ?? "unknown";
    const refusal =
      this.openSockets >= maxConnections
        ? new VoiceCallError("LIMIT_REACHED", `streaming.maxConnections (${maxConnections}) reached`)
        : this.pendingSockets >= maxPendingConnections
          ? new VoiceCallError("LIMIT_REACHED", `streaming.maxPendingConnections (${maxPendingConnections}) reached`)
          : (this.pendingByIp.get(ip) ?? 0) >= maxPendingConnectionsPerIp
            ? new VoiceCallError("LIMIT_REACHED", `streaming.maxPendingConnectionsPerIp (${maxPendingConnectionsPerIp}) reached for this address`)
            : undefined;
    if (refusal) {
      this.count(refusal.code);
      this.log.warn({ ip, reason: refusal.message }, "media socket refused");
      const body = JSON.stringify({ ok: false, error: refusal.toJSON() });
      socket.end(`HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return true;
    }
    this.openSockets += 1;
    this.setPending(ip, +1);
    const forwarded = req.headers[FORWARDED_HEADER] !== undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.serveSocket(ws, ip, forwarded));
    return true;
  }

  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  // ---------------------------------------------------------------- webhooks

  private async webhook(req: IncomingMessage, res: ServerResponse, ip: string): Promise<void> {
    if (req.method !== "POST") throw new VoiceCallError("INVALID_PARAMS", `${req.method} not allowed on the webhook (POST)`);
    const headers = lowerHeaders(req);
    // Which carrier: the one whose signature headers are all present. None: refused unread.
    const skip = this.options.config.skipSignatureVerification;
    // With verification off (development), a single carrier takes its webhooks unsigned.
    const handler = this.webhooks.find((h) => h.requiredHeaders.every((name) => headers[name])) ?? (skip && this.webhooks.length === 1 ? this.webhooks[0] : undefined);
    if (!handler) throw new VoiceCallError("UNAUTHORIZED", "no carrier signature header on the webhook");
    const url = this.signedUrl(req, headers, ip);
    const rawBody = await readBody(req);
    const request: WebhookRequest = { url, query: new URL(req.url ?? "/", "http://x").searchParams, headers, rawBody, remoteAddress: ip };
    const verdict = skip ? { ok: true as const, replayKey: "" } : await handler.verify(request);
    if (!verdict.ok) throw new VoiceCallError("UNAUTHORIZED", `webhook signature: ${verdict.reason}`);
    // Another instance's call: the carrier's request goes to it as it came (it checks the signature and replays itself).
    const owner = this.options.ownerOf && !headers[FORWARDED_HEADER] ? await this.ownerOfWebhook(handler, request) : undefined;
    if (owner?.leased && owner.address) {
      this.counters.handedOver += 1;
      try {
        return send(res, await handOver({ nodeId: owner.nodeId, address: owner.address }, req, request.rawBody));
      } catch (err) {
        // Gone without its lease having run out yet: the carrier is asked to come back while another takes the call over.
        if (!handler.retryLater) throw err;
        this.log.warn({ nodeId: owner.nodeId, err: (err as Error).message }, "the instance holding a webhook's call does not answer; the carrier is asked to try again");
        return send(res, handler.retryLater(request));
      }
    }
    if (owner && handler.retryLater) return send(res, handler.retryLater(request));
    if (verdict.replayKey && !this.options.replay.firstSeen(verdict.replayKey)) {
      this.counters.replays += 1;
      this.log.info({ ip }, "replayed webhook acknowledged and skipped");
      return send(res, handler.replayReply(request));
    }
    this.counters.webhooks += 1;
    send(res, await handler.handle(request));
  }

  private async ownerOfWebhook(handler: WebhookHandler, request: WebhookRequest): Promise<CallOwner | undefined> {
    const ids = handler.callsOf?.(request) ?? [];
    if (ids.length === 0) return undefined;
    try {
      return await this.options.ownerOf!(ids);
    } catch (err) {
      // The store not answering: handled here, as without other instances.
      this.log.warn({ err: (err as Error).message }, "could not ask the store which instance holds a webhook's call; handling it here");
      return undefined;
    }
  }

  /**
   * The URL the carrier signed: publicUrl when set (the path carriers call);
   * otherwise the Host header, or X-Forwarded-Host/-Proto when webhookSecurity
   * trusts them (always, or only from trustedProxyIPs). With allowedHosts set,
   * any other host is refused.
   */
  private signedUrl(req: IncomingMessage, headers: Record<string, string | undefined>, ip: string): string {
    const query = (req.url ?? "").includes("?") ? (req.url ?? "").slice((req.url ?? "").indexOf("?")) : "";
    const pub = this.options.endpoints.webhookBase();
    if (pub) return `${pub}${query}`;
    const { allowedHosts, trustForwardingHeaders, trustedProxyIPs } = this.options.config.webhookSecurity;
    const trusted = trustedProxyIPs.length > 0 ? trustedProxyIPs.includes(stripV4Mapped(ip)) : trustForwardingHeaders;
    const host = (trusted ? first(headers["x-forwarded-host"]) : undefined) ?? headers.host;
    if (!host) throw new VoiceCallError("UNAUTHORIZED", "no Host header to rebuild the signed URL");
    if (allowedHosts.length > 0 && !allowedHosts.includes(host.toLowerCase())) {
      throw new VoiceCallError("UNAUTHORIZED", `host ${host} is not in webhookSecurity.allowedHosts`);
    }
    const proto = (trusted ? first(headers["x-forwarded-proto"]) : undefined) ?? "http";
    if (proto !== "http" && proto !== "https") throw new VoiceCallError("UNAUTHORIZED", "X-Forwarded-Proto must be http or https");
    return `${proto}://${host}${req.url ?? "/"}`;
  }

  private refuse(res: ServerResponse, error: VoiceCallError, closeAfter: boolean): void {
    this.count(error.code);
    const body = JSON.stringify({ ok: false, error: error.toJSON() });
    res.writeHead(STATUS[error.code] ?? 500, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...(closeAfter ? { connection: "close" } : {}) });
    res.end(body);
  }

  private count(code: ErrorCode): void {
    this.counters.refused[code] = (this.counters.refused[code] ?? 0) + 1;
  }

  // ------------------------------------------------------------------ streams

  private serveSocket(ws: WebSocket, ip: string, forwarded: boolean): void {
    let session: StreamSession | undefined;
    let pending = true;
    /** While the store is asked whose call a start is for: what else arrives waits here. */
    let queued: string[] | undefined;
    let proxied: { send(text: string): void; close(): void } | undefined;
    const leavePending = () => {
      if (!pending) return;
      pending = false;
      this.setPending(ip, -1);
      clearTimeout(timer);
    };
    const connection: StreamConnection = {
      remoteAddress: ip,
      send: (text) => {
        if (ws.readyState === ws.OPEN) ws.send(text);
      },
      close: (code = 1000, reason = "") => ws.close(code, reason.slice(0, 120)),
    };
    const refuse = (error: VoiceCallError, code: number) => {
      this.count(error.code);
      this.log.warn({ ip, code: error.code, reason: error.message }, "media socket closed");
      ws.close(code, error.message.slice(0, 120));
    };
    const timer = setTimeout(() => {
      refuse(new VoiceCallError("TIMEOUT", `no valid start within streaming.preStartTimeoutMs (${this.options.config.streaming.preStartTimeoutMs} ms)`), 1008);
      ws.terminate();
    }, this.options.config.streaming.preStartTimeoutMs);
    timer.unref();
    ws.on("error", (err) => {
      // Oversized frames and protocol errors land here; ws closes the socket itself.
      refuse(new VoiceCallError("INVALID_PARAMS", `media socket: ${err.message}`), 1009);
    });
    const start = (text: string) => {
      try {
        if (session) return session.message(text);
        session = this.startStream(text, connection);
        if (session) {
          leavePending();
          this.counters.streams.open += 1;
        }
      } catch (err) {
        refuse(asVoiceCallError(err), 1008);
      }
    };
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) return refuse(new VoiceCallError("INVALID_PARAMS", "media socket: binary frames are not part of the protocol"), 1003);
      const text = data.toString();
      if (proxied) return proxied.send(text);
      if (queued) return void queued.push(text);
      const callId = !session && !forwarded && this.options.ownerOf ? this.streams.map((h) => h.callOf?.(text)).find((id) => id !== undefined) : undefined;
      if (!callId) return start(text);
      // A start for a call: is it another instance's? Then the stream goes to it, as the carrier sent it.
      queued = [];
      void this.options.ownerOf!([callId]).catch(() => undefined).then((owner) => {
        const waiting = queued ?? [];
        queued = undefined;
        if (ws.readyState !== ws.OPEN) return;
        if (owner?.leased && owner.address) {
          leavePending();
          proxied = this.proxyStream(ws, owner.address, [text, ...waiting], owner.nodeId);
          return;
        }
        for (const t of [text, ...waiting]) start(t);
      });
    });
    ws.on("close", () => {
      leavePending();
      proxied?.close();
      this.openSockets -= 1;
      if (session) {
        this.counters.streams.open -= 1;
        try {
          session.closed();
        } catch (err) {
          this.log.error({ err: String(err) }, "closing a media stream failed");
        }
      }
    });
  }

  /** Carries a carrier's stream to the instance holding its call, both ways, until either side closes. */
  private proxyStream(carrier: WebSocket, address: string, first: string[], nodeId: string): { send(text: string): void; close(): void } {
    const target = new URL(this.options.config.streaming.streamPath, address);
    target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
    const upstream = new WebSocket(target, { headers: { [FORWARDED_HEADER]: "1" }, perMessageDeflate: false });
    this.counters.handedOver += 1;
    // What the carrier sends before the holder's socket is open waits for it.
    let waiting: string[] | undefined = [...first];
    upstream.on("open", () => {
      for (const text of waiting ?? []) upstream.send(text);
      waiting = undefined;
    });
    upstream.on("message", (data: RawData) => carrier.readyState === carrier.OPEN && carrier.send(data.toString()));
    upstream.on("close", (code, reason) => carrier.readyState === carrier.OPEN && carrier.close(code === 1005 || code === 1006 ? 1011 : code, reason.toString()));
    upstream.on("error", (err) => {
      this.log.warn({ nodeId, err: err.message }, "the instance holding a stream's call could not be reached");
      if (carrier.readyState === carrier.OPEN) carrier.close(1011, "the call's instance is unreachable");
    });
    return {
      send: (text) => {
        if (waiting) waiting.push(text);
        else if (upstream.readyState === upstream.OPEN) upstream.send(text);
      },
      close: () => upstream.close(),
    };
  }

  /**
   * The first handler that takes the start. A lifecycle message one carrier
   * reads as "not started yet" keeps the socket waiting, even if another
   * carrier cannot read it; when every one refuses, the refusal of a carrier
   * that could read the message.
   */
  private startStream(text: string, connection: StreamConnection): StreamSession | undefined {
    let refusal: unknown;
    let waiting = false;
    for (const handler of this.streams) {
      try {
        const session = handler.open(text, connection);
        if (session) return session;
        waiting = true;
      } catch (err) {
        // A carrier that read the message and refused it says more than one that could not read it.
        const unreadable = (e: unknown) => e instanceof VoiceCallError && e.code === "INVALID_PARAMS";
        if (refusal === undefined || (unreadable(refusal) && !unreadable(err))) refusal = err;
      }
    }
    if (refusal && !waiting) throw refusal;
    return undefined;
  }

  private setPending(ip: string, delta: number): void {
    this.pendingSockets += delta;
    const n = (this.pendingByIp.get(ip) ?? 0) + delta;
    if (n <= 0) this.pendingByIp.delete(ip);
    else this.pendingByIp.set(ip, n);
    this.counters.streams.pending = this.pendingSockets;
  }
}

/** Sends a carrier's webhook on to the instance holding its call, headers and body as they came; its reply comes back. */
async function handOver(owner: { nodeId: string; address: string }, req: IncomingMessage, body: Buffer): Promise<{ status: number; contentType?: string; body?: string }> {
  const target = new URL(req.url ?? "/", owner.address);
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  headers[FORWARDED_HEADER] = "1";
  headers["content-length"] = String(body.length);
  return new Promise((resolve, reject) => {
    const out = httpRequest(target, { method: "POST", headers, timeout: WEBHOOK_BODY_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 502, contentType: res.headers["content-type"], body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", (err) => reject(new VoiceCallError("UNAVAILABLE", `instance ${owner.nodeId} holds the call; its answer broke off: ${err.message}`)));
    });
    out.on("timeout", () => out.destroy(new Error(`no answer within ${WEBHOOK_BODY_TIMEOUT_MS} ms`)));
    out.on("error", (err) => reject(new VoiceCallError("UNAVAILABLE", `instance ${owner.nodeId} holds the call and could not be reached at ${owner.address}: ${err.message}`)));
    out.end(body);
  });
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer", "proxy-connection"]);

/** Reads a webhook body: at most WEBHOOK_MAX_BODY_BYTES, within WEBHOOK_BODY_TIMEOUT_MS. */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > WEBHOOK_MAX_BODY_BYTES) {
    throw new VoiceCallError("INVALID_PARAMS", `webhook body larger than ${WEBHOOK_MAX_BODY_BYTES} bytes`);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => fail(new VoiceCallError("TIMEOUT", `webhook body not received within ${WEBHOOK_BODY_TIMEOUT_MS} ms`)), WEBHOOK_BODY_TIMEOUT_MS);
    const fail = (err: VoiceCallError) => {
      clearTimeout(timer);
      req.removeAllListeners("data");
      req.resume();
      reject(err);
    };
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > WEBHOOK_MAX_BODY_BYTES) return fail(new VoiceCallError("INVALID_PARAMS", `webhook body larger than ${WEBHOOK_MAX_BODY_BYTES} bytes`));
      chunks.push(chunk);
    });
    req.once("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    req.once("error", (err) => fail(new VoiceCallError("INVALID_PARAMS", `webhook body: ${err.message}`)));
  });
}

function send(res: ServerResponse, reply: { status: number; contentType?: string; body?: string }): void {
  const body = reply.body ?? "";
  res.writeHead(reply.status, { "content-type": reply.contentType ?? "text/plain", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function lowerHeaders(req: IncomingMessage): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(req.headers)) out[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
  return out;
}

/** The first of a comma-separated forwarding header (the client-most proxy's view). */
function first(value: string | undefined): string | undefined {
  const v = value?.split(",")[0]?.trim();
  return v ? v : undefined;
}

function stripV4Mapped(ip: string): string {
  return ip.startsWith("::ffff:") ? ip.slice(7) : ip;
}
