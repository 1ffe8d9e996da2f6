/**
 * Inside the gateway, calls speak with the gateway's voices and listen with
 * its recognisers, behind this service's Synthesizer and Transcriber:
 * - TTS through `api.runtime.tts`: prepareTtsRequest (the plugin's `tts`, or
 *   a number's over it, as the override of the gateway's tts), then
 *   textToSpeechTelephony (PCM and its rate), framed at the call's rate, one
 *   sentence at a time behind the sentence cache;
 * - recognition through the realtime transcription providers the gateway
 *   registers (streaming.provider, else the first configured in their
 *   auto-select order; options under streaming.providers.<id>), fed G.711
 *   mu-law at 8 kHz as carriers deliver it.
 * This service's own engines remain the fallback: an offline engine named in
 * the config, a gateway without the runtime or without a configured provider,
 * and each sentence the gateway's TTS fails on.
 */
import { encodeG711 } from "../audio/g711.js";
import { Resampler } from "../audio/resample.js";
import type { VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { PcmFramer, sentenceFrames } from "../speech/cloud.js";
import { createSynthesizer, createTranscriber, isOfflineEngine, numberTts, speechChoice, type EngineChoice } from "../speech/index.js";
import { SentenceCache } from "../speech/sentence-cache.js";
import { SpeechError, type SpokenFrame, type SynthesizeOptions, type Synthesizer, type TranscriberStream, type Transcriber, type TranscriptEvent } from "../speech/types.js";
import { VoiceBook } from "../speech/voice-book.js";
import type { AudioFrame } from "../audio/frame.js";
import { AsyncQueue } from "../util/async-queue.js";
import {
  loadProviderSelection,
  loadRealtimeTranscription,
  type GatewayConfig,
  type GatewayRuntime,
  type RealtimeTranscriptionProvider,
  type RealtimeTranscriptionSession,
  type TtsRuntime,
} from "./sdk.js";

/** How long one sentence may take the gateway's TTS before our own engine says it. */
const TTS_TIMEOUT_MS = 15_000;
/** After the gateway's TTS fails, our own engine speaks for this long before it is tried again. */
const TTS_RETRY_AFTER_MS = 60_000;

/** What serves each direction on calls inside the gateway, and the engines themselves. */
export interface GatewaySpeech {
  synthesizer: Synthesizer;
  transcriber: Transcriber;
  choice: { tts: EngineChoice; stt: EngineChoice };
}

/**
 * Picks the voices and ears for calls inside the gateway (at service start:
 * the runtime is not read during register()).
 */
export async function gatewaySpeech(config: VoiceCallConfig, runtime: GatewayRuntime | undefined, logger: Logger): Promise<GatewaySpeech> {
  const ours = speechChoice(config, true);
  const cfg = runtime?.config?.current();
  const tts = chooseTts(config, runtime, cfg, ours.tts);
  const stt = await chooseStt(config, cfg, ours.stt);
  // Our own engines are made when first used: a config whose carriers make no audio of ours needs none.
  const fallbackVoice = new LazySynthesizer(() => createSynthesizer(config, true));
  const synthesizer = tts.gateway && runtime?.tts ? gatewayVoices(config, runtime, fallbackVoice, logger) : fallbackVoice;
  const transcriber = stt.provider ? new GatewayTranscriber(stt.provider, stt.providerConfig ?? {}, cfg) : new LazyTranscriber(() => createTranscriber(config, true));
  return { synthesizer, transcriber, choice: { tts: tts.choice, stt: stt.choice } };
}

function chooseTts(config: VoiceCallConfig, runtime: GatewayRuntime | undefined, cfg: GatewayConfig | undefined, ours: EngineChoice): { gateway: boolean; choice: EngineChoice } {
  const named = config.tts.provider;
  if (isOfflineEngine(named)) return { gateway: false, choice: { engine: named!, why: `tts.provider names this service's own ${named}` } };
  if (!runtime?.tts || !cfg) return { gateway: false, choice: { engine: ours.engine, why: `this gateway offers no TTS runtime (api.runtime.tts); ${ours.why}` } };
  const core = (cfg.tts ?? cfg.messages?.tts) as { provider?: unknown } | undefined;
  const coreProvider = typeof core?.provider === "string" ? core.provider : undefined;
  if (named) return { gateway: true, choice: { engine: `gateway:${named}`, why: `tts.provider ${named}, through the gateway's TTS (the plugin's tts over the gateway's)` } };
  if (coreProvider) return { gateway: true, choice: { engine: `gateway:${coreProvider}`, why: `the gateway's tts (provider ${coreProvider}; messages.tts in older configs)` } };
  return { gateway: false, choice: { engine: ours.engine, why: `neither tts.provider nor the gateway's tts.provider names a voice; ${ours.why}` } };
}

async function chooseStt(
  config: VoiceCallConfig,
  cfg: GatewayConfig | undefined,
  ours: EngineChoice,
): Promise<{ choice: EngineChoice; provider?: RealtimeTranscriptionProvider; providerConfig?: Record<string, unknown> }> {
  const named = config.streaming.provider;
  if (isOfflineEngine(named)) return { choice: { engine: named!, why: `streaming.provider names this service's own ${named}` } };
  const [registry, selection] = await Promise.all([loadRealtimeTranscription().catch(() => undefined), loadProviderSelection().catch(() => undefined)]);
  if (!registry || !selection || !cfg) return { choice: { engine: ours.engine, why: `this gateway offers no realtime transcription providers to plugins; ${ours.why}` } };
  const picked = selection.resolveConfiguredCapabilityProvider({
    configuredProviderId: named,
    providerConfigs: config.streaming.providers,
    cfg,
    cfgForResolve: cfg,
    getConfiguredProvider: (id: string) => registry.getRealtimeTranscriptionProvider(id, cfg),
    listProviders: () => registry.listRealtimeTranscriptionProviders(cfg),
    resolveProviderConfig: ({ provider, cfg: c, rawConfig }) => provider.resolveConfig?.({ cfg: c, rawConfig }) ?? rawConfig,
    isProviderConfigured: ({ provider, cfg: c, providerConfig }) => provider.isConfigured({ cfg: c, providerConfig }),
  });
  if (picked.ok) {
    const why = named ? `streaming.provider ${named}, a realtime transcription provider of the gateway` : `the first configured of the gateway's realtime transcription providers (autoSelectOrder)`;
    return { choice: { engine: `gateway:${picked.provider.id}`, why }, provider: picked.provider, providerConfig: picked.providerConfig };
  }
  const reason =
    picked.code === "missing-configured-provider"
      ? `the gateway has no realtime transcription provider "${named}"`
      : picked.code === "provider-not-configured"
        ? `the gateway's ${picked.provider?.id ?? "provider"} is not configured (its key under streaming.providers.${picked.provider?.id ?? "<id>"} or its environment variable)`
        : "no realtime transcription provider is registered in the gateway";
  return { choice: { engine: ours.engine, why: `${reason}; ${ours.why}` } };
}

class LazySynthesizer implements Synthesizer {
  private made?: Synthesizer;
  constructor(private readonly make: () => Synthesizer) {}
  private get engine(): Synthesizer {
    return (this.made ??= this.make());
  }
  get id(): string {
    return this.engine.id;
  }
  synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    return this.engine.synthesize(text, options);
  }
}

class LazyTranscriber implements Transcriber {
  private made?: Transcriber;
  constructor(private readonly make: () => Transcriber) {}
  private get engine(): Transcriber {
    return (this.made ??= this.make());
  }
  get id(): string {
    return this.engine.id;
  }
  get endpointing(): "bus" | "engine" {
    return this.engine.endpointing;
  }
  stream(options: { sampleRate: number; narrowband?: boolean }): Promise<TranscriberStream> {
    return this.engine.stream(options);
  }
}

/** The gateway's voice for every line: the plugin's tts, and each number's own over it, each behind its cache. */
function gatewayVoices(config: VoiceCallConfig, runtime: GatewayRuntime, fallback: Synthesizer, logger: Logger): Synthesizer {
  const make = (override: Record<string, unknown>) => new SentenceCache(new GatewaySynthesizer({ runtime, override, fallback, logger }));
  const base = make(config.tts as Record<string, unknown>);
  const voices = new Map<string, Synthesizer>();
  for (const [number, o] of Object.entries(config.numbers)) {
    if (o.tts) voices.set(number, make(numberTts(config.tts, o.tts) as Record<string, unknown>));
  }
  return voices.size > 0 ? new VoiceBook(base, voices) : base;
}

export interface GatewaySynthesizerOptions {
  runtime: GatewayRuntime;
  /** The plugin's (or a number's) tts, the override of the gateway's tts. */
  override: Record<string, unknown>;
  /** Says a sentence the gateway's TTS could not. */
  fallback: Synthesizer;
  logger?: Logger;
}

/** The gateway's TTS, one sentence per request (the sentence cache above it splits and reuses). */
export class GatewaySynthesizer implements Synthesizer {
  readonly id = "gateway";
  private failedAt = 0;

  constructor(private readonly options: GatewaySynthesizerOptions) {}

  async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    const tts = this.options.runtime.tts;
    const cfg = this.options.runtime.config?.current();
    if (!tts || !cfg || Date.now() - this.failedAt < TTS_RETRY_AFTER_MS) {
      yield* this.options.fallback.synthesize(text, options);
      return;
    }
    let clip: { pcm: Buffer; sampleRate: number };
    try {
      clip = await telephonyClip(tts, cfg, this.options.override, text);
    } catch (err) {
      if (options.signal?.aborted) return;
      this.failedAt = Date.now();
      this.options.logger?.warn({ err: (err as Error).message, retryInSeconds: TTS_RETRY_AFTER_MS / 1000 }, "the gateway's TTS failed; this service's own voice speaks meanwhile");
      yield* this.options.fallback.synthesize(text, options);
      return;
    }
    if (options.signal?.aborted) return;
    const framer = await PcmFramer.create(clip.sampleRate, options.sampleRate);
    try {
      yield* sentenceFrames(once(new Uint8Array(clip.pcm.buffer, clip.pcm.byteOffset, clip.pcm.byteLength)), framer, text, options.signal);
    } finally {
      framer.destroy();
    }
  }
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

async function telephonyClip(tts: TtsRuntime, cfg: GatewayConfig, override: Record<string, unknown>, text: string): Promise<{ pcm: Buffer; sampleRate: number }> {
  const prepared = await tts.prepareTtsRequest({ cfg, override, text });
  const spoken = prepared.directives.ttsText ?? prepared.directives.cleanedText ?? text;
  const result = await tts.textToSpeechTelephony({ text: spoken, cfg: prepared.cfg, overrides: prepared.directives.overrides, timeoutMs: TTS_TIMEOUT_MS });
  if (result.success === false || !result.audioBuffer || result.audioBuffer.length === 0) {
    throw new SpeechError("SPEECH_FAILED", `the gateway's TTS${result.provider ? ` (${result.provider})` : ""} made no audio${result.error ? `: ${result.error}` : ""}`);
  }
  return { pcm: result.audioBuffer, sampleRate: result.sampleRate ?? 8000 };
}

/** A realtime transcription provider of the gateway as a Transcriber: it finds utterance ends itself. */
export class GatewayTranscriber implements Transcriber {
  readonly endpointing = "engine" as const;

  constructor(
    private readonly provider: RealtimeTranscriptionProvider,
    private readonly providerConfig: Record<string, unknown>,
    private readonly cfg: GatewayConfig | undefined,
  ) {}

  get id(): string {
    return `gateway:${this.provider.id}`;
  }

  async stream(options: { sampleRate: number }): Promise<TranscriberStream> {
    const stream = new GatewayTranscriberStream(options.sampleRate === 8000 ? undefined : await Resampler.create(options.sampleRate, 8000));
    let session: RealtimeTranscriptionSession;
    try {
      session = this.provider.createSession({
        cfg: this.cfg,
        providerConfig: this.providerConfig,
        onSpeechStart: () => stream.emit({ type: "speech_started" }),
        onPartial: (text) => stream.emit({ type: "interim", text }),
        onTranscript: (text) => {
          stream.emit({ type: "final", text });
          stream.emit({ type: "speech_ended" });
        },
        onError: (err) => stream.fail(`${this.provider.label ?? this.provider.id}: ${err.message}`),
      });
      await session.connect();
    } catch (err) {
      stream.close();
      throw new SpeechError("SPEECH_UNAVAILABLE", `the gateway's ${this.provider.id} transcription: ${(err as Error).message}`);
    }
    stream.attach(session);
    return stream;
  }
}

class GatewayTranscriberStream implements TranscriberStream {
  private readonly queue = new AsyncQueue<TranscriptEvent>();
  private session?: RealtimeTranscriptionSession;
  private ended = false;
  private closed = false;

  constructor(private readonly resampler: Resampler | undefined) {}

  attach(session: RealtimeTranscriptionSession): void {
    this.session = session;
  }

  emit(event: TranscriptEvent): void {
    this.queue.push(event);
  }

  fail(message: string): void {
    this.queue.push({ type: "error", message });
    this.close();
  }

  pushFrame(frame: AudioFrame): void {
    if (this.ended || !this.session) return;
    const pcm = this.resampler ? this.resampler.process(frame.pcm) : frame.pcm;
    this.session.sendAudio(Buffer.from(encodeG711("ulaw", pcm)));
  }

  /** The provider finds utterance ends itself. */
  flush(): void {}

  endInput(): void {
    if (this.ended) return;
    // Closing the session asks the provider for its last result; the stream ends once it had time to arrive.
    this.ended = true;
    this.session?.close();
    setTimeout(() => this.close(), 2000).unref();
  }

  close(): void {
    this.ended = true;
    if (this.closed) return;
    this.closed = true;
    this.session?.close();
    this.resampler?.destroy();
    this.queue.end();
  }

  events(): AsyncIterable<TranscriptEvent> {
    return this.queue.iterate();
  }
}
