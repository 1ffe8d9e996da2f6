/**
 * The cascade: one call's conversation through a voice detector, a
 * recogniser and a synthesizer. Caller frames go to the detector (barge-in
 * cue, utterance ends) and the recogniser, our text goes out through the
 * synthesizer with a mark per sentence, and caller speech is attributed to
 * the turn that was current when it began.
 */
import { DtmfDetector, dtmfTones } from "../audio/dtmf.js";
import type { AudioFrame } from "../audio/frame.js";
import type { MediaTransport } from "../audio/transport.js";
import type { SpeechDetectorOptions } from "../audio/vad.js";
import type { VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { SpeechGate } from "../speech/gate.js";
import type { Synthesizer, Transcriber, TranscriberStream } from "../speech/types.js";
import type { ListenOptions, PipelineOptions, SpeakOptions, SpeakOutcome, VoiceLayer, VoicePipeline } from "./pipeline.js";
import { TurnTaker, type TurnTakingOptions } from "./turn-taking.js";

export interface CascadeOptions extends PipelineOptions {
  synthesizer: Synthesizer;
  transcriber: Transcriber;
  detector: Partial<SpeechDetectorOptions>;
  turnTaking: TurnTakingOptions;
}

/** Speech engines already readied, with the sample rates they were readied at. */
const warmed = new WeakMap<Transcriber, Set<number>>();

/** The cascade for every call of the carriers that share these engines. */
export class CascadeVoices implements VoiceLayer {
  constructor(
    private readonly config: VoiceCallConfig,
    readonly synthesizer: Synthesizer,
    readonly transcriber: Transcriber,
  ) {}

  start(options: PipelineOptions): Promise<VoicePipeline> {
    const { config, synthesizer, transcriber } = this;
    const turnTaking = config.turnTaking;
    // The detector ends an utterance at the shortest pause that can end a turn; the words decide the rest.
    const minSilenceMs = turnTaking.mode === "semantic" ? turnTaking.completeMs : config.silenceTimeoutMs;
    return CascadePipeline.start({ ...options, synthesizer, transcriber, turnTaking, detector: { ...config.bargeIn, minSilenceMs } });
  }

  /**
   * Recogniser and greetings ready before the first caller (in the background; calls work meanwhile).
   * Carriers share the service's speech engines: each engine is readied once per sample rate.
   */
  warm(sampleRate: 8000 | 16000, log: Logger): void {
    const { config, synthesizer, transcriber } = this;
    const rates = warmed.get(transcriber) ?? new Set<number>();
    if (rates.has(sampleRate)) return;
    warmed.set(transcriber, rates.add(sampleRate));
    // Each number's greeting in the voice that will say it.
    const lines = [
      ...(config.inboundGreeting ? [{ text: config.inboundGreeting }] : []),
      ...Object.entries(config.numbers).flatMap(([number, n]) => {
        const text = n.inboundGreeting ?? config.inboundGreeting;
        return text && (n.inboundGreeting || n.tts) ? [{ text, voice: n.tts ? number : undefined }] : [];
      }),
    ];
    const started = performance.now();
    CascadePipeline.warm({ synthesizer, transcriber, sampleRate, lines }).then(
      () => log.info({ ms: Math.round(performance.now() - started), greetings: lines.length }, "speech ready"),
      (err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, "readying speech failed"),
    );
  }
}

export class CascadePipeline implements VoicePipeline {
  /** The turn caller speech belongs to from now on (set when a prompt or a listen opens it). */
  private turnToken?: string;
  /** The turn of the utterance being heard: the one current when it began. */
  private utteranceToken?: string;
  private readonly hearing = { vad: false, asr: false };
  /** Settles when the recogniser has reported everything it heard. */
  private recognition: Promise<void> = Promise.resolve();
  /** The caller spoke since the recogniser last reported words. */
  private heardSince = false;
  /** Messages spoken so far (each one's audio is a transport item, for its played time). */
  private spoken = 0;

  private readonly turns: TurnTaker;

  private constructor(
    private readonly options: CascadeOptions,
    private readonly recognizer: TranscriberStream,
  ) {
    const { emit, transcriber, turnTaking, detector } = options;
    this.turns = new TurnTaker(
      {
        ...turnTaking,
        endpointing: transcriber.endpointing,
        endsTurns: transcriber.endsTurns ?? false,
        detectorSilenceMs: detector.minSilenceMs ?? turnTaking.completeMs,
        ...(transcriber.sentenceEnd ? { sentenceEnd: (text: string) => transcriber.sentenceEnd!(text) } : {}),
      },
      {
        turn: (turn) => emit({ type: "speech", text: turn.text, isFinal: true, turnToken: turn.turnToken }),
        quiet: () => emit({ type: "speech-end" }),
        flush: () => recognizer.flush(),
      },
    );
  }

  /** Starts hearing the caller. Subscribes to the audio before the recogniser loads, so the first words are kept. */
  static async start(options: CascadeOptions): Promise<CascadePipeline> {
    const { transport, transcriber } = options;
    const frames = transport.frames();
    const recognizer = await transcriber.stream({ sampleRate: transport.sampleRate, narrowband: options.narrowband });
    // Semantic turn-taking flushes the recogniser when the turn ends, not at every pause.
    const flushAtPause = options.turnTaking.mode === "silence";
    const gate = await SpeechGate.create(recognizer, { sampleRate: transport.sampleRate, endpointing: transcriber.endpointing, detector: options.detector, flushAtPause });
    const media = new CascadePipeline(options, recognizer);
    media.run(frames, gate);
    return media;
  }

  /**
   * Readies speech before the first call: the recogniser's thread and model
   * (a first stream takes ~0.7 s to open) and the lines every caller hears
   * (greetings, kept by the synthesizer's sentence cache). Without it the
   * first callers of a busy minute all wait for that start.
   */
  static async warm(options: { synthesizer: Synthesizer; transcriber: Transcriber; sampleRate: 8000 | 16000; lines: Array<{ text: string; voice?: string }> }): Promise<void> {
    const stream = await options.transcriber.stream({ sampleRate: options.sampleRate, narrowband: true });
    // The sentence-end model too (pocketsphinx's language model, read once), before the first caller's pause.
    options.transcriber.sentenceEnd?.("");
    stream.endInput();
    stream.close();
    for (const { text, voice } of options.lines) for await (const _frame of options.synthesizer.synthesize(text, { sampleRate: options.sampleRate, voice })) void _frame;
  }

  get transport(): MediaTransport {
    return this.options.transport;
  }

  /** What is heard from now on answers this turn; `expect` picks a grammar where the recogniser has one. */
  openTurn(turnToken: string, options: ListenOptions = {}): void {
    this.turnToken = turnToken;
    this.recognizer.expect?.(options.expect);
    this.turns.expect(options.expect);
  }

  /** Speaks `text`; stops at once (queued audio dropped) when the signal aborts. */
  async speak(text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    const { transport, synthesizer } = this.options;
    if (options.turnToken) this.openTurn(options.turnToken, options);
    const controller = new AbortController();
    const abort = () => {
      controller.abort();
      transport.clear();
    };
    if (options.signal?.aborted) abort();
    options.signal?.addEventListener("abort", abort, { once: true });
    // A mark after each sentence: resolved true once its last frame went out.
    const heard: string[] = [];
    const marks: Array<Promise<void>> = [];
    const item = `speech-${++this.spoken}`;
    try {
      for await (const frame of synthesizer.synthesize(text, { sampleRate: transport.sampleRate, signal: controller.signal, voice: options.voice })) {
        if (controller.signal.aborted || transport.closed) break;
        transport.write(frame, item);
        const sentence = frame.completes;
        if (sentence) marks.push(transport.mark().then((sent) => void (sent && heard.push(sentence))));
      }
      await transport.mark();
      await Promise.all(marks);
    } finally {
      options.signal?.removeEventListener("abort", abort);
    }
    return { interrupted: controller.signal.aborted, heard: heard.join(" "), playedMs: transport.playedMs(item) };
  }

  /** Sends keys as tones on the line, after what is already queued; resolves once they went out. */
  async sendTones(digits: string): Promise<void> {
    const { transport } = this.options;
    const rate = transport.sampleRate === 16000 ? 16000 : 8000;
    for (const frame of dtmfTones(digits, rate)) transport.write(frame);
    await transport.mark();
  }

  /**
   * Closes the audio; resolves once the recogniser has reported the caller's
   * last words, or after `waitMs` (the call's end is not held up longer: words
   * that come later are still recorded). Words still missing after
   * `giveUpMs` are recorded as unrecognised, never dropped without a word.
   */
  async close(waitMs = 2000, giveUpMs = 30_000): Promise<void> {
    this.options.transport.close();
    const within = (ms: number) => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        this.recognition.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)).unref()),
      ]).finally(() => clearTimeout(timer));
    };
    if (await within(waitMs)) return;
    void within(giveUpMs - waitMs).then((finished) => {
      if (finished || !this.heardSince) return;
      const reason = `recognition had not caught up ${Math.round(giveUpMs / 1000)} s after the call ended`;
      this.options.log.warn({ engine: this.options.transcriber.id, reason }, "caller speech not transcribed");
      this.options.emit({ type: "unrecognised", reason });
    });
  }

  /** An utterance is open while either side hears it; its turn is fixed when it opens. */
  private hear(side: "vad" | "asr", on: boolean): void {
    if (on) this.utteranceToken ??= this.turnToken;
    this.hearing[side] = on;
    if (!this.hearing.vad && !this.hearing.asr) this.utteranceToken = undefined;
  }

  private run(frames: AsyncIterable<AudioFrame>, gate: SpeechGate): void {
    const { emit, log, transcriber } = this.options;
    const keys = this.options.inbandDtmf ? new DtmfDetector() : undefined;
    void (async () => {
      for await (const frame of frames) {
        const edge = gate.push(frame);
        if (edge) this.hear("vad", edge === "start");
        if (edge === "start") {
          this.heardSince = true;
          this.turns.started(this.utteranceToken);
          emit({ type: "speech-start", turnToken: this.utteranceToken });
        }
        if (edge === "end") this.turns.stopped();
        this.turns.tick((frame.pcm.length * 1000) / frame.sampleRate);
        const key = keys?.push(frame);
        if (key) emit({ type: "dtmf", digits: key });
      }
      this.recognizer.endInput();
    })()
      .catch((err) => log.warn({ err: String(err) }, "feeding the recogniser failed"))
      .finally(() => gate.close());
    this.recognition = (async () => {
      for await (const event of this.recognizer.events()) {
        if (event.type === "error") log.warn({ engine: transcriber.id, reason: event.message }, "recognition stopped");
        if (event.type === "unrecognised") {
          log.warn({ engine: transcriber.id, reason: event.reason }, "caller speech not transcribed");
          emit({ type: "unrecognised", reason: event.reason });
        }
        if (event.type === "speech_started" || event.type === "speech_ended") this.hear("asr", event.type === "speech_started");
        if (event.type === "speech_ended") this.turns.recognised();
        if (event.type === "interim") this.turns.interim(event.text);
        if (event.type === "final") {
          this.heardSince = false;
          this.turns.final(event.text, this.utteranceToken ?? this.turnToken);
        }
      }
      // The line closed: words held for a pause are the caller's last turn.
      this.turns.end();
      this.recognizer.close();
    })().catch((err) => log.warn({ err: String(err) }, "recognition failed"));
  }
}
