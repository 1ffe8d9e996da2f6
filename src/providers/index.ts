/**
 * Builds the carriers a config uses. Each carrier lives in its own folder;
 * this is the one place that maps a provider id to its implementation.
 */
import type { ProviderId, VoiceCallConfig } from "../config/schema.js";
import { providersInUse } from "../config/load.js";
import type { Logger } from "../log.js";
import { createSynthesizer, createTranscriber } from "../speech/index.js";
import type { Synthesizer, Transcriber } from "../speech/types.js";
import { createRealtimeVoice } from "../realtime/index.js";
import { CascadeVoices } from "../voice/cascade.js";
import { RealtimeVoices } from "../voice/realtime.js";
import type { VoiceLayer } from "../voice/pipeline.js";
import { AsteriskProvider } from "./asterisk/provider.js";
import { AsteriskPool, ariServers, type NamedAriServer } from "./asterisk/servers.js";
import { MockProvider } from "./mock/provider.js";
import { PublicEndpoints } from "./public-url.js";
import { PlivoProvider } from "./plivo/provider.js";
import { TelnyxProvider } from "./telnyx/provider.js";
import { TwilioProvider } from "./twilio/provider.js";
import type { CallProvider } from "./types.js";

export interface ProviderDeps {
  logger: Logger;
  /** Speech synthesis for carriers whose audio we produce ourselves; default from config.tts. */
  synthesizer?: Synthesizer;
  /** Speech recognition for carriers whose audio we receive ourselves; default from config.streaming. */
  transcriber?: Transcriber;
  /** The voice layer built from the two above (made once by createProviders, shared by the carriers). */
  voice?: VoiceLayer;
  /** Where carriers reach this service; default from publicUrl. */
  endpoints?: PublicEndpoints;
  /** REST base URLs per carrier instead of the carrier's own hosts (local servers speaking their API). */
  apiBaseUrls?: Partial<Record<ProviderId, string>>;
}

type Factory = (config: VoiceCallConfig, deps: ProviderDeps) => CallProvider;

/** The voice layer a config asks for: a realtime model on every call, or the cascade with the speech given (else made from config). */
export function createVoiceLayer(config: VoiceCallConfig, speech: Pick<ProviderDeps, "synthesizer" | "transcriber"> = {}): VoiceLayer {
  return config.realtime.enabled
    ? new RealtimeVoices(config, createRealtimeVoice(config))
    : new CascadeVoices(config, speech.synthesizer ?? createSynthesizer(config), speech.transcriber ?? createTranscriber(config));
}

/** The voice layer of carriers whose audio we handle: given, or made from config once and shared by them. */
function speech(config: VoiceCallConfig, deps: ProviderDeps): { config: VoiceCallConfig; logger: Logger; voice: VoiceLayer } {
  deps.voice ??= createVoiceLayer(config, deps);
  return { config, logger: deps.logger, voice: deps.voice };
}

/** What a carrier streaming audio to us needs: speech, where it is reached, and its REST base in tests. */
function streamCarrier(config: VoiceCallConfig, deps: ProviderDeps, id: ProviderId) {
  return { ...speech(config, deps), endpoints: deps.endpoints ?? new PublicEndpoints(config), apiBaseUrl: deps.apiBaseUrls?.[id] };
}

const FACTORIES: Record<ProviderId, Factory> = {
  mock: (config) => new MockProvider(config.mock),
  asterisk: (config, deps) => {
    const servers = ariServers(config);
    const member = (server: NamedAriServer) => new AsteriskProvider({ ...speech(config, deps), server });
    // One Asterisk: its provider as it is (call ids are its channel ids); several: a pool in front (servers.ts).
    return servers.length === 1 ? member(servers[0]!) : new AsteriskPool(servers.map((s) => ({ name: s.name, provider: member(s) })));
  },
  twilio: (config, deps) => new TwilioProvider(streamCarrier(config, deps, "twilio")),
  telnyx: (config, deps) => new TelnyxProvider(streamCarrier(config, deps, "telnyx")),
  plivo: (config, deps) => new PlivoProvider(streamCarrier(config, deps, "plivo")),
};

export function createProviders(config: VoiceCallConfig, deps: ProviderDeps): Map<ProviderId, CallProvider> {
  deps = { ...deps };
  const out = new Map<ProviderId, CallProvider>();
  for (const id of providersInUse(config)) out.set(id, FACTORIES[id](config, deps));
  return out;
}
