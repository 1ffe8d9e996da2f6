/**
 * Inside the gateway, a caller's turn that no agent's continue_call waits for
 * is answered by the gateway's agent: one embedded agent run on the call's
 * session, under the gateway's work-admission lock (a chat and a call on one
 * session never run at once), with the agent's own tools and the call bound
 * to it (it can say more, press keys and hang up). Each sentence the agent
 * writes is handed to the call while the run goes on (its partial replies).
 *
 * Which agent: the call's own (a trusted caller named it), the dialled
 * number's, the plugin's `agentId`, else the gateway's default agent.
 * Which session: the call's `sessionKey` when a caller gave one (kept under
 * that agent), else `sessionScope`: per-phone `agent:<id>:voice:<digits>`,
 * per-call `agent:<id>:voice:call:<callId>`, main `agent:<id>:main`.
 */
import { randomUUID } from "node:crypto";
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CallerTurn, TurnResponder } from "../calls/responder.js";
import type { CallRecord, TranscriptEntry } from "../calls/types.js";
import { loadAgentScope, loadRouting, type AgentRuntime, type EmbeddedAgentParams, type AgentScopeSdk, type GatewayConfig, type GatewayRuntime, type RoutingSdk } from "./sdk.js";
import { SentenceFeed } from "./sentence-feed.js";

/** What the bound voice_call tool reads from the run's toolBindings. */
export const TOOL_BINDING_KEY = "voice-call";
export interface CallBinding {
  callId: string;
}

const PHONE_CONTRACT =
  "You are talking on a phone call: everything you write is spoken to the caller as it is, sentence by sentence. " +
  "Speak in short, natural sentences (one to three), no lists, markdown, emoji, links or JSON. " +
  "If you need a moment (a tool that takes time), say so first in one short sentence.";

const DEFAULT_PERSONA = "You are a helpful assistant answering the phone.";

/** The tools a consult under toolPolicy safe-read-only may use (the gateway's voice-call docs list them). */
export const SAFE_READ_ONLY_TOOLS = ["read", "web_search", "web_fetch", "x_search", "memory_search", "memory_get"] as const;

/** Lines of the call repeated in the prompt: enough for the context of a turn, bounded on long calls. */
const CONTEXT_LINES = 16;

export interface AgentResponderOptions {
  config: VoiceCallConfig;
  /** The gateway's runtime, read when a turn comes (never at plugin registration). */
  runtime: () => GatewayRuntime | undefined;
  /** Answers when this gateway has no agent runtime (older gateways): its model runtime. */
  fallback?: TurnResponder;
  logger?: Logger;
  /** The SDK's routing and agent-scope helpers; loaded from the gateway unless given (tests). */
  sdk?: { routing?: RoutingSdk; agentScope?: AgentScopeSdk };
  /**
   * Say sentences while the run goes on (default). Off, the answer is said
   * once the run ends: only for measuring what speaking early gains
   * (`npm run bench` sets VOICECALL_AGENT_SPEAK_EARLY=0 for that).
   */
  speakEarly?: boolean;
}

export class AgentResponder implements TurnResponder {
  private routing?: Promise<RoutingSdk | undefined>;
  /** The answer being written on each call. */
  private readonly feeds = new Map<string, SentenceFeed>();
  private agentScope?: Promise<AgentScopeSdk | undefined>;

  constructor(private readonly options: AgentResponderOptions) {}

  /** The gateway's agent answers every call (its default agent when nothing names one). */
  answers(): boolean {
    return true;
  }

  async respond(turn: CallerTurn): Promise<void> {
    const runtime = this.options.runtime();
    const agent = runtime?.agent;
    if (!agent || !runtime.config) {
      if (this.options.fallback) return this.options.fallback.respond(turn);
      throw new VoiceCallError("UNAVAILABLE", "this gateway offers no agent runtime (api.runtime.agent); set responseBaseUrl to answer with an endpoint of your own");
    }
    const cfg = runtime.config.current();
    const agentId = await this.agentFor(turn.call, cfg);
    const sessionKey = await this.sessionKeyFor(turn.call, agentId, cfg);
    const storePath = agent.session.resolveStorePath(cfg.session?.store, { agentId });
    const { provider, model } = splitModel(turn.model);
    const started = Date.now();
    // Sentences are said as the agent writes them (its partial replies), the rest once the run ends.
    const feed = new SentenceFeed((text) => turn.say(text));
    const { callId } = turn.call;
    this.feeds.set(callId, feed);
    try {
      await this.run(turn, feed, { agent, cfg, agentId, sessionKey, storePath, provider, model, started });
    } finally {
      feed.close();
      if (this.feeds.get(callId) === feed) this.feeds.delete(callId);
    }
  }

  flush(callId: string): void {
    this.feeds.get(callId)?.flush();
  }

  private async run(
    turn: CallerTurn,
    feed: SentenceFeed,
    ctx: { agent: AgentRuntime; cfg: GatewayConfig; agentId: string; sessionKey: string; storePath: string; provider?: string; model?: string; started: number },
  ): Promise<void> {
    const { agent, cfg, agentId, sessionKey, storePath, provider, model, started } = ctx;
    const result = await agent.session
      .runWithWorkAdmission({ storePath, sessionKey }, async (admitted) => {
        const signal = AbortSignal.any([turn.signal, admitted]);
        if (signal.aborted) return undefined;
        const sessionId = agent.session.getSessionEntry({ agentId, sessionKey })?.sessionId ?? randomUUID();
        return agent.runEmbeddedAgent({
          sessionId,
          sessionKey,
          agentId,
          runId: `voice:${turn.call.callId}:${randomUUID()}`,
          workspaceDir: agent.resolveAgentWorkspaceDir(cfg, agentId),
          agentDir: agent.resolveAgentDir(cfg, agentId),
          config: cfg,
          prompt: turn.words,
          extraSystemPrompt: systemPrompt(turn),
          ...(provider ? { provider } : {}),
          ...(model ? { model } : {}),
          timeoutMs: turn.timeoutMs,
          lane: "voice",
          messageProvider: "voice",
          messageChannel: "voice",
          // A phone caller is never the gateway's owner: the agent's tool policy for others applies.
          senderIsOwner: false,
          senderE164: remoteParty(turn.call) ?? null,
          trigger: "user",
          terminalReplyExpectation: "required",
          toolBindings: { [TOOL_BINDING_KEY]: { callId: turn.call.callId } satisfies CallBinding },
          // A realtime model's question under realtime.toolPolicy safe-read-only: only tools that read.
          ...(turn.toolPolicy === "safe-read-only" ? { toolsAllow: [...SAFE_READ_ONLY_TOOLS] } : {}),
          abortSignal: signal,
          verboseLevel: "off",
          ...(this.options.speakEarly === false ? {} : earlySpeech(feed, signal)),
        });
      })
      .catch((err: unknown) => {
        if (turn.signal.aborted) return undefined;
        throw new VoiceCallError("PROVIDER_ERROR", `agent ${agentId} (session ${sessionKey}): ${err instanceof Error ? err.message : String(err)}`);
      });
    if (!result || turn.signal.aborted) return;
    const answer = (result.payloads ?? []).filter((p) => p.text && !p.isReasoning && !p.isCommentary && !p.isError).map((p) => p.text!);
    // Pieces said while the run went on, and after it.
    const whileWriting = feed.count;
    feed.whole(answer.join("\n"));
    this.options.logger?.info({ callId: turn.call.callId, agentId, sessionKey, ms: Date.now() - started, whileWriting, atEnd: feed.count - whileWriting }, "agent turn done");
  }

  /** The call's agent: trusted call context, the dialled number's, the plugin's, the gateway's default. */
  async agentFor(call: Readonly<CallRecord>, cfg: GatewayConfig): Promise<string> {
    const { config } = this.options;
    const number = call.direction === "inbound" ? config.numbers[call.to]?.agentId : undefined;
    const named = call.agentId ?? number ?? config.agentId;
    const routing = await this.loadRouting();
    if (named) return routing ? routing.normalizeAgentId(named) : normalizeAgentId(named);
    const scope = await this.loadAgentScope();
    try {
      if (scope) return scope.resolveDefaultAgentId(cfg);
    } catch {
      // A config the helper cannot read: the gateway's own default name.
    }
    return "main";
  }

  /** The session a call's turns run on (see the module comment). */
  async sessionKeyFor(call: Readonly<CallRecord>, agentId: string, cfg: GatewayConfig): Promise<string> {
    return callSessionKey(call, this.options.config.sessionScope, agentId, { globalScope: cfg.session?.scope === "global", routing: await this.loadRouting() });
  }

  private loadRouting(): Promise<RoutingSdk | undefined> {
    if (this.options.sdk?.routing) return Promise.resolve(this.options.sdk.routing);
    return (this.routing ??= loadRouting().catch(() => undefined));
  }

  private loadAgentScope(): Promise<AgentScopeSdk | undefined> {
    if (this.options.sdk?.agentScope) return Promise.resolve(this.options.sdk.agentScope);
    return (this.agentScope ??= loadAgentScope().catch(() => undefined));
  }
}

/** The run's callbacks that hand each sentence to the call as the agent writes it. */
function earlySpeech(feed: SentenceFeed, signal: AbortSignal): Pick<EmbeddedAgentParams, "onPartialReply" | "onAssistantMessageStart" | "onAgentEvent"> {
  return {
    onPartialReply: (partial) => {
      if (!signal.aborted) feed.partial(partial);
    },
    onAssistantMessageStart: () => feed.messageStart(),
    // What the model wrote before a tool call (often "one moment", or a goodbye before hanging up)
    // is said before the tool runs: the gateway reports it as the message's preamble, and the
    // tool's start means nothing more is coming of that message.
    onAgentEvent: (event) => {
      if (signal.aborted) return;
      const data = event.data;
      if (event.stream === "item" && data?.kind === "preamble" && data.phase === "end" && typeof data.progressText === "string") feed.whole(data.progressText);
      if (event.stream === "tool" && data?.phase === "start") feed.flush();
    },
  };
}

/** The party on the other end: who called in, or who was called. */
export function remoteParty(call: Readonly<CallRecord>): string | undefined {
  return call.direction === "inbound" ? call.from : call.to;
}

/**
 * The session key of a call's turns. An explicit key stays with its agent
 * when it is that agent's (`agent:<agentId>:...`); any other is kept as an
 * opaque key under the agent; `global` and `unknown` are the gateway's own
 * sentinels and pass as they are.
 */
export function callSessionKey(
  call: Readonly<CallRecord>,
  scope: VoiceCallConfig["sessionScope"],
  agentId: string,
  options: { globalScope?: boolean; routing?: RoutingSdk } = {},
): string {
  const explicit = call.sessionKey?.trim();
  if (explicit) {
    if (explicit === "global" || explicit === "unknown") return explicit;
    const parsed = options.routing ? options.routing.parseAgentSessionKey(explicit) : parseAgentKey(explicit);
    if (parsed && parsed.agentId === agentId) return explicit;
    return `agent:${agentId}:${explicit}`;
  }
  if (scope === "main") return options.globalScope ? "global" : `agent:${agentId}:main`;
  if (scope === "per-call") return `agent:${agentId}:voice:call:${call.callId.toLowerCase()}`;
  const remote = remoteParty(call) ?? "unknown";
  const digits = remote.replace(/\D/g, "");
  // A SIP name without digits (a desk phone called "reception") keeps its name.
  const who = digits || remote.toLowerCase().replace(/[^a-z0-9._-]+/g, "-");
  return `agent:${agentId}:voice:${who}`;
}

/** "provider/model" (the reference's form) to the run's provider and model; a bare name is a model. */
export function splitModel(ref: string | undefined): { provider?: string; model?: string } {
  if (!ref) return {};
  const slash = ref.indexOf("/");
  return slash > 0 ? { provider: ref.slice(0, slash), model: ref.slice(slash + 1) } : { model: ref };
}

/** The persona, our spoken contract, and what the agent should know about this call. */
function systemPrompt(turn: CallerTurn): string {
  const { call } = turn;
  const parties = call.direction === "inbound" ? `from ${call.from ?? "an unknown number"} to ${call.to}` : `from ${call.from ?? "us"} to ${call.to}`;
  const earlier = turn.transcript.slice(0, -1).slice(-CONTEXT_LINES).map(line);
  return [
    turn.systemPrompt ?? DEFAULT_PERSONA,
    PHONE_CONTRACT,
    `This is ${call.direction} phone call ${call.callId} (${parties}). ` +
      "The voice_call tool acts on it without a callId: end_call hangs up once what you said has been heard (say goodbye first), " +
      "send_dtmf presses keys, speak_to_user says something at once, get_status shows the call.",
    ...(earlier.length > 0 ? [`The call so far:\n${earlier.join("\n")}`] : []),
  ].join("\n\n");
}

function line(t: TranscriptEntry): string {
  const who = t.speaker === "bot" ? "You" : "Caller";
  if (t.kind === "dtmf") return `${who} pressed ${t.text}`;
  if (t.kind === "interrupted") return `${who} (cut off by the caller after): ${t.text}`;
  if (t.kind === "unrecognised") return `${who}: (not understood)`;
  return `${who}: ${t.text}`;
}

/** The gateway's agent-id normalisation, for when its SDK cannot be loaded. */
function normalizeAgentId(id: string): string {
  return id.trim().toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "main";
}

function parseAgentKey(key: string): { agentId: string; rest: string } | null {
  const match = /^agent:([^:]+):(.+)$/i.exec(key);
  return match ? { agentId: match[1]!.toLowerCase(), rest: match[2]! } : null;
}
