/**
 * The shell every carrier whose audio we handle ourselves shares (Asterisk's
 * externalMedia, the cloud carriers' media streams): the table of its calls,
 * a voice pipeline on each call's audio (src/voice/), speak/listen, readying
 * speech at start, and event delivery that stops at a call's end (only the
 * caller's last words may still follow). A carrier adds its transport and
 * control.
 */
import { BeepWaiter, detectAnsweredBy, type AmdVerdict } from "../audio/amd.js";
import { PocketsphinxTranscriber } from "../speech/pocketsphinx.js";
import type { AudioFrame } from "../audio/frame.js";
import { CallRecorder, type RecordingSummary } from "../audio/recorder.js";
import type { MediaTransport } from "../audio/transport.js";
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import type { VoiceLayer, VoicePipeline } from "../voice/pipeline.js";
import type {
  CallProvider,
  ListenOptions,
  PlaceCallRequest,
  ProviderCapabilities,
  RecordingRequest,
  ProviderEvent,
  ProviderEventBody,
  ProviderEventSink,
  RemoteCallStatus,
  CallHint,
  SpeakOptions,
  SpeakOutcome,
  TerminalState,
} from "./types.js";

export interface MediaCarrierOptions {
  config: VoiceCallConfig;
  logger: Logger;
  /** Hears the caller and speaks for us on each call's audio. */
  voice: VoiceLayer;
}

/** What the shell keeps of a call; carriers extend it with their own handles. */
export interface MediaCall {
  id: string;
  answered: boolean;
  ended: boolean;
  /** Caller audio heard and our audio spoken, once media flows. */
  media?: VoicePipeline;
  /** The ended event went out: nothing more is reported for this call. */
  reported?: boolean;
  /** The call's recording, while it runs, and who is told when it closes. */
  recording?: { recorder: CallRecorder; done: (summary: RecordingSummary) => void };
  /** A line of the carrier's own (a warm transfer's person): its events go here, never to the calls' manager. */
  listener?: (body: ProviderEventBody) => void;
}

/** A call's audio for detection: frames until a deadline. */
interface Frames {
  until(ms: number): void;
  next(): Promise<AudioFrame | undefined>;
  close(): void;
}

/** Reads frames until a machine's beep is over (or they run out at the deadline). */
async function beepOver(frames: Frames, heard: boolean, quietMs?: number): Promise<void> {
  const waiter = new BeepWaiter(heard);
  for (;;) {
    const frame = await frames.next();
    if (!frame || waiter.push(frame, quietMs)) return;
  }
}

/** After a person's phrase decided while they talk on ("Sam speaking, how may I help you?"): they finish before we speak. */
const PERSON_DONE_MS = 400;

/** How long an ended call's record is kept so late events for it are recognised. */
const FORGET_AFTER_MS = 30_000;

export abstract class MediaCarrier<C extends MediaCall> implements CallProvider {
  abstract readonly id: CallProvider["id"];
  abstract readonly capabilities: ProviderCapabilities;
  protected readonly calls = new Map<string, C>();
  protected readonly log: Logger;
  private sink: ProviderEventSink | null = null;
  private seq = 0;

  constructor(
    protected readonly options: MediaCarrierOptions,
    /** Names the carrier in logs and event ids. */
    private readonly label: string,
  ) {
    this.log = options.logger.child({ provider: label });
  }

  async start(sink: ProviderEventSink): Promise<void> {
    this.sink = sink;
    await this.open();
  }

  async stop(options: { handOver?: boolean } = {}): Promise<void> {
    await this.close(options.handOver === true);
    this.sink = null;
  }

  /** Connects to the carrier (called by start, with events already deliverable). */
  protected abstract open(): Promise<void>;
  /** Ends every call's media and disconnects; `handOver`: leaves the calls up for another instance, where the carrier can. */
  protected abstract close(handOver: boolean): Promise<void>;

  abstract placeCall(request: PlaceCallRequest): Promise<{ providerCallId: string }>;
  abstract answer(providerCallId: string): Promise<void>;
  abstract reject(providerCallId: string, reason: string): Promise<void>;
  abstract hangup(providerCallId: string): Promise<void>;
  abstract sendDtmf(providerCallId: string, digits: string): Promise<void>;
  abstract getCallStatus(providerCallId: string, hint?: CallHint): Promise<RemoteCallStatus>;

  async speak(providerCallId: string, text: string, options: SpeakOptions): Promise<SpeakOutcome> {
    return this.mediaOf(providerCallId).speak(text, options);
  }

  async listen(providerCallId: string, turnToken: string, options: ListenOptions = {}): Promise<void> {
    // Caller audio is recognised all the time; what is heard from now on belongs to this turn.
    this.mediaOf(providerCallId).openTurn(turnToken, options);
  }

  /** The call's media path (caller audio in, our audio out). */
  media(providerCallId: string): MediaTransport | undefined {
    return this.calls.get(providerCallId)?.media?.transport;
  }

  /** Starts hearing and speaking on `transport` for `call`. */
  protected async startMedia(call: C, transport: MediaTransport, options: { narrowband: boolean; inbandDtmf: boolean }): Promise<void> {
    const media = await this.options.voice.start({
      providerCallId: call.id,
      transport,
      narrowband: options.narrowband,
      inbandDtmf: options.inbandDtmf,
      log: this.log.child({ callId: call.id }),
      emit: (body) => this.emit(call, body),
    });
    // The call ended while its pipeline started (its teardown found none to close).
    if (call.ended) return void (await media.close());
    call.media = media;
  }

  /** Closes the call's audio; resolves once the caller's last words are reported (or given up on). */
  protected async endMedia(call: C): Promise<void> {
    await call.media?.close();
    await this.stopRecording(call);
  }

  /** Records the call's audio, both directions as heard, until its media ends. */
  record(providerCallId: string, request: RecordingRequest): void {
    const call = this.live(providerCallId);
    const transport = call.media?.transport;
    if (!transport?.record) throw new VoiceCallError("UNSUPPORTED", `${this.label}: this call's audio cannot be recorded here`);
    if (call.recording) throw new VoiceCallError("INVALID_STATE", `call ${providerCallId} is recorded already`);
    const recorder = new CallRecorder(request.path, transport.sampleRate, request.channels, (reason) => {
      transport.record?.(undefined);
      request.failed(reason);
    });
    transport.record(recorder);
    call.recording = { recorder, done: request.done };
  }

  /**
   * Answering-machine detection on the call's audio (src/audio/amd.ts: the
   * greeting's cadence, the beep, and the phrases the offline recogniser spots in it);
   * after a machine, optionally until its beep is over.
   */
  async detectMachine(providerCallId: string, options: { timeoutMs: number; awaitBeepMs?: number }): Promise<AmdVerdict> {
    const frames = this.framesOf(providerCallId);
    try {
      frames.until(options.timeoutMs);
      const verdict = await detectAnsweredBy(() => frames.next(), (rate, phrases) => new PocketsphinxTranscriber().spot({ sampleRate: rate, narrowband: true }, phrases));
      if (verdict.outcome === "machine" && options.awaitBeepMs) {
        frames.until(options.awaitBeepMs);
        await beepOver(frames, verdict.reason === "a beep");
      }
      if (verdict.outcome === "human" && verdict.talking) {
        frames.until(options.timeoutMs);
        await beepOver(frames, false, PERSON_DONE_MS);
      }
      return verdict;
    } finally {
      frames.close();
    }
  }

  /** After a machine's verdict from the carrier, waits at most `ms` on the call's audio for its greeting's beep to be over. */
  protected async awaitBeep(providerCallId: string, ms: number): Promise<void> {
    const frames = this.framesOf(providerCallId);
    try {
      frames.until(ms);
      await beepOver(frames, false);
    } finally {
      frames.close();
    }
  }

  /** The call's audio frame by frame; next() gives up (undefined) at the deadline until() set. */
  private framesOf(providerCallId: string): Frames {
    const transport = this.live(providerCallId).media?.transport;
    if (!transport) throw new VoiceCallError("INVALID_STATE", `call ${providerCallId} has no media yet`);
    const frames = transport.frames()[Symbol.asyncIterator]();
    let deadline = Infinity;
    return {
      until: (ms) => void (deadline = performance.now() + ms),
      next: async () => {
        let timer: NodeJS.Timeout | undefined;
        const gone = new Promise<IteratorResult<AudioFrame>>((r) => (timer = setTimeout(() => r({ done: true, value: undefined }), Math.max(0, deadline - performance.now()))));
        const got = await Promise.race([frames.next(), gone]);
        clearTimeout(timer);
        return got.done ? undefined : got.value;
      },
      close: () => void frames.return?.(),
    };
  }

  private async stopRecording(call: C): Promise<void> {
    const recording = call.recording;
    if (!recording) return;
    call.recording = undefined;
    call.media?.transport.record?.(undefined);
    recording.done(await recording.recorder.close());
  }

  /** Speech ready before the first caller, at this carrier's sample rate (in the background; calls work meanwhile). */
  protected warmSpeech(sampleRate: 8000 | 16000): void {
    this.options.voice.warm(sampleRate, this.log);
  }

  /** Keeps the ended call's record a little so late events for it are recognised, then forgets it. */
  protected forgetLater(call: C): void {
    setTimeout(() => {
      if (this.calls.get(call.id) !== call) return;
      this.calls.delete(call.id);
      this.forgotten(call);
    }, FORGET_AFTER_MS).unref();
  }

  /** A carrier drops what else it kept about an ended call, when the call itself is forgotten. */
  protected forgotten(_call: C): void {}

  /** Reports the end once; the caller's last words go out before it when the carrier closed the media first. */
  protected reportEnd(call: C, state: TerminalState, reason: string): void {
    this.emit(call, { type: "ended", state, reason });
  }

  protected live(providerCallId: string): C {
    const call = this.calls.get(providerCallId);
    if (!call) throw new VoiceCallError("NOT_FOUND", `${this.label} has no call ${providerCallId}`);
    if (call.ended) throw new VoiceCallError("CALL_ENDED", `${this.label} call ${providerCallId} has ended`);
    return call;
  }

  protected mediaOf(providerCallId: string): VoicePipeline {
    const media = this.live(providerCallId).media;
    if (!media) throw new VoiceCallError("INVALID_STATE", `call ${providerCallId} has no media yet`);
    return media;
  }

  /** Work nobody awaits: a failure is logged, never an unhandled rejection. */
  protected background(work: Promise<unknown>, what: string): void {
    work.catch((err) => this.log.error({ err: err instanceof Error ? err.message : String(err) }, `${what} failed`));
  }

  protected emit(call: C, body: ProviderEventBody): void {
    if (call.listener) return call.listener(body);
    // After the end only the caller's last words (or why they could not be transcribed) still go out.
    if (call.reported && body.type !== "speech" && body.type !== "unrecognised") return;
    if (body.type === "ended") call.reported = true;
    this.seq += 1;
    this.sink?.({ ...body, eventId: `${this.label}-${process.pid}-${this.seq}`, providerCallId: call.id, at: Date.now() } as ProviderEvent);
  }
}
