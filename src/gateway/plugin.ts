/**
 * The OpenClaw plugin entry: registers the `voice_call` tool, the
 * voicecall.* gateway methods, the `voicecall` CLI and a background service
 * that runs the same HTTP server as the standalone service. It has the shape
 * `definePluginEntry` returns, so it loads without importing the gateway.
 */
import { Writable } from "node:stream";
import type { Command } from "commander";
import { z } from "zod";
import { resolveConfig } from "../configure.js";
import { VoiceCallConfigSchema, type VoiceCallConfig } from "../config/schema.js";
import { resolveSecretRefs } from "../config/secrets.js";
import { asVoiceCallError, zodIssues } from "../errors.js";
import { createLogger, type Logger } from "../log.js";
import { Responder, type ChatFn, type TurnResponder } from "../calls/responder.js";
import { AgentResponder, TOOL_BINDING_KEY, type CallBinding } from "./agent-responder.js";
import type { GatewayRuntime } from "./sdk.js";
import { gatewaySpeech } from "./voices.js";
import { gatewayRealtimeVoice } from "./realtime-bridge.js";
import { CascadeVoices } from "../voice/cascade.js";
import { RealtimeVoices } from "../voice/realtime.js";
import { startService, type RunningService } from "../server/service.js";
import { registerVoicecallCommands } from "./cli.js";
import { ensureService, stopService } from "./holder.js";
import { METHOD_NAMES, READ_METHODS, invoke } from "../server/methods.js";
import { TOOL_DESCRIPTION, TOOL_NAME, boundToolDescription, runTool, toolParametersJsonSchema, toolResult, toolTimeoutMs } from "./tool.js";

/** The parts of the gateway's plugin API this plugin uses. */
export interface PluginLogger {
  debug?: (message: string) => void;
  info: (message: string) => void;
  warn: (message: string) => void;
  error: (message: string) => void;
}

export interface PluginTool {
  name: string;
  label?: string;
  description: string;
  parameters: Record<string, unknown>;
  /** Offered to the model as itself, not behind the gateway's tool-search bridge. */
  catalogMode?: "direct-only";
  getExecutionTimeoutMs?: (args: unknown) => number | undefined;
  execute: (toolCallId: string, params: unknown) => Promise<unknown>;
}

/** What the gateway tells a tool factory about the run (trusted; never the model's arguments). */
export interface ToolFactoryContext {
  agentId?: string;
  sessionKey?: string;
  senderIsOwner?: boolean;
  toolBindings?: Readonly<Record<string, unknown>>;
}

export interface GatewayRequest {
  params: Record<string, unknown>;
  respond: (ok: boolean, payload?: unknown, error?: { code: string; message: string; details?: unknown }) => void;
}

export interface PluginApi {
  pluginConfig?: Record<string, unknown>;
  /** "full" is the live gateway; "discovery", "cli-metadata", "setup-only", ... only collect what a plugin offers. */
  registrationMode?: string;
  /** The gateway's runtime helpers; read only when a call needs them, never during register(). */
  runtime?: GatewayRuntime;
  logger: PluginLogger;
  /** A tool, or a factory the gateway calls with each run's context (the tool a run sees). */
  registerTool: (tool: PluginTool | ((ctx: ToolFactoryContext) => PluginTool | null | undefined), opts?: { name?: string }) => void;
  registerGatewayMethod: (
    method: string,
    handler: (opts: GatewayRequest) => Promise<void> | void,
    opts?: { scope?: "operator.read" | "operator.write" },
  ) => void;
  registerCli: (registrar: (ctx: { program: Command }) => void | Promise<void>, opts?: { commands?: string[] }) => void;
  registerService: (service: { id: string; start: () => Promise<void>; stop?: () => Promise<void> }) => void;
}

export const configSchema = {
  safeParse(value: unknown) {
    // The gateway may check its source config, where secrets are still references it resolves later.
    const checked = typeof value === "object" && value !== null && !Array.isArray(value) ? resolveSecretRefs(value as Record<string, unknown>, {}, "check").value : value;
    const result = VoiceCallConfigSchema.safeParse(checked ?? {});
    return result.success
      ? { success: true as const, data: result.data }
      : { success: false as const, error: { issues: zodIssues(result.error).map((i) => ({ path: i.path.split("."), message: i.message })) } };
  },
  jsonSchema: z.toJSONSchema(VoiceCallConfigSchema, { target: "draft-07", io: "input", unrepresentable: "any" }),
  uiHints: {
    provider: { label: "Provider", help: "twilio, telnyx, plivo, asterisk (self-hosted PBX) or mock (no network)" },
    fromNumber: { label: "From Number", placeholder: "+15550001234" },
    toNumber: { label: "Default To Number", placeholder: "+15550001234" },
    "twilio.authToken": { label: "Twilio Auth Token", sensitive: true },
    "telnyx.apiKey": { label: "Telnyx API Key", sensitive: true },
    "telnyx.publicKey": { label: "Telnyx Public Key", sensitive: true },
    "plivo.authToken": { label: "Plivo Auth Token", sensitive: true },
    "asterisk.ari.password": { label: "Asterisk ARI Password", sensitive: true },
    "tunnel.ngrokAuthToken": { label: "ngrok Auth Token", sensitive: true, advanced: true },
    "control.token": { label: "Control API Token", sensitive: true, advanced: true },
  },
};

function bridgeLogger(api: PluginApi, level: string): Logger {
  const sink = new Writable({
    write(chunk, _enc, done) {
      try {
        const line = JSON.parse(String(chunk)) as { level: number; msg?: string };
        const { level: n, msg, time: _t, name: _n, ...rest } = line as Record<string, unknown> & { level: number; msg?: string };
        const text = `[voice-call] ${msg ?? ""}${Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : ""}`;
        if (n >= 50) api.logger.error(text);
        else if (n >= 40) api.logger.warn(text);
        else if (n >= 30) api.logger.info(text);
        else api.logger.debug?.(text);
      } catch {
        api.logger.info(String(chunk).trim());
      }
      done();
    },
  });
  return createLogger(level, sink);
}

/** The call a run's toolBindings bind the tool to (set by AgentResponder), if any. */
function boundCall(bindings: Readonly<Record<string, unknown>> | undefined): CallBinding | undefined {
  const bound = bindings?.[TOOL_BINDING_KEY] as { callId?: unknown } | undefined;
  return typeof bound?.callId === "string" && bound.callId ? { callId: bound.callId } : undefined;
}

/** A chat completion by the gateway's model runtime, looked up when a reply is needed. */
function gatewayChat(api: PluginApi): ChatFn {
  return async ({ model, system, messages, signal }) => {
    const llm = api.runtime?.llm;
    if (!llm) throw new Error("this gateway offers no model runtime (api.runtime.llm); set responseBaseUrl to use an endpoint of your own");
    try {
      const result = await llm.complete({ messages, systemPrompt: system, ...(model ? { model } : {}), maxTokens: 300, purpose: "voice-call.auto-response", signal });
      return result.text;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // The gateway lets a plugin pick the model only when trusted to: say how, naming the keys.
      if (model && /override the target model/i.test(message)) {
        throw new Error(
          `the gateway does not let this plugin choose ${model}: set plugins.entries.voice-call.llm.allowModelOverride: true ` +
            `(and llm.allowedModels), or leave responseModel unset to answer with the agent's own model`,
        );
      }
      throw err;
    }
  };
}

const entry = {
  id: "voice-call",
  name: "Voice Call",
  description: "Phone calls for agents over Twilio, Telnyx, Plivo or a self-hosted Asterisk PBX",
  configSchema,
  register(api: PluginApi): void {
    let config: VoiceCallConfig | undefined;
    let configError: Error | undefined;
    try {
      const resolved = resolveConfig(api.pluginConfig ?? {}, process.env, "plugins.entries.voice-call.config", { gateway: true });
      config = resolved.config;
      for (const w of resolved.warnings) api.logger.warn(`[voice-call] ${w}`);
    } catch (err) {
      configError = asVoiceCallError(err);
      api.logger.error(`[voice-call] ${configError.message}`);
    }

    // Callers' turns go to the gateway's agent (its session, tools and model), unless responseBaseUrl
    // names another endpoint (the gateway fills in the schema's default, so only a value other than
    // the default says the user chose one).
    const defaultBaseUrl = VoiceCallConfigSchema.shape.responseBaseUrl.parse(undefined);
    const ownEndpoint = config !== undefined && config.responseBaseUrl !== defaultBaseUrl;
    const responderFor = (cfg: VoiceCallConfig, logger: Logger): TurnResponder | undefined => {
      if (ownEndpoint) return undefined;
      // A gateway without agent runs (older than the SDK this was built on) answers through its model runtime.
      const fallback = new Responder({ baseUrl: cfg.responseBaseUrl, timeoutMs: cfg.responseTimeoutMs, chat: gatewayChat(api) });
      return new AgentResponder({ config: cfg, runtime: () => api.runtime, fallback, logger, speakEarly: process.env.VOICECALL_AGENT_SPEAK_EARLY !== "0" });
    };

    // Every registration (and every module copy) shares the process's one service.
    const ensure = async (): Promise<RunningService> => {
      if (!config) throw configError;
      const cfg = config;
      return ensureService(async () => {
        const logger = bridgeLogger(api, cfg.log.level);
        // The gateway's voices and recognisers where it has them, ours otherwise (chosen now, at start).
        const speech = await gatewaySpeech(cfg, api.runtime, logger);
        const deps = { responder: responderFor(cfg, logger), synthesizer: speech.synthesizer, transcriber: speech.transcriber, speech: speech.choice };
        if (!cfg.realtime.enabled) return startService(cfg, logger, deps);
        // realtime.enabled: a realtime voice provider of the gateway on every call; without one, the cascade (as the gateway's docs say).
        const realtime = await gatewayRealtimeVoice(cfg, api.runtime, logger);
        if (realtime.voice) return startService(cfg, logger, { ...deps, voice: new RealtimeVoices(cfg, realtime.voice), speech: { tts: realtime.choice, stt: realtime.choice } });
        logger.warn({ reason: realtime.choice.why }, "realtime.enabled, but no realtime voice provider of the gateway can be used: calls speak and listen with the voices above");
        return startService(cfg, logger, { ...deps, voice: new CascadeVoices(cfg, speech.synthesizer, speech.transcriber) });
      });
    };

    for (const method of METHOD_NAMES) {
      api.registerGatewayMethod(
        method,
        async ({ params, respond }) => {
          try {
            const service = await ensure();
            respond(true, await invoke(service.runtime, method, params));
          } catch (err) {
            const e = asVoiceCallError(err);
            respond(false, { error: e.message }, { code: e.code, message: e.message, details: e.issues.length ? { issues: e.issues } : undefined });
          }
        },
        { scope: READ_METHODS.has(method) ? "operator.read" : "operator.write" },
      );
    }

    // A factory: a run answering a caller (its toolBindings name the call) gets the tool for that call only.
    api.registerTool(
      (ctx) => {
        const call = boundCall(ctx.toolBindings);
        return {
          name: TOOL_NAME,
          label: "Voice Call",
          description: call ? boundToolDescription(call.callId) : TOOL_DESCRIPTION,
          parameters: toolParametersJsonSchema(call !== undefined),
          catalogMode: "direct-only",
          getExecutionTimeoutMs: (args) => toolTimeoutMs(args, config?.transcriptTimeoutMs ?? 180_000),
          async execute(_toolCallId, params) {
            try {
              const service = await ensure();
              return await runTool(service.runtime, params, { agentId: ctx.agentId, sessionKey: ctx.sessionKey, call });
            } catch (err) {
              return toolResult({ error: asVoiceCallError(err).toJSON() });
            }
          },
        };
      },
      { name: TOOL_NAME },
    );

    api.registerCli(
      ({ program }) => {
        registerVoicecallCommands(program.command("voicecall").description("voice calls (voice-call plugin)"), {
          env: process.env,
          out: (line) => process.stdout.write(`${line}\n`),
          err: (line) => process.stderr.write(`${line}\n`),
          untilSignal: () => new Promise((resolve) => process.once("SIGINT", () => resolve())),
          // Without --config, commands reach this plugin's own service (its port, store and token).
          defaultConfig: config,
        });
      },
      { commands: ["voicecall"] },
    );

    api.registerService({
      id: "voicecall",
      async start() {
        // Only the live gateway runs the service; discovery and CLI registrations start nothing.
        if (api.registrationMode !== undefined && api.registrationMode !== "full") return;
        if (!config?.enabled) return;
        try {
          await ensure();
        } catch (err) {
          api.logger.error(`[voice-call] failed to start: ${asVoiceCallError(err).message}`);
        }
      },
      stop: stopService,
    });
  },
};

export default entry;
