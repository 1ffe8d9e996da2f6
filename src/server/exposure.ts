/**
 * Making the service reachable from the internet when publicUrl is not set:
 * a Tailscale Serve/Funnel route (through the tailscale CLI) or an ngrok
 * tunnel (through ngrok's official package), opened once the service
 * listens. The URL it yields becomes the public webhook URL; until then
 * calls that need it fail naming the reason. A failed attempt is retried in
 * the background (the network or tailscaled may come up after us).
 */
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { PublicEndpoints } from "../providers/public-url.js";
import { TailscaleCli, type TailscaleMode, type TailscaleRoute } from "./tailscale.js";

export type ExposurePlan =
  | { kind: "ngrok"; authtoken?: string; domain?: string }
  | { kind: "tailscale"; mode: TailscaleMode; httpsPort: number; path: string };

/** What the config asks for; undefined when publicUrl is set or nothing is. */
export function exposurePlan(config: Pick<VoiceCallConfig, "publicUrl" | "tunnel" | "tailscale">): ExposurePlan | undefined {
  if (config.publicUrl) return undefined;
  const { tunnel, tailscale } = config;
  if (tunnel.provider === "ngrok") return { kind: "ngrok", authtoken: tunnel.ngrokAuthToken, domain: tunnel.ngrokDomain };
  const mode: TailscaleMode | undefined =
    tunnel.provider === "tailscale-serve" ? "serve" : tunnel.provider === "tailscale-funnel" ? "funnel" : tailscale.mode === "off" ? undefined : tailscale.mode;
  return mode ? { kind: "tailscale", mode, httpsPort: tailscale.port, path: tailscale.path } : undefined;
}

export function describePlan(plan: ExposurePlan): string {
  return plan.kind === "ngrok" ? "ngrok tunnel" : `tailscale ${plan.mode} on port ${plan.httpsPort}`;
}

/** The part of an ngrok listener this uses. */
export interface NgrokListener {
  url(): string | null;
  close(): Promise<void>;
}
export type NgrokForward = (options: { addr: string; authtoken?: string; domain?: string }) => Promise<NgrokListener>;

export interface ExposureOptions {
  plan: ExposurePlan;
  /** The service's own address: where routes and tunnels send requests. */
  local: { host: string; port: number };
  webhookPath: string;
  streamPath: string;
  endpoints: PublicEndpoints;
  logger: Logger;
  /** The tailscale CLI to run (default `tailscale` on PATH). */
  tailscaleBin?: string;
  /** ngrok's forward(); default the @ngrok/ngrok package, loaded when first needed. */
  ngrokForward?: NgrokForward;
}

/** Waits between attempts, in ms; the last repeats. */
const RETRY_MS = [2000, 5000, 15000, 30000, 60000];

export interface Opened {
  /** https://host[:port] carriers reach. */
  base: string;
  close(): Promise<void>;
}

/**
 * Routes the webhook (on the plan's external path) and the media stream (on
 * its own path) through Tailscale to the service; all or nothing.
 */
export async function routeThroughTailscale(
  plan: Extract<ExposurePlan, { kind: "tailscale" }>,
  to: Pick<ExposureOptions, "local" | "webhookPath" | "streamPath" | "tailscaleBin">,
): Promise<Opened> {
  const cli = new TailscaleCli(to.tailscaleBin);
  const target = (path: string) => `http://${hostForUrl(to.local.host)}:${to.local.port}${path}`;
  const routes: TailscaleRoute[] = [
    { mode: plan.mode, httpsPort: plan.httpsPort, path: plan.path, target: target(to.webhookPath) },
    { mode: plan.mode, httpsPort: plan.httpsPort, path: to.streamPath, target: target(to.streamPath) },
  ];
  let base = "";
  const added: TailscaleRoute[] = [];
  // One at a time: tailscaled's serve config is read, changed and written back per command.
  const removeAll = async () => {
    for (const route of added) await cli.remove(route);
  };
  try {
    for (const route of routes) {
      base = await cli.add(route);
      added.push(route);
    }
  } catch (err) {
    await removeAll().catch(() => undefined);
    throw err;
  }
  return { base, close: removeAll };
}

export class Exposure {
  private opened?: Opened;
  private closed = false;
  private timer?: NodeJS.Timeout;
  private attempts = 0;
  private lastError?: string;
  private readonly waiters: Array<(url: string) => void> = [];

  constructor(private readonly options: ExposureOptions) {}

  /** Starts the first attempt; later ones follow on failure until close(). */
  start(): void {
    this.options.endpoints.pending(`the ${describePlan(this.options.plan)} is not up yet`);
    void this.attempt();
  }

  /** The public webhook URL once the route or tunnel is up. */
  ready(): Promise<string> {
    const url = this.options.endpoints.webhookBase();
    return this.opened && url ? Promise.resolve(url) : new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const opened = this.opened;
    this.opened = undefined;
    await opened?.close().catch((err: Error) => this.options.logger.warn({ err: err.message }, "could not remove the public route"));
  }

  private async attempt(): Promise<void> {
    const { plan, endpoints, logger, webhookPath } = this.options;
    try {
      const opened = await this.open();
      if (this.closed) return void (await opened.close().catch(() => undefined));
      this.opened = opened;
      const webhookUrl = opened.base + (plan.kind === "tailscale" ? plan.path : webhookPath);
      endpoints.set(webhookUrl);
      logger.info({ webhookUrl, streamUrl: endpoints.stream(), via: describePlan(plan) }, "public URL ready: carriers reach this service there");
      for (const resolve of this.waiters.splice(0)) resolve(webhookUrl);
    } catch (err) {
      if (this.closed) return;
      const message = err instanceof Error ? err.message : String(err);
      const wait = RETRY_MS[Math.min(this.attempts, RETRY_MS.length - 1)]!;
      this.attempts += 1;
      endpoints.pending(`the ${describePlan(plan)} is not up: ${message}`);
      // Said loudly once per distinct reason, then quietly while it repeats.
      if (message !== this.lastError) logger.error({ reason: message, retryInMs: wait }, `cannot open the ${describePlan(plan)}; retrying`);
      else logger.debug({ reason: message, retryInMs: wait }, "public route still down");
      this.lastError = message;
      this.timer = setTimeout(() => void this.attempt(), wait);
      this.timer.unref();
    }
  }

  private open(): Promise<Opened> {
    const { plan } = this.options;
    const { local, webhookPath, streamPath, tailscaleBin } = this.options;
    return plan.kind === "ngrok" ? this.openNgrok(plan) : routeThroughTailscale(plan, { local, webhookPath, streamPath, tailscaleBin });
  }

  private async openNgrok(plan: Extract<ExposurePlan, { kind: "ngrok" }>): Promise<Opened> {
    if (!plan.authtoken) {
      throw new VoiceCallError("INVALID_CONFIG", "tunnel.ngrokAuthToken is not set (or NGROK_AUTHTOKEN): ngrok needs the account's authtoken");
    }
    const forward = this.options.ngrokForward ?? (await loadNgrok());
    const { local } = this.options;
    let listener: NgrokListener;
    try {
      listener = await forward({ addr: `http://${hostForUrl(local.host)}:${local.port}`, authtoken: plan.authtoken, domain: plan.domain });
    } catch (err) {
      // ngrok's messages never include the token; say which part failed.
      throw new VoiceCallError("UNAVAILABLE", `ngrok could not open a tunnel: ${(err as Error).message}`);
    }
    const url = listener.url();
    if (!url) {
      await listener.close().catch(() => undefined);
      throw new VoiceCallError("UNAVAILABLE", "ngrok opened a tunnel without a URL");
    }
    return { base: url.replace(/\/$/, ""), close: () => listener.close() };
  }
}

async function loadNgrok(): Promise<NgrokForward> {
  try {
    const ngrok = await import("@ngrok/ngrok");
    return (options) => ngrok.forward(options);
  } catch (err) {
    throw new VoiceCallError("UNAVAILABLE", `the ngrok package cannot load on this machine (${(err as Error).message}); set publicUrl or use tailscale instead`);
  }
}

/** Where a route reaches the service: a wildcard bind is reached on loopback. */
export function localHost(bind: string): string {
  return bind === "0.0.0.0" || bind === "::" ? "127.0.0.1" : bind;
}

function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
