/**
 * Which carrier places a call: an explicit provider in the request wins, then
 * the first routing rule whose prefix or pattern matches the destination,
 * then routing.defaultProvider, then the top-level `provider`.
 */
import type { ProviderId, VoiceCallConfig } from "../config/schema.js";

export interface RouteDecision {
  provider: ProviderId;
  /** Why, for logs and status: "request", "rule #2", "routing.defaultProvider", "provider". */
  reason: string;
}

export function routeCall(config: VoiceCallConfig, to: string, requested?: ProviderId): RouteDecision {
  if (requested) return { provider: requested, reason: "request" };
  const index = config.routing.rules.findIndex((rule) => {
    if (rule.prefix !== undefined && !to.startsWith(rule.prefix)) return false;
    if (rule.pattern !== undefined && !new RegExp(`^(?:${rule.pattern})$`).test(to)) return false;
    return true;
  });
  const rule = config.routing.rules[index];
  if (rule) return { provider: rule.provider, reason: `routing.rules[${index}]` };
  if (config.routing.defaultProvider) return { provider: config.routing.defaultProvider, reason: "routing.defaultProvider" };
  return { provider: config.provider, reason: "provider" };
}
