/**
 * Turns a raw config (file, plugin config, or nothing) into a validated
 * VoiceCallConfig. Every problem is reported at once, each naming its key path.
 */
import { readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import JSON5 from "json5";
import { VoiceCallError, zodIssues, type FieldIssue } from "../errors.js";
import { applyEnv, type Env } from "./env.js";
import { migrateLegacyConfig } from "./migrate.js";
import { resolveSecretRefs } from "./secrets.js";
import { E164_PATTERN, POSTGRES_URL, PROVIDER_IDS, VoiceCallConfigSchema, type ProviderId, type VoiceCallConfig } from "./schema.js";

export interface ResolvedConfig {
  config: VoiceCallConfig;
  /** Legacy keys that were migrated; `voicecall doctor --fix` rewrites them. */
  warnings: string[];
}

/** A rule another layer adds (the speech engines check their own options): issues named by key path. */
export type ConfigCheck = (raw: Record<string, unknown>) => FieldIssue[];

/**
 * Validates a raw config with the schema, the cross-field rules and `checks`.
 * Callers use `resolveConfig` (src/configure.ts), which adds the speech engines' checks.
 */
export function resolveConfigWith(raw: unknown, env: Env, source: string, checks: ConfigCheck[], notes: Array<(config: VoiceCallConfig) => string[]> = []): ResolvedConfig {
  const input = raw ?? {};
  if (typeof input !== "object" || Array.isArray(input)) {
    throw configError(source, [{ path: "(root)", message: "expected an object" }]);
  }
  const { value: migrated, changes } = migrateLegacyConfig(input as Record<string, unknown>);
  // Secret references first: what follows sees values (the gateway resolves its own before we get here).
  const { value, issues: secretIssues } = resolveSecretRefs(migrated, env);
  const { value: withEnv, fromEnv } = applyEnv(value, env);
  const parsed = VoiceCallConfigSchema.safeParse(withEnv);
  // Cross-field rules read the raw input too, so one run reports every problem.
  const cross = [...crossFieldIssues(withEnv), ...checks.flatMap((check) => check(withEnv))];
  // A value from the environment is reported under its variable: the file has no such key.
  const named = (issues: FieldIssue[]) =>
    issues.map((i) => (fromEnv.has(i.path) ? { path: fromEnv.get(i.path)!, message: `${i.message} (the environment variable sets ${i.path})` } : i));
  if (!parsed.success || secretIssues.length > 0) {
    // A reference that could not be resolved says why, rather than the schema's "not resolved".
    const bySecret = new Set(secretIssues.map((i) => i.path));
    const issues = [...secretIssues, ...(parsed.success ? [] : zodIssues(parsed.error).filter((i) => !bySecret.has(i.path)))];
    const seen = new Set(issues.map((i) => i.path));
    throw configError(source, named([...issues, ...cross.filter((i) => !seen.has(i.path))]));
  }
  if (cross.length > 0) throw configError(source, named(cross));
  return {
    config: parsed.data,
    warnings: [
      ...changes.map((c) => `legacy config key: ${c} (run "voicecall doctor --fix")`),
      ...setupIncomplete(parsed.data),
      ...notes.flatMap((note) => note(parsed.data)),
    ],
  };
}

/**
 * What a cloud carrier still needs before it can take calls, said at start
 * (the config loads, as the reference plugin's does; calls then fail naming it).
 */
function setupIncomplete(config: VoiceCallConfig): string[] {
  const out: string[] = [];
  const tunnel = config.tunnel.provider !== "none" || config.tailscale.mode !== "off";
  if (config.publicUrl && tunnel) out.push("publicUrl is set, so tunnel.provider / tailscale.mode are not started: carriers use publicUrl");
  if (config.tunnel.allowNgrokFreeTierLoopbackBypass) {
    out.push("tunnel.allowNgrokFreeTierLoopbackBypass: webhook signatures are always verified here; the key is accepted and has no effect");
  }
  const cloud = [...providersInUse(config)].filter((p) => p === "twilio" || p === "telnyx" || p === "plivo");
  if (cloud.length > 0 && !config.publicUrl && !tunnel) {
    out.push(`publicUrl: not set; ${cloud.join(", ")} cannot reach this service's webhooks until it is (the full URL carriers call, e.g. https://voice.example.com${config.serve.path}), or set tunnel.provider / tailscale.mode`);
  }
  return out;
}

/** Reads a JSON or JSON5 file; a syntax error names the file, line and column. */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : String((err as Error).message);
    throw new VoiceCallError("INVALID_CONFIG", `cannot read config ${path}: ${reason}`);
  }
  try {
    return JSON5.parse(text);
  } catch (err) {
    throw new VoiceCallError("INVALID_CONFIG", `config ${path} is not valid JSON/JSON5: ${(err as Error).message}`);
  }
}

/** Where calls are kept: the JSONL log in a folder, or a PostgreSQL database (with a folder for this machine's files). */
export type StoreSettings =
  | { kind: "jsonl"; dir: string }
  | { kind: "postgres"; dir: string; url: string; password?: string; poolSize: number; connectTimeoutMs: number };

export function storeSettings(config: VoiceCallConfig): StoreSettings {
  const fallback = join(homedir(), ".openclaw", "voice-calls");
  const store = config.store;
  if (store === undefined) return { kind: "jsonl", dir: fallback };
  if (typeof store === "string") {
    return POSTGRES_URL.test(store) ? { kind: "postgres", dir: fallback, url: store, poolSize: 4, connectTimeoutMs: 5000 } : { kind: "jsonl", dir: store };
  }
  const { dir, ...db } = store;
  return { kind: "postgres", dir: dir ?? fallback, ...db };
}

/** The folder of this machine's files: the JSONL log (when it is the store), recordings, the control token, replay keys. */
export function defaultStoreDir(config: VoiceCallConfig): string {
  return storeSettings(config).dir;
}

/** This instance's name on a shared store. */
export function nodeIdOf(config: VoiceCallConfig): string {
  return config.cluster.nodeId ?? (hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64) || "voicecall");
}

/**
 * Every provider the config can send a call to. Reads raw input as well as a
 * parsed config, so cross-field checks work on a config that is still invalid.
 */
export function providersInUse(config: unknown): Set<ProviderId> {
  const top = getPath(config, "provider");
  const used = new Set<ProviderId>([isProviderId(top) ? top : "mock"]);
  const add = (v: unknown) => isProviderId(v) && used.add(v);
  add(getPath(config, "routing.defaultProvider"));
  const rules = getPath(config, "routing.rules");
  if (Array.isArray(rules)) for (const rule of rules) add(getPath(rule, "provider"));
  const numbers = getPath(config, "numbers");
  if (typeof numbers === "object" && numbers !== null) for (const n of Object.values(numbers)) add(getPath(n, "provider"));
  return used;
}

/** Credentials each carrier needs, as [config path, env var]. */
const REQUIRED: Partial<Record<ProviderId, ReadonlyArray<readonly [string, string]>>> = {
  twilio: [
    ["twilio.accountSid", "TWILIO_ACCOUNT_SID"],
    ["twilio.authToken", "TWILIO_AUTH_TOKEN"],
  ],
  telnyx: [
    ["telnyx.apiKey", "TELNYX_API_KEY"],
    ["telnyx.connectionId", "TELNYX_CONNECTION_ID"],
  ],
  plivo: [
    ["plivo.authId", "PLIVO_AUTH_ID"],
    ["plivo.authToken", "PLIVO_AUTH_TOKEN"],
  ],
  asterisk: [["asterisk.ari.password", "ASTERISK_ARI_PASSWORD"]],
};

/** Checks that span keys, on raw (possibly invalid) input: bad values are the schema's to report. */
function crossFieldIssues(raw: Record<string, unknown>): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const numbers = raw.numbers;
  for (const provider of providersInUse(raw)) {
    const servers = getPath(raw, "asterisk.ari");
    if (provider === "asterisk" && Array.isArray(servers)) {
      servers.forEach((server, i) => getPath(server, "password") === undefined && issues.push({ path: `asterisk.ari.${i}.password`, message: "required when provider asterisk is used" }));
      continue;
    }
    for (const [path, envName] of REQUIRED[provider] ?? []) {
      if (getPath(raw, path) === undefined) {
        issues.push({ path, message: `required when provider ${provider} is used (or set ${envName})` });
      }
    }
    const cloud = provider === "twilio" || provider === "telnyx" || provider === "plivo";
    if (cloud && raw.fromNumber === undefined) {
      issues.push({ path: "fromNumber", message: `required when provider ${provider} is used` });
    } else if (cloud && typeof raw.fromNumber === "string" && !E164_PATTERN.test(raw.fromNumber)) {
      issues.push({ path: "fromNumber", message: `must be an E.164 number such as +15550001234 when provider ${provider} is used` });
    }
    const publicKey = getPath(raw, "telnyx.publicKey");
    if (provider === "telnyx" && publicKey === undefined && raw.skipSignatureVerification !== true) {
      issues.push({
        path: "telnyx.publicKey",
        message: "required to verify webhooks (or set TELNYX_PUBLIC_KEY, or skipSignatureVerification for development)",
      });
    } else if (provider === "telnyx" && typeof publicKey === "string" && !isEd25519Key(publicKey)) {
      issues.push({ path: "telnyx.publicKey", message: "must be the base64 Ed25519 public key from Mission Control (32 bytes)" });
    }
  }
  // One way to the internet: a tunnel and a Tailscale mode that disagree is a config mistake, not a choice to guess.
  const tunnel = getPath(raw, "tunnel.provider");
  const tsMode = getPath(raw, "tailscale.mode");
  if (typeof tsMode === "string" && tsMode !== "off" && typeof tunnel === "string" && tunnel !== "none" && tunnel !== `tailscale-${tsMode}`) {
    issues.push({ path: "tailscale.mode", message: `"${tsMode}" disagrees with tunnel.provider "${tunnel}": set one of them` });
  }
  // "pairing" may start empty (numbers are added as they are paired); "allowlist" would refuse everyone.
  if (raw.inboundPolicy === "allowlist" && !hasEntries(raw.allowFrom)) {
    const perNumber = typeof numbers === "object" && numbers !== null && Object.values(numbers).some((n) => hasEntries(getPath(n, "allowFrom")));
    if (!perNumber) issues.push({ path: "allowFrom", message: 'must list at least one number when inboundPolicy is "allowlist"' });
  }
  return issues;
}

/** Telnyx's webhook key: 32 bytes, base64 with padding. */
const isEd25519Key = (v: string): boolean => /^[A-Za-z0-9+/]{43}=$/.test(v) && Buffer.from(v, "base64").length === 32;

const isProviderId = (v: unknown): v is ProviderId => typeof v === "string" && (PROVIDER_IDS as readonly string[]).includes(v);
const hasEntries = (v: unknown): boolean => Array.isArray(v) && v.length > 0;

function getPath(obj: unknown, path: string): unknown {
  let node: unknown = obj;
  for (const key of path.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function configError(source: string, issues: FieldIssue[]): VoiceCallError {
  const lines = issues.map((i) => `  - ${i.path}: ${i.message}`).join("\n");
  return new VoiceCallError("INVALID_CONFIG", `invalid ${source}:\n${lines}`, issues);
}
