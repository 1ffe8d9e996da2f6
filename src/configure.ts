/**
 * The service's config, checked whole: the schema and cross-field rules from
 * config/, plus each speech engine's own options (speech/ sits above config/,
 * so the two meet here rather than config/ reaching up).
 */
import { resolveConfigWith, type ResolvedConfig } from "./config/load.js";
import type { Env } from "./config/env.js";
import { speechConfigIssues, speechConfigNotes } from "./speech/index.js";

export function resolveConfig(raw: unknown, env: Env = {}, source = "config"): ResolvedConfig {
  return resolveConfigWith(raw, env, source, [speechConfigIssues], [speechConfigNotes]);
}
