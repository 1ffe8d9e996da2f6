/** Public API of openclaw-voice-call. */
export { readConfigFile, defaultStoreDir, providersInUse } from "./config/load.js";
export { resolveConfig } from "./configure.js";
export { migrateLegacyConfig } from "./config/migrate.js";
export { VoiceCallConfigSchema, type VoiceCallConfig, type VoiceCallConfigInput, type ProviderId, type CallMode } from "./config/schema.js";
export { CallManager, type ManagerEvent, type InitiateRequest } from "./calls/manager.js";
export { CallStore } from "./calls/store.js";
export { canTransition, isTerminal } from "./calls/state.js";
export { routeCall } from "./calls/routing.js";
export type { CallRecord, CallView, CallState, TranscriptEntry } from "./calls/types.js";
export type { CallProvider, ProviderEvent, ProviderCapabilities, RemoteCallStatus } from "./providers/types.js";
export { MockProvider } from "./providers/mock/provider.js";
export { createRuntime, type VoiceCallRuntime } from "./runtime.js";
export { startService, type RunningService } from "./server/service.js";
export { VoiceCallClient } from "./server/client.js";
export { invoke, MethodParams, METHOD_NAMES, type MethodName } from "./server/methods.js";
export { ToolParams, runTool, toolParametersJsonSchema } from "./gateway/tool.js";
export { VoiceCallError, type ErrorCode, type FieldIssue } from "./errors.js";
export { createLogger } from "./log.js";
