/**
 * Everything a running voice-call service holds: providers, store and the
 * CallManager, started and stopped together. Used by the standalone service
 * and the gateway plugin alike.
 */
import type { ProviderId, VoiceCallConfig } from "./config/schema.js";
import { defaultStoreDir } from "./config/load.js";
import { CallManager } from "./calls/manager.js";
import { loadSilero } from "./audio/silero.js";
import { Responder, type ChatFn, type TurnResponder } from "./calls/responder.js";
import { VoiceCallError } from "./errors.js";
import { CallStore } from "./calls/store.js";
import { Operations } from "./calls/operations.js";
import type { Logger } from "./log.js";
import { createProviders, type ProviderDeps } from "./providers/index.js";
import { PublicEndpoints } from "./providers/public-url.js";
import type { CallProvider } from "./providers/types.js";

export interface VoiceCallRuntime {
  config: VoiceCallConfig;
  manager: CallManager;
  /** Turns started by voicecall.continue.start, polled by voicecall.continue.result. */
  operations: Operations;
  providers: ReadonlyMap<ProviderId, CallProvider>;
  /** Where carriers reach this service (publicUrl, or what expose found). */
  endpoints: PublicEndpoints;
  storeDir: string;
  stop(): Promise<void>;
}

export interface RuntimeDeps extends Omit<ProviderDeps, "logger"> {
  /** Auto-responses through this instead of responseBaseUrl (the gateway's model runtime). */
  chat?: ChatFn;
  /** Answers callers' turns instead of the chat-model Responder (inside the gateway: its agent). */
  responder?: TurnResponder;
}

export async function createRuntime(config: VoiceCallConfig, logger: Logger, deps: RuntimeDeps = {}): Promise<VoiceCallRuntime> {
  // An optional voice detector that is not installed stops the start, not the first call.
  if (config.bargeIn.vad === "silero") {
    await loadSilero().catch((err: Error) => {
      throw new VoiceCallError("UNAVAILABLE", err.message, [{ path: "bargeIn.vad", message: err.message }]);
    });
  }
  const { chat, responder: given, ...providerDeps } = deps;
  const endpoints = providerDeps.endpoints ?? new PublicEndpoints(config);
  const providers = createProviders(config, { logger, ...providerDeps, endpoints });
  const storeDir = defaultStoreDir(config);
  const { store, loaded, archived } = CallStore.open(storeDir, {
    keepEnded: config.keepEndedCalls,
    onHealth: (h) =>
      h.writable
        ? logger.info({ store: storeDir }, "the call log is writable again; waiting lines written")
        : logger.error({ store: storeDir, reason: h.reason, waiting: h.waiting }, "the call log cannot be written: calls go on, new calls are refused, lines wait in memory"),
  });
  if (archived > 0) logger.info({ archived, store: storeDir }, "moved calls ended beyond keepEndedCalls into a dated file");
  const responder = given ?? new Responder({ baseUrl: config.responseBaseUrl, apiKey: config.responseApiKey, timeoutMs: config.responseTimeoutMs, chat });
  const manager = new CallManager({ config, providers, store, loaded, logger, responder });
  try {
    await manager.start();
  } catch (err) {
    await manager.stop();
    throw err;
  }
  logger.info({ providers: [...providers.keys()], store: storeDir, restored: loaded.calls.size }, "voice-call runtime started");
  return { config, manager, operations: new Operations(), providers, endpoints, storeDir, stop: () => manager.stop() };
}
