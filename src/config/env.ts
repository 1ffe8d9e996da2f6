/**
 * The only place that reads environment variables. Secrets and a few
 * deployment settings may come from the environment; a value in the config
 * file wins over the environment, except VOICECALL_TOKEN (documented).
 */
type Raw = Record<string, unknown>;
export type Env = Record<string, string | undefined>;

/** env var -> config path. */
const ENV_KEYS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ["TWILIO_ACCOUNT_SID", ["twilio", "accountSid"]],
  ["TWILIO_AUTH_TOKEN", ["twilio", "authToken"]],
  ["TWILIO_FROM_NUMBER", ["fromNumber"]],
  ["TELNYX_API_KEY", ["telnyx", "apiKey"]],
  ["TELNYX_CONNECTION_ID", ["telnyx", "connectionId"]],
  ["TELNYX_PUBLIC_KEY", ["telnyx", "publicKey"]],
  ["PLIVO_AUTH_ID", ["plivo", "authId"]],
  ["PLIVO_AUTH_TOKEN", ["plivo", "authToken"]],
  ["NGROK_AUTHTOKEN", ["tunnel", "ngrokAuthToken"]],
  ["NGROK_DOMAIN", ["tunnel", "ngrokDomain"]],
  ["VOICECALL_STORE", ["store"]],
  ["VOICECALL_NODE_ID", ["cluster", "nodeId"]],
  ["ASTERISK_ARI_URL", ["asterisk", "ari", "url"]],
  ["ASTERISK_ARI_USERNAME", ["asterisk", "ari", "username"]],
  ["ASTERISK_ARI_PASSWORD", ["asterisk", "ari", "password"]],
  ["OPENAI_API_KEY", ["streaming", "providers", "openai", "apiKey"]],
  ["OPENAI_API_KEY", ["tts", "providers", "openai", "apiKey"]],
  ["OPENAI_API_KEY", ["responseApiKey"]],
  ["OPENAI_API_KEY", ["realtime", "providers", "openai", "apiKey"]],
  ["DEEPGRAM_API_KEY", ["streaming", "providers", "deepgram", "apiKey"]],
  ["ELEVENLABS_API_KEY", ["tts", "providers", "elevenlabs", "apiKey"]],
];

export const ENV_VAR_NAMES = [...new Set(ENV_KEYS.map(([name]) => name)), "VOICECALL_TOKEN"];

/** The environment variable that fills a config path (dotted), if any. */
export function envVarFor(path: string): string | undefined {
  if (path === "control.token") return "VOICECALL_TOKEN";
  return ENV_KEYS.find(([, p]) => p.join(".") === path)?.[0];
}

/**
 * The config with environment values filled in, and which config paths came
 * from which variable (so a problem with one names the variable, not a key
 * the config file does not have).
 */
export function applyEnv(raw: Raw, env: Env): { value: Raw; fromEnv: Map<string, string> } {
  const out: Raw = structuredClone(raw);
  const fromEnv = new Map<string, string>();
  for (const [name, path] of ENV_KEYS) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    if (setIfAbsent(out, path, value)) fromEnv.set(path.join("."), name);
  }
  const token = env.VOICECALL_TOKEN;
  if (token) {
    const control = (out.control ??= {}) as Raw;
    control.token = token;
    fromEnv.set("control.token", "VOICECALL_TOKEN");
  }
  return { value: out, fromEnv };
}

function setIfAbsent(target: Raw, path: readonly string[], value: string): boolean {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) {
      // A non-object here is a config error the schema will report; leave it.
      if (next !== undefined) return false;
      node[key] = {};
    }
    node = node[key] as Raw;
  }
  const last = path[path.length - 1]!;
  if (node[last] !== undefined) return false;
  node[last] = value;
  return true;
}

/** Where the CLI finds the running service, from VOICECALL_URL / VOICECALL_TOKEN. */
export function clientEnv(env: Env): { url?: string; token?: string } {
  return { url: env.VOICECALL_URL || undefined, token: env.VOICECALL_TOKEN || undefined };
}
