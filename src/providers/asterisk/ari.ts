/**
 * A small typed client for the part of Asterisk's REST Interface the
 * provider uses: REST over fetch, events over one WebSocket that reconnects
 * with backoff. Events are validated with zod; after a reconnect the
 * `connected` callback fires with `reconnected: true` so the caller can
 * re-sync (Asterisk does not replay StasisStart).
 */
import WebSocket from "ws";
import { z } from "zod";
import type { Logger } from "../../log.js";

export class AriError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "AriError";
  }
}

/** A 404 means the object is already gone, which is what cleanup wants. */
export async function ignoreGone(p: Promise<void>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AriError && err.status === 404) return;
    throw err;
  }
}

const ChannelSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  state: z.string(),
  caller: z.looseObject({ name: z.string(), number: z.string() }).optional(),
  connected: z.looseObject({ name: z.string(), number: z.string() }).optional(),
  dialplan: z.looseObject({ context: z.string(), exten: z.string() }).optional(),
  channelvars: z.record(z.string(), z.string().nullable()).optional(),
});
export type AriChannel = z.infer<typeof ChannelSchema>;

const BridgeSchema = z.looseObject({ id: z.string(), channels: z.array(z.string()) });
export type AriBridge = z.infer<typeof BridgeSchema>;

const base = { application: z.string(), timestamp: z.string().optional() };
export const AriEventSchema = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("StasisStart"), ...base, args: z.array(z.string()), channel: ChannelSchema }),
  z.looseObject({ type: z.literal("StasisEnd"), ...base, channel: ChannelSchema }),
  z.looseObject({ type: z.literal("ChannelStateChange"), ...base, channel: ChannelSchema }),
  z.looseObject({ type: z.literal("ChannelDestroyed"), ...base, cause: z.number(), cause_txt: z.string(), channel: ChannelSchema }),
  z.looseObject({ type: z.literal("ChannelHangupRequest"), ...base, cause: z.number().optional(), channel: ChannelSchema }),
  z.looseObject({ type: z.literal("ChannelDtmfReceived"), ...base, digit: z.string(), duration_ms: z.number(), channel: ChannelSchema }),
  z.looseObject({ type: z.literal("Dial"), ...base, peer: ChannelSchema, dialstatus: z.string() }),
  // Another events connection took this app (Asterisk gives an app to one connection).
  z.looseObject({ type: z.literal("ApplicationReplaced"), ...base }),
]);
export type AriEvent = z.infer<typeof AriEventSchema>;

export interface AriOptions {
  url: string;
  username: string;
  password: string;
  app: string;
  logger: Logger;
  /** First reconnect delay; doubles up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  requestTimeoutMs?: number;
}

type Query = Record<string, string | number | boolean | undefined>;

/** The events socket came up or went down; `error` (and the HTTP `status`, when Asterisk answered one) only before the first connection. */
export interface ConnectionState {
  connected: boolean;
  reconnected: boolean;
  error?: string;
  status?: number;
}

/**
 * Every ARI operation the client uses, as Asterisk's own /ari/api-docs name
 * them; a test checks this table against a running Asterisk.
 */
export const ARI_OPERATIONS = {
  listChannels: { method: "GET", path: "/channels", query: [] },
  getChannel: { method: "GET", path: "/channels/{channelId}", query: [] },
  originate: { method: "POST", path: "/channels/{channelId}", query: ["endpoint", "app", "appArgs", "callerId", "timeout"] },
  answer: { method: "POST", path: "/channels/{channelId}/answer", query: [] },
  move: { method: "POST", path: "/channels/{channelId}/move", query: ["app", "appArgs"] },
  hangup: { method: "DELETE", path: "/channels/{channelId}", query: ["reason"] },
  sendDtmf: { method: "POST", path: "/channels/{channelId}/dtmf", query: ["dtmf", "between", "duration"] },
  getVariable: { method: "GET", path: "/channels/{channelId}/variable", query: ["variable"] },
  externalMedia: {
    method: "POST",
    path: "/channels/externalMedia",
    query: ["channelId", "app", "external_host", "format", "encapsulation", "transport", "connection_type", "direction"],
  },
  listBridges: { method: "GET", path: "/bridges", query: [] },
  createBridge: { method: "POST", path: "/bridges/{bridgeId}", query: ["type", "name"] },
  addChannel: { method: "POST", path: "/bridges/{bridgeId}/addChannel", query: ["channel"] },
  destroyBridge: { method: "DELETE", path: "/bridges/{bridgeId}", query: [] },
  recordBridge: { method: "POST", path: "/bridges/{bridgeId}/record", query: ["name", "format", "ifExists", "maxDurationSeconds"] },
  getStoredFile: { method: "GET", path: "/recordings/stored/{recordingName}/file", query: [] },
  deleteStored: { method: "DELETE", path: "/recordings/stored/{recordingName}", query: [] },
  info: { method: "GET", path: "/asterisk/info", query: [] },
} as const satisfies Record<string, { method: string; path: string; query: readonly string[] }>;

export class AriClient {
  private ws: WebSocket | null = null;
  private stopped = true;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private everConnected = false;
  private readonly auth: string;
  private readonly eventListeners = new Set<(e: AriEvent) => void>();
  private readonly connectionListeners = new Set<(state: ConnectionState) => void>();

  constructor(private readonly options: AriOptions) {
    this.auth = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString("base64")}`;
  }

  /** Where an externalMedia WebSocket channel waits for us, and the header that opens it. */
  mediaSocket(connectionId: string): { url: string; authorization: string } {
    const url = new URL(`${this.options.url.replace(/\/$/, "")}/media/${encodeURIComponent(connectionId)}`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return { url: url.toString(), authorization: this.auth };
  }

  get app(): string {
    return this.options.app;
  }

  get isConnected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  onEvent(fn: (e: AriEvent) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  onConnection(fn: (state: ConnectionState) => void): () => void {
    this.connectionListeners.add(fn);
    return () => this.connectionListeners.delete(fn);
  }

  /** Opens the events WebSocket; resolves on the first successful connection, rejects (and stops) on a first failure. */
  connect(): Promise<void> {
    this.stopped = false;
    return new Promise((resolve, reject) => {
      const off = this.onConnection((s) => {
        if (s.connected) {
          off();
          resolve();
        } else if (!this.everConnected && s.error) {
          off();
          this.close();
          reject(new AriError(s.status ?? 0, s.error));
        }
      });
      this.open();
    });
  }

  /** Keeps trying to connect in the background (with backoff) until Asterisk answers; connection listeners hear when it does. */
  connectInBackground(): void {
    this.stopped = false;
    this.attempt = 0;
    this.scheduleReconnect();
  }

  close(): void {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.ws?.removeAllListeners();
    this.ws?.on("error", () => undefined);
    this.ws?.terminate();
    this.ws = null;
  }

  // ------------------------------------------------------------- REST

  readonly channels = {
    list: async (): Promise<AriChannel[]> => z.array(ChannelSchema).parse(await this.op("listChannels", {})),
    get: async (id: string): Promise<AriChannel> => ChannelSchema.parse(await this.op("getChannel", { channelId: id })),
    /** A channel variable or dialplan function, e.g. CHANNEL(audionativeformat). */
    getVariable: async (id: string, variable: string): Promise<string> =>
      z.object({ value: z.string() }).parse(await this.op("getVariable", { channelId: id }, { variable })).value,
    originate: async (p: { endpoint: string; channelId: string; appArgs?: string; callerId?: string; timeoutSec?: number }): Promise<AriChannel> =>
      ChannelSchema.parse(
        await this.op("originate", { channelId: p.channelId }, {
          endpoint: p.endpoint,
          app: this.options.app,
          appArgs: p.appArgs,
          callerId: p.callerId,
          timeout: p.timeoutSec,
        }),
      ),
    answer: async (id: string): Promise<void> => void (await this.op("answer", { channelId: id })),
    /** Moves a channel from the Stasis app it is in to `app` (another instance's, or ours). */
    move: async (id: string, app: string, appArgs?: string): Promise<void> => void (await this.op("move", { channelId: id }, { app, appArgs })),
    hangup: async (id: string, reason?: "normal" | "busy" | "congestion" | "no_answer" | "rejected"): Promise<void> =>
      void (await this.op("hangup", { channelId: id }, { reason })),
    sendDtmf: async (id: string, dtmf: string, opts: { between?: number; duration?: number } = {}): Promise<void> =>
      void (await this.op("sendDtmf", { channelId: id }, { dtmf, between: opts.between, duration: opts.duration })),
    externalMedia: async (p: {
      channelId: string;
      externalHost: string;
      format: string;
      transport?: "udp" | "websocket";
      encapsulation?: "rtp" | "none";
      connectionType?: "client" | "server";
    }): Promise<AriChannel> =>
      ChannelSchema.parse(
        await this.op("externalMedia", {}, {
          channelId: p.channelId,
          app: this.options.app,
          external_host: p.externalHost,
          format: p.format,
          encapsulation: p.encapsulation ?? "rtp",
          transport: p.transport ?? "udp",
          connection_type: p.connectionType,
          direction: "both",
        }),
      ),
  };

  readonly bridges = {
    list: async (): Promise<AriBridge[]> => z.array(BridgeSchema).parse(await this.op("listBridges", {})),
    create: async (bridgeId: string, name: string): Promise<AriBridge> =>
      BridgeSchema.parse(await this.op("createBridge", { bridgeId }, { type: "mixing", name })),
    addChannel: async (bridgeId: string, channelId: string): Promise<void> =>
      void (await this.op("addChannel", { bridgeId }, { channel: channelId })),
    destroy: async (bridgeId: string): Promise<void> => void (await this.op("destroyBridge", { bridgeId })),
    /** Records the bridge's mix as `name` (a WAV in Asterisk's recording spool) until the bridge goes. */
    record: async (bridgeId: string, name: string, maxDurationSeconds: number): Promise<void> =>
      void (await this.op("recordBridge", { bridgeId }, { name, format: "wav", ifExists: "overwrite", maxDurationSeconds })),
  };

  readonly recordings = {
    /** A finished recording's file, as Asterisk stored it. */
    file: async (name: string): Promise<Buffer> => {
      const spec = ARI_OPERATIONS.getStoredFile;
      return this.requestBytes(spec.method, spec.path.replace("{recordingName}", enc(name)));
    },
    delete: async (name: string): Promise<void> => void (await this.op("deleteStored", { recordingName: name })),
  };

  /** GET /asterisk/info: cheap liveness check. */
  async info(): Promise<unknown> {
    return this.op("info", {});
  }

  /** Calls one operation of ARI_OPERATIONS; only its declared query parameters can be sent. */
  private op<N extends keyof typeof ARI_OPERATIONS>(
    name: N,
    pathParams: Record<string, string>,
    query: Partial<Record<(typeof ARI_OPERATIONS)[N]["query"][number], string | number | undefined>> = {},
  ): Promise<unknown> {
    const spec = ARI_OPERATIONS[name];
    const path = spec.path.replace(/\{(\w+)\}/g, (_m, key: string) => enc(pathParams[key] ?? ""));
    return this.request(spec.method, path, query as Query);
  }

  async request(method: string, path: string, query: Query = {}): Promise<unknown> {
    const text = (await this.fetchOk(method, path, query)).toString("utf8");
    return text ? JSON.parse(text) : undefined;
  }

  /** A response body as bytes (a recording's file). */
  async requestBytes(method: string, path: string): Promise<Buffer> {
    return this.fetchOk(method, path, {});
  }

  private async fetchOk(method: string, path: string, query: Query): Promise<Buffer> {
    const url = new URL(`${this.options.url.replace(/\/$/, "")}/ari${path}`);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: this.auth },
        signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 5000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new AriError(0, `ARI ${method} ${path}: Asterisk unreachable at ${this.options.url} (${cause})`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (!res.ok) {
      const text = body.toString("utf8");
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // Not JSON: keep the raw text as the message.
      }
      const hint = res.status === 401 ? " (check asterisk.ari.username/password)" : "";
      throw new AriError(res.status, `ARI ${method} ${path}: HTTP ${res.status} ${message}${hint}`);
    }
    return body;
  }

  // ---------------------------------------------------------- events

  private open(): void {
    const url = new URL(`${this.options.url.replace(/\/$/, "")}/ari/events`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("app", this.options.app);
    url.searchParams.set("subscribeAll", "false");
    const ws = new WebSocket(url, { headers: { authorization: this.auth }, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.on("open", () => {
      const reconnected = this.everConnected;
      this.everConnected = true;
      this.attempt = 0;
      this.options.logger.info({ reconnected }, "ARI events connected");
      this.emitConnection({ connected: true, reconnected });
    });
    ws.on("message", (data) => this.onMessage(String(data)));
    ws.on("unexpected-response", (req, res) => {
      // With this listener, ws leaves the request to us and emits no close:
      // end it and retry here, or the client would never reconnect (Asterisk
      // answers 503 while it starts up).
      req.destroy();
      if (this.ws === ws) this.ws = null;
      ws.removeAllListeners();
      ws.on("error", () => undefined);
      const status = res.statusCode ?? 0;
      if (!this.everConnected) {
        this.emitConnection({ connected: false, reconnected: false, status, error: `ARI events: HTTP ${status}${status === 401 ? " (check asterisk.ari.username/password)" : ""}` });
      }
      if (!this.stopped) this.scheduleReconnect();
    });
    ws.on("error", (err) => {
      this.options.logger.debug({ err: err.message }, "ARI events error");
      if (!this.everConnected) this.emitConnection({ connected: false, reconnected: false, error: `ARI events: ${err.message}` });
    });
    ws.on("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.everConnected) this.emitConnection({ connected: false, reconnected: false });
      if (!this.stopped) this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    const base = this.options.backoffMs ?? 250;
    const cap = this.options.maxBackoffMs ?? 5000;
    const delay = Math.min(cap, base * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.open();
    }, delay);
    this.reconnectTimer.unref();
  }

  private onMessage(text: string): void {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.options.logger.warn("ARI sent an event that is not JSON; ignored");
      return;
    }
    const type = (json as { type?: unknown })?.type;
    const parsed = AriEventSchema.safeParse(json);
    if (!parsed.success) {
      // Event types the provider does not use are expected; a known type that fails validation is not.
      const known = AriEventSchema.options.some((o) => o.shape.type.value === type);
      if (known) this.options.logger.warn({ type, issues: parsed.error.issues.slice(0, 3) }, "ARI event failed validation; ignored");
      return;
    }
    for (const fn of this.eventListeners) this.guarded("event", () => fn(parsed.data));
  }

  private emitConnection(state: ConnectionState): void {
    for (const fn of this.connectionListeners) this.guarded("connection change", () => fn(state));
  }

  /** One listener's fault is logged; the events loop and the other listeners go on. */
  private guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.options.logger.error({ err: err instanceof Error ? err.message : String(err) }, `handling an ARI ${what} failed`);
    }
  }
}

const enc = encodeURIComponent;
