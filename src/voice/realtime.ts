/**
 * A realtime pipeline: one call's conversation held by a speech-to-speech
 * model. Caller frames go to the model as they arrive (G.711 mu-law straight
 * through on 8 kHz narrowband lines, PCM16 24 kHz through our resampler
 * otherwise); the model's audio is cut into 20 ms frames and paced out on the
 * call's transport, each reply its own item. When the model hears the caller
 * cut in, what is queued is cleared and the model's reply is truncated at
 * the milliseconds that actually went out (the transport's playedMs, never
 * the call's clock). Both sides' words are reported as events; the model's
 * tool calls go to `onToolCall` and its result back to the model.
 */
import { dtmfTones } from "../audio/dtmf.js";
import type { AudioFrame, SampleRate } from "../audio/frame.js";
import { decodeG711, encodeG711 } from "../audio/g711.js";
import { Resampler } from "../audio/resample.js";
import type { MediaTransport } from "../audio/transport.js";
import type { RealtimeEvent, RealtimeTool, RealtimeVoice, RealtimeVoiceSession } from "../realtime/types.js";
import { PcmFramer } from "../speech/cloud.js";
import type { VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { offeredTool, runConfiguredTool, type ToolCallSubject } from "./realtime-tools.js";
import type { ListenOptions, PipelineOptions, SpeakOptions, SpeakOutcome, VoiceLayer, VoicePipeline } from "./pipeline.js";

const MODEL_RATE = 24000;

/** The model's own way to hang up: bound to this call, no arguments. */
export const END_CALL_TOOL: RealtimeTool = {
  name: "openclaw_end_call",
  description: "Hang up this phone call. Say your goodbye first: the call ends once it has played.",
  parameters: { type: "object", properties: {}, additionalProperties: false },
};

/** The agent, reachable from the model: the call's own agent inside the gateway, the responseModel standalone. */
export const CONSULT_TOOL: RealtimeTool = {
  name: "openclaw_agent_consult",
  description:
    "Ask the agent behind this line: for facts, memory, tools, bookings or anything you cannot answer yourself. " +
    "One question per call of this tool; say a short holding phrase first if the caller is waiting.",
  parameters: {
    type: "object",
    properties: { question: { type: "string", description: "the question, complete on its own" } },
    required: ["question"],
    additionalProperties: false,
  },
};

const CONSULT_GUIDANCE: Record<string, string> = {
  auto: "",
  substantive: `Answer small talk yourself; call ${CONSULT_TOOL.name} before stating facts, using memory or tools.`,
  always: `Call ${CONSULT_TOOL.name} before every substantive answer.`,
};

/** How long the model's farewell may still play before its end_call hangs up. */
const FAREWELL_MAX_MS = 2000;

/** PCM16 samples as their bytes (a view: samples may be carved from a shared pool). */
const pcmBytes = (pcm: Int16Array) => Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);

export interface RealtimePipelineOptions extends PipelineOptions {
  voice: RealtimeVoice;
  instructions: string;
  tools: RealtimeTool[];
  /** Runs a tool the model called; what it returns (or the error's message) goes back to the model. */
  onToolCall?: (name: string, args: Record<string, unknown>) => Promise<unknown>;
  /** No caller audio for this long (and a 2 s grace) means the line is gone: an intermediary that never forwarded the hang-up. */
  noMediaMs?: number;
}

/** How long a line may bring no caller audio before it is treated as gone (the reference's backstop). */
export const NO_MEDIA_MS = 30_000;
const NO_MEDIA_GRACE_MS = 2000;

/** A reply being played: the model's item its audio belongs to. */
interface Reply {
  itemId: string;
}

export class RealtimePipeline implements VoicePipeline {
  private turnToken?: string;
  private playing?: Reply;
  /** The speak() waiting for the model's next response to finish playing. */
  private asked?: { resolve: (outcome: SpeakOutcome) => void; itemIds: string[]; said: string[] };
  private readonly framer: PcmFramer;
  private done: Promise<void> = Promise.resolve();
  /** We are closing it (the call's media ended): the session's close is not news. */
  private closing = false;
  /** The model's session is over: nothing more can be said on this line. */
  private gone = false;

  private constructor(
    private readonly options: RealtimePipelineOptions,
    private readonly session: RealtimeVoiceSession,
    private readonly narrow: boolean,
    framer: PcmFramer,
    private readonly toModel: Resampler | undefined,
  ) {
    this.framer = framer;
  }

  static async start(options: RealtimePipelineOptions): Promise<RealtimePipeline> {
    const { transport } = options;
    // Subscribe before the model's session opens, so the caller's first words are kept.
    const frames = transport.frames();
    const narrow = transport.sampleRate === 8000;
    let pipeline: RealtimePipeline | undefined;
    // What is playing and how much of it went out, for providers that cut a reply themselves.
    const playback = () => (pipeline?.playing ? [{ itemId: pipeline.playing.itemId, playedMs: transport.playedMs(pipeline.playing.itemId) }] : []);
    const session = await options.voice.open({ instructions: options.instructions, tools: options.tools, audio: narrow ? "pcmu" : "pcm24k", playback });
    const framer = await PcmFramer.create(narrow ? 8000 : MODEL_RATE, transport.sampleRate as SampleRate);
    const toModel = narrow ? undefined : await Resampler.create(transport.sampleRate, MODEL_RATE);
    pipeline = new RealtimePipeline(options, session, narrow, framer, toModel);
    pipeline.run(frames);
    pipeline.watchMedia(options.noMediaMs ?? NO_MEDIA_MS);
    return pipeline;
  }

  get transport(): MediaTransport {
    return this.options.transport;
  }

  /** The model says `text` now (a greeting, an operator's message); resolves once it has played or was cut. */
  speak(text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    if (options.turnToken) this.openTurn(options.turnToken);
    return new Promise<SpeakOutcome>((resolve) => {
      if (this.gone || options.signal?.aborted) return resolve({ interrupted: true, heard: "", playedMs: 0 });
      this.asked?.resolve({ interrupted: true, heard: "", playedMs: 0 });
      this.asked = { resolve, itemIds: [], said: [] };
      // Our own barge-in (the session's detector, or a hang-up): the model is told to stop too.
      options.signal?.addEventListener("abort", () => this.cutIn(true), { once: true });
      this.session.respond(`Say this to the caller, word for word, and nothing else: ${text}`);
    });
  }

  openTurn(turnToken: string, _options?: ListenOptions): void {
    this.turnToken = turnToken;
  }

  async sendTones(digits: string): Promise<void> {
    const { transport } = this.options;
    for (const frame of dtmfTones(digits, transport.sampleRate === 16000 ? 16000 : 8000)) transport.write(frame);
    await transport.mark();
  }

  async close(waitMs = 2000): Promise<void> {
    this.closing = true;
    this.session.close();
    this.options.transport.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.done, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    this.framer.destroy();
    this.toModel?.destroy();
  }

  /** Ends the line when the caller's audio stops coming (checked every second; from the start, if none ever came). */
  private watchMedia(limitMs: number): void {
    const since = performance.now();
    const timer = setInterval(() => {
      if (this.closing) return clearInterval(timer);
      const last = this.options.transport.lastReceivedAt ?? since;
      if (performance.now() - last < limitMs + NO_MEDIA_GRACE_MS) return;
      clearInterval(timer);
      const limit = limitMs >= 1000 ? `${Math.round(limitMs / 1000)} s` : `${limitMs} ms`;
      this.options.log.warn({ limit }, "no caller audio: the line is treated as gone");
      this.options.emit({ type: "voice-closed", reason: `no caller audio for ${limit}` });
    }, Math.min(1000, limitMs / 4));
    timer.unref();
  }

  /**
   * Stops the model's reply where the caller heard it: queued audio dropped,
   * the item truncated at what played. `ours`: the cut is ours, so the
   * response is cancelled too (the model's own detector cancels its own).
   */
  private cutIn(ours: boolean): void {
    const reply = this.playing;
    if (!reply) return;
    const { transport } = this.options;
    const playedMs = transport.playedMs(reply.itemId);
    transport.clear();
    this.framer.flush(); // the cut reply's last partial frame is dropped with the rest
    if (ours) this.session.cancelResponse();
    this.session.truncate(reply.itemId, playedMs);
    this.playing = undefined;
    if (this.asked?.itemIds.includes(reply.itemId)) {
      this.asked.resolve({ interrupted: true, heard: "", playedMs });
      this.asked = undefined;
    }
  }

  private run(frames: AsyncIterable<AudioFrame>): void {
    const { log } = this.options;
    void (async () => {
      for await (const frame of frames) {
        const audio = this.narrow ? Buffer.from(encodeG711("ulaw", frame.pcm)) : pcmBytes(this.toModel!.process(frame.pcm));
        this.session.appendAudio(audio);
      }
    })().catch((err) => log.warn({ err: String(err) }, "feeding the realtime model failed"));
    this.done = (async () => {
      for await (const event of this.session.events()) this.onEvent(event);
    })().catch((err) => log.warn({ err: String(err) }, "reading the realtime model failed"));
  }

  private onEvent(event: RealtimeEvent): void {
    const { emit, transport, log } = this.options;
    switch (event.type) {
      case "audio": {
        if (this.playing?.itemId !== event.itemId) {
          this.playing = { itemId: event.itemId };
          this.asked?.itemIds.push(event.itemId);
        }
        const bytes = this.narrow ? pcmBytes(decodeG711("ulaw", event.audio)) : event.audio;
        for (const frame of this.framer.push(bytes)) transport.write(frame, event.itemId);
        return;
      }
      case "speech_started":
        this.cutIn(false);
        return emit({ type: "speech-start", turnToken: this.turnToken });
      case "speech_stopped":
        return emit({ type: "speech-end" });
      case "input_transcript":
        return emit({ type: "speech", text: event.text, isFinal: true, turnToken: this.turnToken, answered: true });
      case "output_transcript":
        // A line speak() asked for is the session's to record; the model's own replies are reported here.
        if (this.asked?.itemIds.includes(event.itemId)) return void this.asked.said.push(event.text);
        return emit({ type: "said", text: event.text, playedMs: transport.playedMs(event.itemId) });
      case "tool_call":
        return void this.callTool(event.callId, event.name, event.arguments);
      case "response_done": {
        const reply = this.playing;
        for (const frame of this.framer.flush()) transport.write(frame, reply?.itemId);
        void transport.mark().then((sent) => {
          // Played to its end: a later cut-in has nothing of it to stop.
          if (sent && this.playing === reply) this.playing = undefined;
          const asked = this.asked;
          if (!asked || !reply || !asked.itemIds.includes(reply.itemId)) return;
          this.asked = undefined;
          const interrupted = !sent || event.status === "cancelled";
          asked.resolve({ interrupted, heard: interrupted ? "" : asked.said.join(" "), playedMs: transport.playedMs(reply.itemId) });
        });
        return;
      }
      case "error":
        return log.warn({ reason: event.message }, "the realtime model refused a request");
      case "closed":
        this.gone = true;
        log.info({ reason: event.reason }, "realtime session closed");
        this.asked?.resolve({ interrupted: true, heard: "", playedMs: 0 });
        this.asked = undefined;
        if (!this.closing) emit({ type: "voice-closed", reason: event.reason });
        return;
    }
  }

  private async callTool(callId: string, name: string, rawArgs: string): Promise<void> {
    if (name === END_CALL_TOOL.name) return this.endCall(callId);
    let output: unknown;
    try {
      const args = JSON.parse(rawArgs || "{}") as Record<string, unknown>;
      if (!this.options.onToolCall) throw new Error(`no tool ${name} here`);
      output = await this.options.onToolCall(name, args);
    } catch (err) {
      output = { error: err instanceof Error ? err.message : String(err) };
    }
    this.session.toolResult(callId, output ?? { ok: true });
  }

  /** The model hangs up: its farewell plays out (at most FAREWELL_MAX_MS), then the call ends; nothing more is said. */
  private async endCall(callId: string): Promise<void> {
    const { transport, emit } = this.options;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([transport.mark(), new Promise((r) => (timer = setTimeout(r, FAREWELL_MAX_MS)))]);
    clearTimeout(timer);
    this.session.toolResult(callId, { ok: true, ended: true }, false);
    emit({ type: "hangup-requested", reason: "ended by the model" });
  }
}

const PHONE_CONTRACT =
  "You are talking with a caller on the phone. Speak in short, natural sentences, one question at a time. " +
  `When the conversation is over, say goodbye and then call ${END_CALL_TOOL.name}.`;

/** Every call's pipeline is a realtime session with this voice (realtime.enabled). */
export class RealtimeVoices implements VoiceLayer {
  /** Answers the model's consult questions (set once the calls' manager exists). */
  consult?: (providerCallId: string, question: string) => Promise<string>;
  /** The call a carrier call id is (set with consult): what realtime.tools endpoints are told. */
  callOf?: (providerCallId: string) => ToolCallSubject | undefined;

  constructor(
    private readonly config: VoiceCallConfig,
    private readonly voice: RealtimeVoice,
  ) {}

  start(options: PipelineOptions): Promise<VoicePipeline> {
    const { config } = this;
    const persona = config.realtime.instructions ?? config.responseSystemPrompt ?? "You are a helpful assistant answering the phone.";
    // toolPolicy "none": no consult; hanging up stays the model's.
    const consults = config.realtime.toolPolicy !== "none";
    const guidance = consults ? CONSULT_GUIDANCE[config.realtime.consultPolicy ?? "auto"] : "";
    const own = config.realtime.tools ?? [];
    return RealtimePipeline.start({
      ...options,
      voice: this.voice,
      instructions: [persona, PHONE_CONTRACT, guidance].filter(Boolean).join("\n\n"),
      tools: [END_CALL_TOOL, ...(consults ? [CONSULT_TOOL] : []), ...own.map(offeredTool)],
      onToolCall: async (name, args) => {
        const index = own.findIndex((t) => t.name === name);
        if (index >= 0) return runConfiguredTool(own[index]!, index, args, this.callOf?.(options.providerCallId));
        if (name !== CONSULT_TOOL.name || !consults) throw new Error(`no tool ${name} here`);
        const question = typeof args.question === "string" ? args.question.trim() : "";
        if (!question) throw new Error("question: required");
        if (!this.consult) throw new Error("nothing to consult on this line");
        return { answer: await this.consult(options.providerCallId, question) };
      },
    });
  }

  /** Nothing to ready: the model's session opens with each call's media. */
  warm(_sampleRate: 8000 | 16000, log: Logger): void {
    log.info({ provider: this.voice.id }, "calls speak with a realtime voice model");
  }
}
