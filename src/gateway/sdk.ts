/**
 * Typed adapters over the parts of the OpenClaw gateway this plugin uses at
 * call time: `api.runtime` (agent runs, sessions, TTS) and the plugin SDK's
 * JavaScript-only subpaths (routing, agent scope, realtime transcription,
 * realtime voice, provider selection). Only the fields we read or pass are typed; the
 * gateway's own types (dist/plugin-entry-*.d.ts of openclaw 2026.9.6) are the
 * reference. The subpaths are imported when first needed, never at load, so
 * the plugin loads (and its CLI runs) without the gateway installed.
 */

/** The gateway's config snapshot (`api.runtime.config.current()`); read for a few keys only. */
export type GatewayConfig = Record<string, unknown> & {
  session?: { store?: string; scope?: string };
  /** The gateway's TTS (messages.tts in configs before 2026.9, which the gateway moves here). */
  tts?: Record<string, unknown>;
  messages?: { tts?: Record<string, unknown> };
};

/** One piece of an agent's answer (a final payload). */
export interface ReplyPiece {
  text?: string;
  isReasoning?: boolean;
  isCommentary?: boolean;
  isError?: boolean;
}

export interface EmbeddedAgentParams {
  sessionId: string;
  sessionKey: string;
  agentId: string;
  runId: string;
  workspaceDir: string;
  agentDir?: string;
  config: GatewayConfig;
  prompt: string;
  extraSystemPrompt?: string;
  provider?: string;
  model?: string;
  timeoutMs: number;
  lane?: string;
  messageProvider?: string;
  messageChannel?: string;
  senderIsOwner?: boolean;
  senderE164?: string | null;
  senderId?: string | null;
  trigger?: "user";
  toolBindings?: Readonly<Record<string, unknown>>;
  /** Only these of the agent's tools (a realtime consult's toolPolicy); unset: its own tool policy. */
  toolsAllow?: string[];
  terminalReplyExpectation?: "required" | "optional";
  abortSignal?: AbortSignal;
  /** The answer as it is written: the message so far (`text`), what was added (`delta`). */
  onPartialReply?: (payload: { text?: string; delta?: string; replace?: true }) => void;
  onAssistantMessageStart?: () => void;
  /**
   * The run's events. Read here: `stream` "tool" with `data.phase` "start" (a tool call begins), and
   * "item" with `data.kind` "preamble", `data.phase` "end" (the text written before a tool call, `data.progressText`).
   */
  onAgentEvent?: (event: { stream?: string; data?: { phase?: string } & Record<string, unknown> }) => void;
  verboseLevel?: "off";
}

export interface EmbeddedAgentResult {
  payloads?: ReplyPiece[];
  meta?: { aborted?: boolean; error?: unknown } & Record<string, unknown>;
}

export interface AgentRuntime {
  runEmbeddedAgent(params: EmbeddedAgentParams): Promise<EmbeddedAgentResult>;
  resolveAgentDir(cfg: GatewayConfig, agentId: string): string;
  resolveAgentWorkspaceDir(cfg: GatewayConfig, agentId: string): string;
  ensureAgentWorkspace?(cfg: GatewayConfig): Promise<unknown>;
  session: {
    resolveStorePath(store: string | undefined, opts: { agentId: string }): string;
    getSessionEntry(params: { agentId: string; sessionKey: string }): { sessionId?: string } | undefined;
    runWithWorkAdmission<T>(target: { storePath: string; sessionKey: string }, work: (signal: AbortSignal) => Promise<T>): Promise<T>;
  };
}

export interface TtsOutcome {
  success?: boolean;
  error?: string;
  provider?: string;
  outputFormat?: string;
}

export interface TtsRuntime {
  prepareTtsRequest(params: { cfg: GatewayConfig; override?: Record<string, unknown>; text: string }): Promise<{
    cfg: GatewayConfig;
    directives: { cleanedText: string; ttsText?: string; overrides: Record<string, unknown> };
  }>;
  textToSpeechTelephony(params: { text: string; cfg: GatewayConfig; overrides?: Record<string, unknown>; timeoutMs?: number }): Promise<
    TtsOutcome & { audioBuffer?: Buffer; sampleRate?: number }
  >;
}

/** `api.runtime` as far as this plugin reads it. */
export interface GatewayRuntime {
  config?: { current(): GatewayConfig };
  agent?: AgentRuntime;
  tts?: TtsRuntime;
  llm?: {
    complete(params: {
      messages: Array<{ role: "system" | "user" | "assistant"; content: string }>;
      systemPrompt?: string;
      model?: string;
      maxTokens?: number;
      purpose?: string;
      signal?: AbortSignal;
    }): Promise<{ text: string }>;
  };
}

// ------------------------------------------------------------ SDK subpaths

export interface RoutingSdk {
  normalizeAgentId(id: string | undefined): string;
  parseAgentSessionKey(key: string): { agentId: string; rest: string } | null;
}

export interface AgentScopeSdk {
  resolveDefaultAgentId(cfg: GatewayConfig): string;
}

/** A realtime transcription session as the gateway's providers open it (G.711 mu-law 8 kHz in). */
export interface RealtimeTranscriptionSession {
  connect(): Promise<void>;
  sendAudio(audio: Buffer): void;
  close(): void;
  isConnected?(): boolean;
}

export interface RealtimeTranscriptionProvider {
  id: string;
  label?: string;
  autoSelectOrder?: number;
  isConfigured(params: { cfg: GatewayConfig; providerConfig: Record<string, unknown> }): boolean;
  resolveConfig?(params: { cfg: GatewayConfig; rawConfig: Record<string, unknown> }): Record<string, unknown>;
  createSession(params: {
    cfg?: GatewayConfig;
    providerConfig: Record<string, unknown>;
    onPartial?: (partial: string) => void;
    onTranscript?: (transcript: string) => void;
    onSpeechStart?: () => void;
    onError?: (error: Error) => void;
  }): RealtimeTranscriptionSession;
}

export interface RealtimeTranscriptionSdk {
  getRealtimeTranscriptionProvider(id: string, cfg?: GatewayConfig): RealtimeTranscriptionProvider | undefined;
  listRealtimeTranscriptionProviders(cfg?: GatewayConfig): RealtimeTranscriptionProvider[];
}

/** An audio format of a realtime voice bridge (both ways). */
export type BridgeAudioFormat = { encoding: "g711_ulaw"; sampleRateHz: 8000; channels: 1 } | { encoding: "pcm16"; sampleRateHz: 24000; channels: 1 };

/** What a realtime voice provider's createBridge is given: the session's setup and our callbacks. */
export interface RealtimeBridgeRequest {
  cfg?: GatewayConfig;
  agentId?: string;
  providerConfig: Record<string, unknown>;
  audioFormat?: BridgeAudioFormat;
  instructions?: string;
  tools?: Array<{ type: "function"; name: string; description: string; parameters: { type: "object"; properties: Record<string, unknown>; required?: string[] } }>;
  onAudio(audio: Buffer, metadata?: { itemId: string }): void;
  /** The items still held for playing, in order, with how much of each has played (an empty list: nothing is). */
  getPlaybackState?(): ReadonlyArray<{ itemId: string; audioEndMs: number }>;
  onClearAudio(reason?: "barge-in"): void;
  onMark?(markName: string, acknowledge?: () => void): void;
  onTranscript?(role: "user" | "assistant", text: string, isFinal: boolean): void;
  onResponseDone?(outcome: { status: "completed" | "cancelled" | "failed" | "incomplete"; message?: string }): void;
  onToolCall?(event: { itemId: string; callId: string; name: string; args: unknown }): void;
  onReady?(): void;
  onError?(error: Error): void;
  onClose?(reason: "completed" | "error"): void;
}

/** A realtime voice bridge: one provider connection for one call. */
export interface RealtimeBridge {
  connect(): Promise<void>;
  sendAudio(audio: Buffer): void;
  setMediaTimestamp(ts: number): void;
  sendUserMessage?(text: string): void;
  triggerGreeting?(instructions?: string): void;
  handleBargeIn?(options?: { audioPlaybackActive?: boolean; force?: boolean }): void;
  submitToolResult(callId: string, result: unknown, options?: { suppressResponse?: boolean }): void | Promise<void>;
  acknowledgeMark(markName?: string): void;
  close(): void | Promise<void>;
  isConnected(): boolean;
}

export interface RealtimeVoiceProvider {
  id: string;
  label?: string;
  defaultModel?: string;
  capabilities?: { supportsToolCalls?: boolean; handlesInputAudioBargeIn?: boolean; inputAudioFormats?: BridgeAudioFormat[] };
  createBridge(request: RealtimeBridgeRequest): RealtimeBridge;
}

export interface RealtimeVoiceSdk {
  /** The configured provider, or the first configured one; throws naming what is missing. */
  resolveConfiguredRealtimeVoiceProvider(params: {
    configuredProviderId?: string;
    providerConfigs?: Record<string, unknown>;
    cfg: GatewayConfig;
    agentId?: string;
    surface?: "bridge";
  }): { provider: RealtimeVoiceProvider; providerConfig: Record<string, unknown>; capabilities?: RealtimeVoiceProvider["capabilities"] };
}

/** What a capability provider selection returns (plugin-sdk/provider-selection-runtime). */
export type ProviderSelection<P> =
  | { ok: true; provider: P; providerConfig: Record<string, unknown>; configuredProviderId?: string }
  | { ok: false; code: "missing-configured-provider" | "no-registered-provider" | "provider-unavailable" | "provider-not-configured"; provider?: P; configuredProviderId?: string };

export interface ProviderSelectionSdk {
  resolveConfiguredCapabilityProvider<P extends { id: string; autoSelectOrder?: number }>(params: {
    configuredProviderId?: string;
    providerConfigs?: Record<string, unknown>;
    cfg: GatewayConfig;
    cfgForResolve: GatewayConfig;
    getConfiguredProvider(id: string): P | undefined;
    listProviders(): Iterable<P>;
    resolveProviderConfig(params: { provider: P; cfg: GatewayConfig; rawConfig: Record<string, unknown> }): Record<string, unknown>;
    isProviderConfigured(params: { provider: P; cfg: GatewayConfig; providerConfig: Record<string, unknown> }): boolean;
  }): ProviderSelection<P>;
}

// Literal specifiers, so the gateway's loader (which maps openclaw/plugin-sdk/* to its own copy) sees them.
export const loadRouting = (): Promise<RoutingSdk> => import("openclaw/plugin-sdk/routing") as Promise<RoutingSdk>;
export const loadAgentScope = (): Promise<AgentScopeSdk> => import("openclaw/plugin-sdk/agent-scope-runtime") as Promise<AgentScopeSdk>;
export const loadProviderSelection = (): Promise<ProviderSelectionSdk> =>
  import("openclaw/plugin-sdk/provider-selection-runtime") as Promise<ProviderSelectionSdk>;
export const loadRealtimeTranscription = (): Promise<RealtimeTranscriptionSdk> =>
  import("openclaw/plugin-sdk/realtime-transcription") as Promise<RealtimeTranscriptionSdk>;
export const loadRealtimeVoice = (): Promise<RealtimeVoiceSdk> => import("openclaw/plugin-sdk/realtime-voice") as Promise<RealtimeVoiceSdk>;
