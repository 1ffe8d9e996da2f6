/**
 * Secrets given as references, in the forms the OpenClaw gateway documents:
 * a SecretRef object `{ source, provider, id }`, or the shorthand strings
 * `${NAME}` / `$NAME` for an environment variable. Inside the gateway the
 * host resolves every path listed in SECRET_PATHS before the plugin sees its
 * config (the manifest declares them as configContracts.secretInputs);
 * standalone, env references resolve here and the other sources are refused,
 * naming the key, never printing a value.
 */
import { z } from "zod";
import type { FieldIssue } from "../errors.js";

export const SecretRefSchema = z
  .strictObject({
    source: z.enum(["env", "file", "exec", "store"]),
    provider: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, "a provider alias: lower case letters, digits, _ and -"),
    id: z.string().min(1).max(256),
  })
  .describe("a SecretRef: { source: env | file | exec | store, provider, id }");
export type SecretRef = z.infer<typeof SecretRefSchema>;

/**
 * Every config path that holds a secret (`*`: any key of a map). Secrets
 * inside engine options (providers.<id>.apiKey) are not in the schema's own
 * fields, so they are listed here.
 */
export const SECRET_PATHS: readonly string[] = [
  "twilio.accountSid",
  "twilio.authToken",
  "telnyx.apiKey",
  "telnyx.connectionId",
  "plivo.authId",
  "plivo.authToken",
  "asterisk.ari.password",
  "asterisk.ari.*.password",
  "store.password",
  "tunnel.ngrokAuthToken",
  "control.token",
  "responseApiKey",
  "streaming.providers.*.apiKey",
  "tts.providers.*.apiKey",
  "numbers.*.tts.providers.*.apiKey",
  "realtime.providers.*.apiKey",
  "realtime.tools.*.token",
];

const ENV_NAME = /^[A-Z][A-Z0-9_]{0,127}$/;
/** `${NAME}` or `$NAME`, the whole value. */
const SHORTHAND = /^\$(?:\{([A-Z][A-Z0-9_]{0,127})\}|([A-Z][A-Z0-9_]{0,127}))$/;

/** What stands in for a reference when a config is only checked (the gateway resolves it later). */
export const CHECKED_REFERENCE = "(a secret reference)";

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/** The concrete paths (wildcards filled from the config's own keys) where `raw` has a value, with a setter for each. */
function secretSlots(raw: Raw): Array<{ path: string; value: unknown; set(v: unknown): void }> {
  const out: Array<{ path: string; value: unknown; set(v: unknown): void }> = [];
  const walk = (node: Raw, parts: string[], at: string[]) => {
    const [head, ...rest] = parts;
    if (head === undefined) return;
    const keys = head === "*" ? Object.keys(node) : [head];
    for (const key of keys) {
      const value = node[key];
      if (rest.length === 0) {
        if (value !== undefined) out.push({ path: [...at, key].join("."), value, set: (v) => (node[key] = v) });
      } else if (isObject(value) || Array.isArray(value)) walk(value as Raw, rest, [...at, key]);
    }
  };
  for (const path of SECRET_PATHS) walk(raw, path.split("."), []);
  return out;
}

/**
 * The config with its secret references resolved (`mode: "resolve"`, the
 * standalone service: env references from `env`), or only checked (`"check"`:
 * a valid reference stands as CHECKED_REFERENCE, for a config the gateway
 * resolves itself). Returns a copy; issues name the key path.
 */
export function resolveSecretRefs(raw: Raw, env: Record<string, string | undefined>, mode: "resolve" | "check" = "resolve"): { value: Raw; issues: FieldIssue[] } {
  const value: Raw = structuredClone(raw);
  const issues: FieldIssue[] = [];
  for (const slot of secretSlots(value)) {
    let name: string | undefined;
    if (typeof slot.value === "string") {
      const m = SHORTHAND.exec(slot.value);
      if (!m) continue;
      name = m[1] ?? m[2];
    } else if (isObject(slot.value)) {
      const ref = SecretRefSchema.safeParse(slot.value);
      if (!ref.success) continue; // Not a reference: the schema reports what is wrong with it.
      if (mode === "check") {
        slot.set(CHECKED_REFERENCE);
        continue;
      }
      if (ref.data.source !== "env") {
        issues.push({ path: slot.path, message: `a ${ref.data.source} SecretRef is resolved by the OpenClaw gateway (secrets.providers); standalone, use an env reference or the value` });
        continue;
      }
      if (!ENV_NAME.test(ref.data.id)) {
        issues.push({ path: slot.path, message: "an env SecretRef's id must be a variable name (A-Z, 0-9, _)" });
        continue;
      }
      name = ref.data.id;
    } else continue;
    if (mode === "check") {
      slot.set(CHECKED_REFERENCE);
      continue;
    }
    const resolved = env[name!];
    if (resolved === undefined || resolved === "") issues.push({ path: slot.path, message: `refers to the environment variable ${name}, which is not set` });
    else slot.set(resolved);
  }
  return { value, issues };
}

/** The manifest's configContracts.secretInputs: the gateway resolves these paths before the plugin reads its config. */
export function secretInputsContract(): { paths: Array<{ path: string; expected: "string" }> } {
  return { paths: SECRET_PATHS.map((path) => ({ path, expected: "string" as const })) };
}
