/**
 * The conversation on one call's line, for carriers whose audio we handle
 * (Asterisk's media, the cloud carriers' streams): a voice pipeline owns the
 * call's audio port (caller frames in; our frames out, cleared on barge-in,
 * with marks and the milliseconds of each item that played), hears the
 * caller and says our words. One interface, implemented by the cascade (a
 * voice detector, a recogniser and a synthesizer: src/voice/cascade.ts) and,
 * next, by a realtime speech-to-speech session. Carriers hand a pipeline
 * their transport and control the call; they never look inside it.
 */
import type { MediaTransport } from "../audio/transport.js";
import type { Logger } from "../log.js";
import type { Expectation } from "../speech/types.js";

export interface SpeakOptions {
  /** Stops playback now: what is queued is dropped (barge-in, hang-up). */
  signal?: AbortSignal;
  /**
   * The turn this message opens: caller speech from its start on belongs to
   * it, so words said over the prompt answer it.
   */
  turnToken?: string;
  /** What answer the turn this message opens expects (see ListenOptions). */
  expect?: ListenOptions["expect"];
  /** Whose voice says it: the number the caller dialled, where it has its own (numbers.<n>.tts). */
  voice?: string;
}

export interface SpeakOutcome {
  /** Playback was stopped before the end. */
  interrupted: boolean;
  /** What the far end heard: the sentences that played to the end. */
  heard: string;
  /** How much of the audio went out before the end or the cut, in ms (carriers whose audio we make, and the Mock). */
  playedMs?: number;
}

export interface ListenOptions {
  /** What answer the turn expects; recognisers with grammars use it (digits, yes/no). */
  expect?: Expectation;
}

/** What a pipeline reports of the caller, as events of the call. */
export type VoiceEvent =
  /** The caller started talking (voice activity): the cue for barge-in. */
  | { type: "speech-start"; turnToken?: string }
  /** The caller stopped talking (the silence that ends an utterance). */
  | { type: "speech-end" }
  /** The caller's words; `answered`: the pipeline answers them itself (a realtime model), nobody else should. */
  | { type: "speech"; text: string; isFinal: boolean; turnToken?: string; answered?: boolean }
  | { type: "unrecognised"; reason: string }
  | { type: "dtmf"; digits: string }
  /** What the pipeline said of its own accord (a realtime model's reply), and how long it played. */
  | { type: "said"; text: string; playedMs?: number }
  /** The pipeline cannot go on (a realtime model closed its session): the call ends with the reason. */
  | { type: "voice-closed"; reason: string }
  /** The model on the line hung up (its end-call tool), after its last words played. */
  | { type: "hangup-requested"; reason: string };

export interface PipelineOptions {
  /** The carrier's id of the call. */
  providerCallId: string;
  /** The call's audio port. */
  transport: MediaTransport;
  /** The far end is telephone-band (G.711) even if the transport runs at 16 kHz. */
  narrowband: boolean;
  /** Read DTMF from the audio too (carriers that send keys in-band). */
  inbandDtmf: boolean;
  log: Logger;
  emit: (event: VoiceEvent) => void;
}

export interface VoicePipeline {
  readonly transport: MediaTransport;
  /** Says `text`; stops at once (queued audio dropped) when the signal aborts. */
  speak(text: string, options: SpeakOptions): Promise<SpeakOutcome>;
  /** What is heard from now on answers this turn. */
  openTurn(turnToken: string, options?: ListenOptions): void;
  /** Keys as tones on the line, after what is already queued. */
  sendTones(digits: string): Promise<void>;
  /** Closes the audio; resolves once the caller's last words are reported (or after `waitMs`). */
  close(waitMs?: number): Promise<void>;
}

/** Makes each call's pipeline; readies what every call will need. */
export interface VoiceLayer {
  start(options: PipelineOptions): Promise<VoicePipeline>;
  /** Readies speech at `sampleRate` before the first call (once per rate; in the background). */
  warm(sampleRate: 8000 | 16000, log: Logger): void;
}
