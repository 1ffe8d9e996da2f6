/**
 * Legacy config keys and their current spelling. Pure: takes a raw config
 * object, returns a migrated copy and one human line per change. Used at
 * start (with warnings) and by `voicecall doctor [--fix]`.
 */
type Raw = Record<string, unknown>;

export interface Migration {
  value: Raw;
  changes: string[];
}

const isObject = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

/** Old flat OpenAI streaming keys and where they live now. */
const STREAMING_TO_OPENAI: Record<string, string> = {
  openaiApiKey: "apiKey",
  sttModel: "model",
  silenceDurationMs: "silenceDurationMs",
  vadThreshold: "vadThreshold",
};

export function migrateLegacyConfig(input: unknown): Migration {
  if (!isObject(input)) return { value: input as Raw, changes: [] };
  const value: Raw = structuredClone(input);
  const changes: string[] = [];

  if (value.provider === "log") {
    value.provider = "mock";
    changes.push('provider "log" -> "mock"');
  }

  const twilio = value.twilio;
  if (isObject(twilio) && "from" in twilio) {
    if (value.fromNumber === undefined) {
      value.fromNumber = twilio.from;
      changes.push("twilio.from -> fromNumber");
    } else {
      changes.push("twilio.from removed (fromNumber already set)");
    }
    delete twilio.from;
  }

  const streaming = value.streaming;
  if (isObject(streaming)) {
    if ("sttProvider" in streaming) {
      const old = streaming.sttProvider;
      delete streaming.sttProvider;
      if (streaming.provider === undefined) {
        streaming.provider = old === "openai-realtime" ? "openai" : old;
        changes.push(`streaming.sttProvider -> streaming.provider`);
      } else {
        changes.push("streaming.sttProvider removed (streaming.provider already set)");
      }
    }
    for (const [oldKey, newKey] of Object.entries(STREAMING_TO_OPENAI)) {
      if (!(oldKey in streaming)) continue;
      const providers = isObject(streaming.providers) ? streaming.providers : (streaming.providers = {});
      const openai = isObject(providers.openai) ? providers.openai : (providers.openai = {});
      if (openai[newKey] === undefined) openai[newKey] = streaming[oldKey];
      delete streaming[oldKey];
      changes.push(`streaming.${oldKey} -> streaming.providers.openai.${newKey}`);
    }
  }

  const agentContext = isObject(value.realtime) ? value.realtime.agentContext : undefined;
  if (isObject(agentContext) && "includeSystemPrompt" in agentContext) {
    delete agentContext.includeSystemPrompt;
    changes.push("realtime.agentContext.includeSystemPrompt removed (realtime context uses the agent's prompt)");
  }

  return { value, changes };
}
