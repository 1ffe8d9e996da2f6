/**
 * The service's config, checked whole: the schema and cross-field rules from
 * config/, plus each speech engine's own options (speech/ sits above config/,
 * so the two meet here rather than config/ reaching up). Inside the gateway,
 * engines other than the offline ones may be the gateway's, which own their
 * options; standalone, the keys that name gateway agents are said to have no
 * effect.
 */
import { resolveConfigWith, type ResolvedConfig } from "./config/load.js";
import type { Env } from "./config/env.js";
import type { VoiceCallConfig } from "./config/schema.js";
import { gatewayRealtimeConfigIssues, realtimeConfigIssues } from "./realtime/index.js";
import { gatewaySpeechConfigIssues, speechConfigIssues, speechConfigNotes } from "./speech/index.js";

export interface ResolveOptions {
  /** The config of the plugin inside the OpenClaw gateway (its agents, voices and recognisers). */
  gateway?: boolean;
}

export function resolveConfig(raw: unknown, env: Env = {}, source = "config", options: ResolveOptions = {}): ResolvedConfig {
  if (options.gateway) return resolveConfigWith(raw, env, source, [gatewaySpeechConfigIssues, gatewayRealtimeConfigIssues]);
  return resolveConfigWith(raw, env, source, [speechConfigIssues, realtimeConfigIssues], [speechConfigNotes, gatewayOnlyNotes]);
}

/** Keys that name the gateway's agents and sessions: standalone, calls are answered by responseModel. */
function gatewayOnlyNotes(config: VoiceCallConfig): string[] {
  const paths = [
    ...(config.agentId ? ["agentId"] : []),
    ...(config.sessionScope !== "per-phone" ? ["sessionScope"] : []),
    ...Object.entries(config.numbers).flatMap(([number, o]) => (o.agentId ? [`numbers.${number}.agentId`] : [])),
  ];
  return paths.map((p) => `${p}: applies inside the OpenClaw gateway (its agents answer calls there); standalone, responseModel answers and the key has no effect`);
}
