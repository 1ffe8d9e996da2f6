/**
 * The plugin's part of `openclaw doctor`: legacy keys of the reference
 * plugin's config (provider "log", twilio.from, the flat streaming keys, ...)
 * reported, and rewritten by `openclaw doctor --fix`, with the same
 * migration the plugin applies at start. The package root's
 * doctor-contract-api.js exports this module (the manifest declares it with
 * doctorContract.configRepair).
 */
import { migrateLegacyConfig } from "../config/migrate.js";

const PATH = ["plugins", "entries", "voice-call", "config"] as const;

type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

export const legacyConfigRules = [
  {
    path: [...PATH],
    message: 'plugins.entries.voice-call.config has legacy keys (provider "log", twilio.from, streaming.sttProvider, streaming.openaiApiKey, ...); run openclaw doctor --fix',
    match: (value: unknown) => isObject(value) && migrateLegacyConfig(value).changes.length > 0,
  },
];

/** The gateway's whole config with the plugin's entry migrated; one line per change. */
export function normalizeCompatibilityConfig({ cfg }: { cfg: unknown }): { config: unknown; changes: string[] } {
  const entries = isObject(cfg) && isObject(cfg.plugins) && isObject(cfg.plugins.entries) ? cfg.plugins.entries : undefined;
  const entry = entries?.["voice-call"];
  if (!isObject(entry) || !isObject(entry.config)) return { config: cfg, changes: [] };
  const migrated = migrateLegacyConfig(entry.config);
  if (migrated.changes.length === 0) return { config: cfg, changes: [] };
  const next = structuredClone(cfg) as { plugins: { entries: Record<string, Raw> } };
  next.plugins.entries["voice-call"]!.config = migrated.value;
  return { config: next, changes: migrated.changes.map((c) => `plugins.entries.voice-call.config: ${c}`) };
}
