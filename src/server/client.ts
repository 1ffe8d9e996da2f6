/**
 * The control API client used by the CLI: POST /rpc with a bearer token, and
 * GET /events for `tail`. Errors come back as VoiceCallError with the
 * service's own code and message.
 */
import { VoiceCallError, type ErrorCode, type FieldIssue } from "../errors.js";
import type { MethodName } from "./methods.js";

export interface ClientOptions {
  url: string;
  token?: string;
  timeoutMs?: number;
  /** Sent with every request (a forwarded one says so). */
  headers?: Record<string, string>;
}

interface RpcReply {
  ok: boolean;
  result?: unknown;
  error?: { code: ErrorCode; message: string; issues?: FieldIssue[] };
}

export class VoiceCallClient {
  constructor(private readonly options: ClientOptions) {}

  /** The service this client talks to. */
  get url(): string {
    return this.options.url;
  }

  async call(method: MethodName, params: Record<string, unknown>): Promise<unknown> {
    const reply = await this.request("/rpc", {
      method: "POST",
      headers: { "content-type": "application/json", ...this.auth() },
      body: JSON.stringify({ method, params }),
    });
    const body = (await reply.json().catch(() => null)) as RpcReply | null;
    if (!body) throw new VoiceCallError("UNAVAILABLE", `the service at ${this.options.url} answered HTTP ${reply.status} without JSON`);
    if (!body.ok) {
      const e = body.error ?? { code: "INTERNAL" as const, message: "unknown error" };
      throw new VoiceCallError(e.code, e.message, e.issues ?? []);
    }
    return body.result;
  }

  /** Yields each event the service emits until `signal` aborts. */
  async *events(signal?: AbortSignal): AsyncGenerator<unknown> {
    const reply = await this.request("/events", { headers: this.auth(), signal }, false);
    if (!reply.ok || !reply.body) {
      const body = (await reply.json().catch(() => null)) as RpcReply | null;
      throw new VoiceCallError(body?.error?.code ?? "UNAVAILABLE", body?.error?.message ?? `HTTP ${reply.status}`);
    }
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of reply.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data: "))
            .map((l) => l.slice(6))
            .join("\n");
          if (data) yield JSON.parse(data);
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
  }

  private auth(): Record<string, string> {
    return { ...this.options.headers, ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}) };
  }

  private async request(path: string, init: RequestInit, timeout = true): Promise<Response> {
    const signals = [init.signal, timeout ? AbortSignal.timeout(this.options.timeoutMs ?? 600_000) : undefined].filter(
      (s): s is AbortSignal => s != null,
    );
    try {
      return await fetch(new URL(path, this.options.url), { ...init, signal: signals.length ? AbortSignal.any(signals) : undefined });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      const why = cause === "ECONNREFUSED" ? "connection refused (is `voicecall serve` running?)" : String((err as Error).message);
      throw new VoiceCallError("UNAVAILABLE", `cannot reach the voice-call service at ${this.options.url}: ${why}`);
    }
  }
}
