/**
 * Inside the gateway, realtime voice comes from the providers the gateway
 * registers (openai, google, xai in 2026.9.6), chosen as its voice-call docs
 * say (`realtime.provider`, else the first configured), through their bridge
 * API. Each call's bridge is wrapped as our RealtimeVoiceSession, so the
 * realtime pipeline (pacing, barge-in, tools, transcript) is the same as
 * with our own client:
 * - the provider cuts a reply itself when its detector hears the caller
 *   (truncating at what `getPlaybackState` says played: our transport's
 *   playedMs) and tells us to clear; that is our speech_started;
 * - a cut of ours (a speak() aborted) is the bridge's forced barge-in;
 * - audio without an item id (providers without one) is one item per response.
 */
import { randomUUID } from "node:crypto";
import { VoiceCallError } from "../errors.js";
import type { VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { RealtimeEvent, RealtimeSessionConfig, RealtimeVoice, RealtimeVoiceSession } from "../realtime/types.js";
import type { EngineChoice } from "../speech/index.js";
import { AsyncQueue } from "../util/async-queue.js";
import { loadRealtimeVoice, type BridgeAudioFormat, type GatewayConfig, type GatewayRuntime, type RealtimeBridge, type RealtimeBridgeRequest, type RealtimeVoiceProvider } from "./sdk.js";

const G711: BridgeAudioFormat = { encoding: "g711_ulaw", sampleRateHz: 8000, channels: 1 };
const PCM24: BridgeAudioFormat = { encoding: "pcm16", sampleRateHz: 24000, channels: 1 };

/** The gateway's realtime voice for these calls, or why there is none (the calls then speak through the cascade). */
export async function gatewayRealtimeVoice(
  config: VoiceCallConfig,
  runtime: GatewayRuntime | undefined,
  logger: Logger,
): Promise<{ voice?: RealtimeVoice; choice: EngineChoice }> {
  const cfg = runtime?.config?.current();
  const sdk = await loadRealtimeVoice().catch(() => undefined);
  if (!sdk || !cfg) return { choice: { engine: "cascade", why: "this gateway offers no realtime voice providers to plugins" } };
  try {
    const { provider, providerConfig } = sdk.resolveConfiguredRealtimeVoiceProvider({
      configuredProviderId: config.realtime.provider,
      providerConfigs: config.realtime.providers,
      cfg,
      ...(config.agentId ? { agentId: config.agentId } : {}),
      surface: "bridge",
    });
    const model = typeof providerConfig.model === "string" ? ` ${providerConfig.model}` : "";
    const why = config.realtime.provider
      ? `realtime.provider ${provider.id}, a realtime voice provider of the gateway${model}`
      : `the first configured of the gateway's realtime voice providers${model}`;
    return { voice: new BridgeRealtimeVoice(provider, providerConfig, cfg, config.agentId, logger), choice: { engine: `gateway-realtime:${provider.id}`, why } };
  } catch (err) {
    return { choice: { engine: "cascade", why: (err as Error).message } };
  }
}

/** A provider of the gateway as our RealtimeVoice: a bridge per session. */
export class BridgeRealtimeVoice implements RealtimeVoice {
  readonly id: string;

  constructor(
    private readonly provider: RealtimeVoiceProvider,
    private readonly providerConfig: Record<string, unknown>,
    private readonly cfg: GatewayConfig,
    private readonly agentId: string | undefined,
    private readonly log: Logger,
  ) {
    this.id = `gateway:${provider.id}`;
  }

  async open(config: RealtimeSessionConfig): Promise<RealtimeVoiceSession> {
    const session = new BridgeSession(config, (request) =>
      this.provider.createBridge({ ...request, cfg: this.cfg, providerConfig: this.providerConfig, ...(this.agentId ? { agentId: this.agentId } : {}) }),
    );
    try {
      await session.connect();
    } catch (err) {
      session.close();
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn({ provider: this.provider.id, reason: message }, "the gateway's realtime voice provider did not connect");
      throw new VoiceCallError("UNAVAILABLE", `realtime voice provider ${this.provider.id}: ${message}`);
    }
    return session;
  }
}

type BridgeParts = Omit<RealtimeBridgeRequest, "cfg" | "providerConfig" | "agentId">;

class BridgeSession implements RealtimeVoiceSession {
  readonly id = randomUUID();
  private readonly queue = new AsyncQueue<RealtimeEvent>();
  private readonly bridge: RealtimeBridge;
  private readonly bytesPerMs: number;
  /** The model's item whose audio came last (its transcript belongs to it). */
  private lastItem?: string;
  /** The item of a response whose audio comes without ids. */
  private unnamed?: string;
  private responses = 0;
  private inputMs = 0;
  /** Inside a cut of our own: the bridge's clear is not the caller's speech. */
  private ownCut = false;
  private over = false;

  constructor(config: RealtimeSessionConfig, create: (request: BridgeParts) => RealtimeBridge) {
    this.bytesPerMs = config.audio === "pcmu" ? 8 : 48;
    const { playback } = config;
    this.bridge = create({
      audioFormat: config.audio === "pcmu" ? G711 : PCM24,
      instructions: config.instructions,
      tools: config.tools.map((t) => ({ type: "function", name: t.name, description: t.description, parameters: t.parameters as { type: "object"; properties: Record<string, unknown> } })),
      onAudio: (audio, metadata) => {
        const itemId = metadata?.itemId ?? (this.unnamed ??= `response_${++this.responses}`);
        this.lastItem = itemId;
        this.queue.push({ type: "audio", itemId, audio });
      },
      ...(playback ? { getPlaybackState: () => playback().map((p) => ({ itemId: p.itemId, audioEndMs: Math.floor(p.playedMs) })) } : {}),
      onClearAudio: () => {
        if (!this.ownCut) this.queue.push({ type: "speech_started", audioStartMs: this.inputMs });
      },
      // Truncation reads getPlaybackState, not marks: a mark is acknowledged as it comes.
      onMark: (_name, acknowledge) => acknowledge?.(),
      onTranscript: (role, text, isFinal) => {
        if (!isFinal || !text.trim()) return;
        if (role === "user") this.queue.push({ type: "input_transcript", itemId: `input_${randomUUID()}`, text });
        else this.queue.push({ type: "output_transcript", itemId: this.lastItem ?? `response_${this.responses}`, text });
      },
      onResponseDone: (outcome) => {
        this.unnamed = undefined;
        this.queue.push({ type: "response_done", status: outcome.status });
      },
      onToolCall: (event) => this.queue.push({ type: "tool_call", callId: event.callId, name: event.name, arguments: JSON.stringify(event.args ?? {}) }),
      onError: (error) => this.queue.push({ type: "error", message: error.message }),
      onClose: (reason) => this.finish(reason === "error" ? "the realtime voice provider closed the session after an error" : "the realtime voice provider ended the session"),
    });
  }

  connect(): Promise<void> {
    return this.bridge.connect();
  }

  events(): AsyncIterable<RealtimeEvent> {
    return this.queue.iterate();
  }

  appendAudio(audio: Buffer): void {
    if (this.over) return;
    this.bridge.sendAudio(audio);
    this.inputMs += audio.length / this.bytesPerMs;
    this.bridge.setMediaTimestamp(Math.round(this.inputMs));
  }

  /** The bridge truncated the item itself (its barge-in, or ours in cancelResponse), at what getPlaybackState said played. */
  truncate(_itemId: string, _audioEndMs: number): void {}

  cancelResponse(): void {
    this.ownCut = true;
    try {
      this.bridge.handleBargeIn?.({ audioPlaybackActive: true, force: true });
    } finally {
      this.ownCut = false;
    }
  }

  toolResult(callId: string, output: unknown, respond = true): void {
    void Promise.resolve()
      .then(() => this.bridge.submitToolResult(callId, output, respond ? undefined : { suppressResponse: true }))
      .catch((err: Error) => this.queue.push({ type: "error", message: `tool result: ${err.message}` }));
  }

  respond(instructions?: string): void {
    if (this.bridge.sendUserMessage && instructions) this.bridge.sendUserMessage(instructions);
    else if (this.bridge.triggerGreeting) this.bridge.triggerGreeting(instructions);
    else this.queue.push({ type: "error", message: "this realtime voice provider cannot be asked to speak" });
  }

  close(): void {
    if (this.over) return;
    void Promise.resolve()
      .then(() => this.bridge.close())
      .catch(() => undefined);
    this.finish("closed");
  }

  private finish(reason: string): void {
    if (this.over) return;
    this.over = true;
    this.queue.push({ type: "closed", reason });
    this.queue.end();
  }
}
