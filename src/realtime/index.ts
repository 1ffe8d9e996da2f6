/**
 * The realtime voice providers this service has, their options checked with
 * the rest of the config, and the provider a config picks.
 */
import type { z } from "zod";
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError, zodIssues, type FieldIssue } from "../errors.js";
import { OpenAiRealtime, OpenAiRealtimeOptions } from "./openai.js";
import type { RealtimeVoice } from "./types.js";

interface Entry {
  options: z.ZodType;
  create(options: never): RealtimeVoice;
}

const PROVIDERS: Record<string, Entry> = {
  openai: { options: OpenAiRealtimeOptions, create: (o: OpenAiRealtimeOptions) => new OpenAiRealtime(o) },
};

const DEFAULT_PROVIDER = "openai";

const object = (node: unknown) => (typeof node === "object" && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>) : {});

/** Problems with realtime voice in a raw config (with the environment applied); only when it is enabled. */
export function realtimeConfigIssues(raw: Record<string, unknown>): FieldIssue[] {
  const realtime = object(raw.realtime);
  if (realtime.enabled !== true) return [];
  const issues = gatewayRealtimeConfigIssues(raw);
  const id = typeof realtime.provider === "string" ? realtime.provider : DEFAULT_PROVIDER;
  const entry = PROVIDERS[id];
  if (!entry) {
    issues.push({ path: "realtime.provider", message: `unknown realtime voice provider "${id}" (available: ${Object.keys(PROVIDERS).join(", ")})` });
    return issues;
  }
  const parsed = entry.options.safeParse(object(realtime.providers)[id] ?? {});
  if (!parsed.success) issues.push(...zodIssues(parsed.error, `realtime.providers.${id}`));
  return issues;
}

/**
 * Inside the gateway the providers are the gateway's (openai, google, xai, ...), their options theirs,
 * chosen when the service starts: only what holds for any provider is checked here.
 */
export function gatewayRealtimeConfigIssues(raw: Record<string, unknown>): FieldIssue[] {
  if (object(raw.realtime).enabled !== true || object(raw.streaming).enabled !== false) return [];
  return [{ path: "realtime.enabled", message: "a realtime model needs the call's audio through this service; streaming.enabled: false has the carriers speak and listen themselves" }];
}

/** The provider a config picks and its parsed options (checked at load, so a failure here names the key). */
function chosenProvider(config: VoiceCallConfig): { entry: Entry; options: Record<string, unknown> } {
  const id = config.realtime.provider ?? DEFAULT_PROVIDER;
  const entry = PROVIDERS[id];
  const parsed = entry?.options.safeParse(config.realtime.providers?.[id] ?? {});
  if (!entry || !parsed?.success) {
    const issues = entry && parsed && !parsed.success ? zodIssues(parsed.error, `realtime.providers.${id}`) : [{ path: "realtime.provider", message: `unknown realtime voice provider "${id}"` }];
    throw new VoiceCallError("INVALID_CONFIG", `realtime: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
  }
  return { entry, options: parsed.data as Record<string, unknown> };
}

/** The realtime voice a config enables. */
export function createRealtimeVoice(config: VoiceCallConfig): RealtimeVoice {
  const { entry, options } = chosenProvider(config);
  return entry.create(options as never);
}

/** What speaks and listens when realtime voice is on: the model, both ways, and why (the start log, /healthz, setup). */
export function realtimeChoice(config: VoiceCallConfig): { tts: { engine: string; why: string }; stt: { engine: string; why: string } } {
  const id = config.realtime.provider ?? DEFAULT_PROVIDER;
  let model: unknown;
  try {
    model = chosenProvider(config).options.model;
  } catch {
    // Options that do not parse are named at load; here the model is just not said.
  }
  const choice = { engine: `realtime:${id}`, why: `realtime.enabled: the speech-to-speech model${typeof model === "string" ? ` ${model}` : ""} hears the caller and speaks` };
  return { tts: choice, stt: choice };
}

/** Each provider's options schema, for the generated config reference. */
export function realtimeProviderOptions(): Array<{ id: string; options: z.ZodType }> {
  return Object.entries(PROVIDERS).map(([id, e]) => ({ id, options: e.options }));
}
