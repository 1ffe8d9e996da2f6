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
import { openStore } from "./store/index.js";
import { PostgresStore } from "./store/postgres.js";
import { ClusterMember } from "./calls/cluster.js";
import { CallForwarder } from "./server/forward.js";
import { Operations } from "./calls/operations.js";
import { pruneRecordings } from "./calls/recording.js";
import type { Logger } from "./log.js";
import { createProviders, createVoiceLayer, type ProviderDeps } from "./providers/index.js";
import { PublicEndpoints } from "./providers/public-url.js";
import { realtimeChoice } from "./realtime/index.js";
import { RealtimeVoices } from "./voice/realtime.js";
import { speechChoice, type EngineChoice } from "./speech/index.js";
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
  /** What speaks and what listens on calls whose audio this service makes, and why. */
  speech?: SpeechChoice;
  /** On a shared store: sends methods for calls another instance holds to it (server/forward.ts). */
  forwarder?: CallForwarder;
  /** Tells the other instances where this one's control API answers, and with which token. */
  advertise(url: string, token: string): void;
  /**
   * Stopping gently: new calls are refused (health answers 503 "draining"; on a shared store the other
   * instances see no room here and take the PBX's entry), calls in progress go on for up to `timeoutMs`.
   * Resolves with the calls still up then; on a shared store stop() hands those to another instance.
   */
  drain(timeoutMs: number, progress?: (left: number) => void): Promise<{ left: number; handOver: boolean }>;
  stop(): Promise<void>;
}

export type SpeechChoice = { tts: EngineChoice; stt: EngineChoice };

export interface RuntimeDeps extends Omit<ProviderDeps, "logger"> {
  /** Auto-responses through this instead of responseBaseUrl (the gateway's model runtime). */
  chat?: ChatFn;
  /** Answers callers' turns instead of the chat-model Responder (inside the gateway: its agent). */
  responder?: TurnResponder;
  /** Which engines `synthesizer` / `transcriber` are and why (given with them, inside the gateway). */
  speech?: SpeechChoice;
}

/** Whether a carrier in use makes its audio with this service's speech (not the Mock, not a carrier's own voice). */
function usesOurAudio(providers: ReadonlyMap<ProviderId, CallProvider>): boolean {
  return [...providers.keys()].some((id) => id !== "mock");
}

function ownSpeech(config: VoiceCallConfig): SpeechChoice | undefined {
  try {
    return speechChoice(config);
  } catch {
    return undefined;
  }
}

export async function createRuntime(config: VoiceCallConfig, logger: Logger, deps: RuntimeDeps = {}): Promise<VoiceCallRuntime> {
  // An optional voice detector that is not installed stops the start, not the first call.
  if (config.bargeIn.vad === "silero") {
    await loadSilero().catch((err: Error) => {
      throw new VoiceCallError("UNAVAILABLE", err.message, [{ path: "bargeIn.vad", message: err.message }]);
    });
  }
  const { chat, responder: given, speech: chosen, ...providerDeps } = deps;
  const endpoints = providerDeps.endpoints ?? new PublicEndpoints(config);
  // Made here only for a realtime model, which needs the calls' manager (its consults); the cascade is made by
  // the carriers that handle audio, so a Mock-only config builds no speech engines.
  const voice = providerDeps.voice ?? (config.realtime.enabled ? createVoiceLayer(config) : undefined);
  const providers = createProviders(config, { logger, ...providerDeps, endpoints, ...(voice ? { voice } : {}) });
  const storeDir = defaultStoreDir(config);
  const { store, loaded, archived } = await openStore(config, {
    keepEnded: config.keepEndedCalls,
    onHealth: (h) =>
      h.writable
        ? logger.info({ store: store.where }, "the call store is writable again; waiting lines written")
        : logger.error({ store: store.where, reason: h.reason, waiting: h.waiting }, "the call store cannot be written: calls go on, new calls are refused, lines wait in memory"),
  });
  if (archived > 0) logger.info({ archived, store: storeDir }, "moved calls ended beyond keepEndedCalls into a dated file");
  // Recordings go with their calls: those of calls the log no longer keeps are removed.
  const pruned = pruneRecordings(storeDir, loaded.calls);
  if (pruned > 0) logger.info({ pruned, store: storeDir }, "removed the recordings of calls beyond keepEndedCalls");
  const responder = given ?? new Responder({ baseUrl: config.responseBaseUrl, apiKey: config.responseApiKey, timeoutMs: config.responseTimeoutMs, chat });
  const clusterLive = store instanceof PostgresStore ? (except?: string) => store.clusterLive(except) : undefined;
  const manager = new CallManager({ config, providers, store, loaded, logger, responder, ...(clusterLive ? { clusterLive } : {}) });
  // A realtime model on the line reaches the calls' responder (the agent, or responseModel) through consult.
  if (voice instanceof RealtimeVoices) {
    voice.consult = (providerCallId, question) => manager.consult(providerCallId, question);
    voice.callOf = (providerCallId) => {
      const call = manager.getCall(providerCallId);
      return call && { callId: call.callId, direction: call.direction, from: call.from, to: call.to, provider: call.provider };
    };
  }
  // On a shared store: the lease, taking over the calls of instances that stopped, handing out inbound calls.
  const member = store instanceof PostgresStore ? new ClusterMember(store, manager, providers, config, logger) : undefined;
  if (store instanceof PostgresStore) {
    store.onLost = (callId) => logger.error({ callId }, "another instance took this call over (this one's lease had run out): its later records are not written");
  }
  try {
    await manager.start();
    await member?.start();
  } catch (err) {
    await member?.stop();
    await manager.stop();
    throw err;
  }
  logger.info({ providers: [...providers.keys()], store: store.where, restored: loaded.calls.size }, "voice-call runtime started");
  // What was given (inside the gateway: its voices, or its realtime provider), else a realtime model or our engines.
  const speech = usesOurAudio(providers) ? (chosen ?? (config.realtime.enabled ? realtimeChoice(config) : ownSpeech(config))) : undefined;
  if (speech) logger.info({ tts: `${speech.tts.engine}: ${speech.tts.why}`, stt: `${speech.stt.engine}: ${speech.stt.why}` }, "speech engines");
  const forwarder = store instanceof PostgresStore ? new CallForwarder(store) : undefined;
  const advertise = (url: string, token: string) => {
    if (member) member.address = url;
    if (forwarder) forwarder.token = token;
  };
  let handOver = false;
  const drain = async (timeoutMs: number, progress?: (left: number) => void) => {
    manager.drain();
    await member?.drain();
    const left = await manager.settle(timeoutMs, progress);
    // Calls still up on a shared store go to another instance (their carrier keeps them); alone, they end with the stop.
    handOver = left > 0 && member !== undefined;
    return { left, handOver };
  };
  return { config, manager, operations: new Operations(), providers, endpoints, storeDir, speech, forwarder, advertise, drain, stop: async () => {
      await member?.stop();
      await manager.stop({ handOver });
    },
  };
}
