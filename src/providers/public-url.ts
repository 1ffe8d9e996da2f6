/**
 * Where carriers reach this service from the internet: the webhook URL
 * (publicUrl, or what `voicecall expose` / a tunnel reports at run time) and
 * the media stream URL derived from it (same host, wss, streaming.streamPath).
 */
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";

export class PublicEndpoints {
  private base: string | undefined;
  /** Why there is no public URL yet (a tunnel still opening or failing). */
  private missing?: string;

  constructor(private readonly config: Pick<VoiceCallConfig, "publicUrl" | "streaming">) {
    this.base = config.publicUrl ? stripQuery(config.publicUrl) : undefined;
  }

  /** A tunnel or `expose` found the public URL at run time. */
  set(webhookUrl: string): void {
    this.base = stripQuery(webhookUrl);
    this.missing = undefined;
  }

  /** A tunnel is configured but not up: calls that need the URL fail with `reason`. */
  pending(reason: string): void {
    this.base = undefined;
    this.missing = reason;
  }

  /** The public webhook URL without query, if known. */
  webhookBase(): string | undefined {
    return this.base;
  }

  /** The webhook URL with `query`; UNAVAILABLE naming the fix when none is known. */
  webhook(query: Record<string, string> = {}): string {
    const base = this.require();
    const q = new URLSearchParams(query).toString();
    return q ? `${base}?${q}` : base;
  }

  /** The media WebSocket URL on the same host. */
  stream(): string {
    const url = new URL(this.require());
    url.protocol = url.protocol === "http:" ? "ws:" : "wss:";
    url.pathname = this.config.streaming.streamPath;
    url.search = "";
    return url.toString();
  }

  private require(): string {
    if (!this.base) {
      throw new VoiceCallError("UNAVAILABLE", this.missing
        ? `no public URL for carrier webhooks: ${this.missing}`
        : "no public URL for carrier webhooks: set publicUrl, or tunnel.provider / tailscale.mode (see `voicecall setup`)");
    }
    return this.base;
  }
}

function stripQuery(url: string): string {
  const u = new URL(url);
  u.search = "";
  u.hash = "";
  return u.toString();
}
