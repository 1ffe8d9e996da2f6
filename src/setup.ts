/**
 * `voicecall setup`: is this config ready for real calls? Checks the config,
 * each carrier it uses (credentials and caller id asked of the carrier
 * itself, PBX reachability), how carriers reach the webhook (refusing a
 * public URL on loopback or a private range), what speaks and listens on
 * calls (and why), and whether the service runs. Each finding says what to
 * change. Places no call and starts nothing.
 */
import type { VoiceCallConfig } from "./config/schema.js";
import { createLogger } from "./log.js";
import { createProviders, type ProviderDeps } from "./providers/index.js";
import { createRealtimeVoice, realtimeChoice } from "./realtime/index.js";
import { createSynthesizer, createTranscriber, speechChoice } from "./speech/index.js";
import type { Synthesizer, Transcriber } from "./speech/types.js";
import { TERMINAL_STATES, type SetupFinding } from "./providers/types.js";
import type { VoiceCallClient } from "./server/client.js";
import { describePlan, exposurePlan } from "./server/exposure.js";
import { checkPublicUrl, type Resolve } from "./server/public-address.js";
import { TailscaleCli } from "./server/tailscale.js";

export type { SetupFinding };

export interface SetupReport {
  /** No finding failed (warnings allowed). */
  ok: boolean;
  findings: SetupFinding[];
}

export interface SetupDeps {
  /** The running service's control API, if any (its absence is a warning, not a failure). */
  client?: VoiceCallClient;
  apiBaseUrls?: ProviderDeps["apiBaseUrls"];
  tailscaleBin?: string;
  resolve?: Resolve;
  /** The plugin's config inside the gateway: its voices and recognisers are chosen when the service starts. */
  gateway?: boolean;
}

/** Speech stand-ins for building carriers to check them: setup says nothing on a call (speech has its own finding). */
const NO_SYNTHESIS: Synthesizer = {
  id: "none",
  synthesize: () => {
    throw new Error("setup speaks on no call");
  },
};
const NO_RECOGNITION: Transcriber = {
  id: "none",
  endpointing: "bus",
  stream: () => Promise.reject(new Error("setup listens on no call")),
};

/** How long one carrier may take to answer its checks. */
const CHECK_TIMEOUT_MS = 15_000;

export async function runSetup(config: VoiceCallConfig, warnings: string[], deps: SetupDeps = {}): Promise<SetupReport> {
  const findings: SetupFinding[] = [{ check: "config", status: "ok", detail: `config is valid (provider ${config.provider})` }];
  for (const w of warnings) findings.push({ check: "config", status: "warn", detail: w });

  let providers: ReturnType<typeof createProviders>;
  try {
    providers = createProviders(config, { logger: createLogger("silent"), apiBaseUrls: deps.apiBaseUrls, synthesizer: NO_SYNTHESIS, transcriber: NO_RECOGNITION });
  } catch (err) {
    findings.push({ check: "carriers", status: "fail", detail: (err as Error).message });
    return { ok: false, findings: [...findings, await serviceFinding(deps.client)] };
  }
  for (const provider of providers.values()) {
    if (!provider.check) {
      findings.push({ check: provider.id, status: "ok", detail: `${provider.id}: nothing to check` });
      continue;
    }
    findings.push(...(await withTimeout(provider.check(), provider.id)));
  }

  const public_ = [...providers.values()].filter((p) => p.ingress).map((p) => p.id);
  if (public_.length > 0) findings.push(await exposureFinding(config, public_.join(", "), deps));

  const service = await serviceFinding(deps.client);
  if ([...providers.keys()].some((id) => id !== "mock")) findings.push(await speechFinding(config, deps, service.status === "ok"));
  findings.push(service);
  return { ok: findings.every((f) => f.status !== "fail"), findings };
}

/**
 * What speaks and what listens on calls: as the running service chose (its
 * /healthz), else as this config would choose standalone, with the engines
 * built to prove they can run here.
 */
async function speechFinding(config: VoiceCallConfig, deps: SetupDeps, running: boolean): Promise<SetupFinding> {
  const check = "speech";
  const describe = (s: { tts: { engine: string; why: string }; stt: { engine: string; why: string } }) =>
    `speech out: ${s.tts.engine}, ${s.tts.why}; speech in: ${s.stt.engine}, ${s.stt.why}`;
  if (running && deps.client) {
    try {
      const health = (await (await fetch(`${deps.client.url}/healthz`, { signal: AbortSignal.timeout(5000) })).json()) as { speech?: Parameters<typeof describe>[0] };
      if (health.speech) return { check, status: "ok", detail: `the running service: ${describe(health.speech)}` };
    } catch {
      // An older service without the field: judged from the config below.
    }
  }
  if (deps.gateway && config.realtime.enabled) return { check, status: "ok", detail: "chosen when the service starts inside the gateway: a realtime voice provider of the gateway (realtime.provider, else the first configured); without one, its voices and recognisers as for other calls" };
  if (config.realtime.enabled) return realtimeFinding(config, describe(realtimeChoice(config)));
  if (deps.gateway) return { check, status: "ok", detail: "chosen when the service starts inside the gateway: its voices (tts) and realtime transcription providers where configured, this service's own engines otherwise" };
  try {
    const choice = speechChoice(config);
    createSynthesizer(config);
    createTranscriber(config);
    return { check, status: "ok", detail: describe(choice) };
  } catch (err) {
    return { check, status: "fail", detail: (err as Error).message, fix: "name an engine that runs here under tts.provider / streaming.provider, or give a cloud engine its key" };
  }
}

/** A realtime model: its provider takes the key (a session opened and closed), named without the key. */
async function realtimeFinding(config: VoiceCallConfig, detail: string): Promise<SetupFinding> {
  const check = "speech";
  try {
    const session = await createRealtimeVoice(config).open({ instructions: "", tools: [], audio: "pcmu" });
    session.close();
    return { check, status: "ok", detail: `${detail}; the model's service accepted a session` };
  } catch (err) {
    return { check, status: "fail", detail: `${detail}; ${(err as Error).message}`, fix: "check realtime.providers.<id>.apiKey (or OPENAI_API_KEY) and baseUrl" };
  }
}

async function exposureFinding(config: VoiceCallConfig, carriers: string, deps: SetupDeps): Promise<SetupFinding> {
  const check = "webhook-exposure";
  if (config.publicUrl) {
    const url = new URL(config.publicUrl);
    if (url.protocol !== "https:") {
      return { check, status: "fail", detail: `publicUrl ${config.publicUrl} is not https: carriers stream audio only over wss://`, fix: "serve it over HTTPS (a reverse proxy, tailscale funnel or ngrok)" };
    }
    const verdict = await checkPublicUrl(config.publicUrl, deps.resolve);
    return verdict.ok
      ? { check, status: "ok", detail: `publicUrl ${config.publicUrl} resolves to public addresses (${verdict.addresses.join(", ")})` }
      : { check, status: "fail", detail: `publicUrl: ${verdict.reason}`, fix: "set publicUrl to the address carriers reach from the internet, or use tailscale.mode: funnel / tunnel.provider: ngrok" };
  }
  const plan = exposurePlan(config);
  if (!plan) {
    return { check, status: "fail", detail: `${carriers} cannot reach this service: no publicUrl and no tunnel`, fix: `set publicUrl (e.g. https://voice.example.com${config.serve.path}), or tailscale: { mode: "funnel" }, or tunnel: { provider: "ngrok" }` };
  }
  if (plan.kind === "ngrok") {
    return plan.authtoken
      ? { check, status: "ok", detail: "the ngrok tunnel opens when the service starts; its URL is logged then" }
      : { check, status: "fail", detail: "tunnel.provider is ngrok but no authtoken is set", fix: "set tunnel.ngrokAuthToken or NGROK_AUTHTOKEN" };
  }
  if (plan.mode === "serve") {
    return { check, status: "fail", detail: "Tailscale Serve is reachable only inside the tailnet; carriers call from the internet", fix: 'use tailscale: { mode: "funnel" } (ports 443, 8443 or 10000)' };
  }
  try {
    const name = await new TailscaleCli(deps.tailscaleBin).dnsName();
    const port = plan.httpsPort === 443 ? "" : `:${plan.httpsPort}`;
    return { check, status: "ok", detail: `${describePlan(plan)}: carriers will call https://${name}${port}${plan.path} once the service starts` };
  } catch (err) {
    return { check, status: "fail", detail: (err as Error).message, fix: "install and log in to Tailscale (tailscale up), enable HTTPS and Funnel for the tailnet, or set publicUrl" };
  }
}

async function serviceFinding(client: VoiceCallClient | undefined): Promise<SetupFinding> {
  if (!client) return { check: "service", status: "warn", detail: "no control API to ask" };
  try {
    const { calls } = (await client.call("voicecall.list", {})) as { calls: unknown[] };
    return { check: "service", status: "ok", detail: `the service at ${client.url} is running (${calls.length} calls on record)` };
  } catch (err) {
    return { check: "service", status: "warn", detail: `the service at ${client.url} does not answer: ${(err as Error).message}`, fix: "start it with voicecall serve (or enable the plugin in the gateway)" };
  }
}

function withTimeout(findings: Promise<SetupFinding[]>, id: string): Promise<SetupFinding[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<SetupFinding[]>((resolve) => {
    timer = setTimeout(() => resolve([{ check: id, status: "fail", detail: `${id} did not answer within ${CHECK_TIMEOUT_MS / 1000} s` }]), CHECK_TIMEOUT_MS);
  });
  const answered = findings.catch((err: Error): SetupFinding[] => [{ check: id, status: "fail", detail: `${id}: ${err.message}` }]);
  return Promise.race([answered, late]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------ smoke

export interface SmokeOptions {
  to: string;
  message: string;
  provider?: string;
  /** The call is hung up and the smoke test fails after this long. */
  timeoutMs?: number;
  /** Each state the call passes through, as it happens. */
  onState?: (state: string, elapsedMs: number) => void;
}

export interface SmokeResult {
  ok: boolean;
  callId: string;
  provider: string;
  states: Array<{ state: string; atMs: number }>;
  endReason?: string;
  answered: boolean;
}

interface StatusReply {
  found: boolean;
  call?: { state: string; provider: string; answeredAt?: string; endReason?: string };
}

const TERMINAL = new Set<string>(TERMINAL_STATES);

/**
 * A short notify call through the running service: placed, followed state by
 * state until it ends, hung up if it outlasts `timeoutMs`. It passes when the
 * callee answered and the call ended normally.
 */
export async function runSmoke(client: VoiceCallClient, options: SmokeOptions): Promise<SmokeResult> {
  const started = Date.now();
  const placed = (await client.call("voicecall.initiate", { to: options.to, message: options.message, mode: "notify", provider: options.provider })) as { callId: string; provider: string };
  const states: SmokeResult["states"] = [];
  const deadline = started + (options.timeoutMs ?? 90_000);
  let last: StatusReply["call"];
  for (;;) {
    const reply = (await client.call("voicecall.status", { callId: placed.callId })) as StatusReply;
    last = reply.call;
    if (last && states[states.length - 1]?.state !== last.state) {
      const atMs = Date.now() - started;
      states.push({ state: last.state, atMs });
      options.onState?.(last.state, atMs);
    }
    if (!last || TERMINAL.has(last.state)) break;
    if (Date.now() > deadline) {
      await client.call("voicecall.end", { callId: placed.callId }).catch(() => undefined);
      return { ok: false, callId: placed.callId, provider: placed.provider, states, answered: Boolean(last.answeredAt), endReason: `still ${last.state} after ${Math.round((options.timeoutMs ?? 90_000) / 1000)} s; hung up` };
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const answered = Boolean(last?.answeredAt);
  const normal = last !== undefined && ["completed", "hangup-bot", "hangup-user"].includes(last.state);
  return { ok: answered && normal, callId: placed.callId, provider: placed.provider, states, answered, endReason: last?.endReason ?? (last ? undefined : "the service no longer knows the call") };
}
