/**
 * The service's HTTP server: the control API (`POST /rpc`, `GET /events` as
 * server-sent events for `voicecall tail`) and `GET /healthz`. Carrier
 * webhooks mount on `serve.path` as carriers that use them are added.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { VoiceCallError, asVoiceCallError, type ErrorCode } from "../errors.js";
import { invoke, type MethodContext } from "./methods.js";
import { FORWARDED_HEADER } from "./forward.js";
import type { Logger } from "../log.js";
import type { Ingress } from "./ingress.js";
import { tokenMatches } from "./token.js";

const MAX_BODY_BYTES = 64 * 1024;
/** An events subscriber this far behind (bytes not yet taken by its socket) is dropped. */
export const MAX_EVENTS_BACKLOG_BYTES = 1024 * 1024;

const STATUS: Record<ErrorCode, number> = {
  INVALID_CONFIG: 500,
  INVALID_PARAMS: 400,
  UNKNOWN_METHOD: 404,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  CALL_ENDED: 409,
  INVALID_STATE: 409,
  INTERRUPTED: 409,
  LIMIT_REACHED: 429,
  TIMEOUT: 504,
  PROVIDER_ERROR: 502,
  UNSUPPORTED: 501,
  UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 507,
  INTERNAL: 500,
};

export interface HttpServerOptions {
  methods: MethodContext & { speech?: unknown };
  token: string;
  logger: Logger;
  /** Carrier webhooks and media sockets (serve.path, streaming.streamPath). */
  ingress?: Ingress;
}

export function createHttpServer({ methods, token, logger, ingress }: HttpServerOptions): Server {
  const { manager } = methods;
  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      logger.error({ err: String(err) }, "request failed");
      if (!res.headersSent) sendError(res, asVoiceCallError(err));
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (ingress?.handleRequest(req, res, url.pathname)) return;
    if (req.method === "GET" && url.pathname === "/healthz") {
      // Unhealthy while the call log cannot be written: new calls are refused then.
      // And while it drains (stopping): load balancers take it out, calls in progress go on.
      const store = manager.storeHealth();
      const proc = { pid: process.pid, rssBytes: process.memoryUsage().rss };
      const ok = store.writable && !manager.draining;
      return sendJson(res, ok ? 200 : 503, { ok, ...(manager.draining ? { draining: true, activeCalls: manager.activeCalls } : {}), store, process: proc, ...(methods.speech ? { speech: methods.speech } : {}) });
    }
    if (url.pathname === "/rpc" || url.pathname === "/events") {
      if (!tokenMatches(token, bearer(req))) {
        return sendError(res, new VoiceCallError("UNAUTHORIZED", "missing or wrong bearer token (VOICECALL_TOKEN)"));
      }
      if (url.pathname === "/events" && req.method === "GET") return streamEvents(req, res);
      if (url.pathname === "/rpc" && req.method === "POST") return rpc(req, res);
      res.setHeader("allow", url.pathname === "/rpc" ? "POST" : "GET");
      return sendJson(res, 405, { ok: false, error: { code: "INVALID_PARAMS", message: `${req.method} not allowed on ${url.pathname}` } });
    }
    sendJson(res, 404, { ok: false, error: { code: "NOT_FOUND", message: `no route ${url.pathname}` } });
  }

  async function rpc(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new VoiceCallError("INVALID_PARAMS", 'body: expected {"method": ..., "params": {...}}', [{ path: "body", message: "expected an object" }]);
    }
    const { method, params } = body as { method?: unknown; params?: unknown };
    const started = Date.now();
    try {
      const result = await invoke(methods, method, params, { forwarded: req.headers[FORWARDED_HEADER] !== undefined });
      logger.info({ method, ms: Date.now() - started }, "rpc");
      sendJson(res, 200, { ok: true, result });
    } catch (err) {
      const error = asVoiceCallError(err);
      logger.info({ method, code: error.code, ms: Date.now() - started }, "rpc failed");
      sendError(res, error);
    }
  }

  /**
   * Server-sent events. A subscriber that stops reading is dropped once its
   * backlog passes MAX_EVENTS_BACKLOG_BYTES: the service never holds an
   * unbounded queue for it (it reconnects and reads the state with status).
   */
  function streamEvents(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write(": voicecall events\n\n");
    const send = (text: string) => {
      if (res.destroyed) return;
      if (res.writableLength > MAX_EVENTS_BACKLOG_BYTES) {
        logger.warn({ backlogBytes: res.writableLength }, "events subscriber is not reading; dropped");
        stop();
        res.destroy();
        return;
      }
      res.write(text);
    };
    const format = (event: { type: string }) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
    const off = manager.onEvent((event) => send(format(event)));
    // On a shared store: the other instances' calls too (not for a stream another instance asked for: it follows each itself).
    const relay = new AbortController();
    if (methods.forwarder && !req.headers[FORWARDED_HEADER]) void methods.forwarder.relayEvents((event) => send(format(event)), relay.signal);
    const keepAlive = setInterval(() => send(": keep-alive\n\n"), 15_000);
    const stop = () => {
      off();
      relay.abort();
      clearInterval(keepAlive);
    };
    req.on("close", stop);
    res.on("close", stop);
  }

  server.on("upgrade", (req, socket, head) => {
    let pathname = "/";
    try {
      pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    } catch {
      // A request line no URL parser takes: not a route of ours.
    }
    if (!ingress?.handleUpgrade(req, socket, head, pathname)) socket.destroy();
  });

  return server;
}

export function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const reason = err.code === "EADDRINUSE" ? `port ${port} on ${host} is already in use (serve.port)` : err.message;
      reject(new VoiceCallError("UNAVAILABLE", `cannot listen: ${reason}`));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function bearer(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header?.startsWith("Bearer ")) return undefined;
  return header.slice("Bearer ".length).trim();
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new VoiceCallError("INVALID_PARAMS", `body: larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new VoiceCallError("INVALID_PARAMS", "body: not valid JSON", [{ path: "body", message: "not valid JSON" }]);
  }
}

function sendError(res: ServerResponse, error: VoiceCallError): void {
  sendJson(res, STATUS[error.code], { ok: false, error: error.toJSON() });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
