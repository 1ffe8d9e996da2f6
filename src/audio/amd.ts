/**
 * Answering-machine detection on our own audio bus: what the far end does
 * in the first seconds after it answers. A person says a short "hello?"
 * and waits for us; a machine talks on (a greeting of several seconds with
 * short pauses) and ends with a beep, a steady tone. The first rule that
 * holds decides:
 * - a beep: one frequency between 400 and 2,000 Hz holding most of the
 *   frame's energy for BEEP_MS: machine;
 * - speech going on for MACHINE_SPEECH_MS, with no pause of HUMAN_PAUSE_MS:
 *   machine;
 * - a greeting of at most HUMAN_GREETING_MS, then HUMAN_PAUSE_MS of silence
 *   (the person waits for us): human;
 * - nothing said for SILENT_MS, or no decision within the time given: unknown.
 * After a machine, `awaitBeep` tells when its greeting is over (the beep, or
 * the end of its speech) so a message left after it is heard.
 */
import { toneRatio } from "./goertzel.js";
import { concatPcm, type AudioFrame } from "./frame.js";
import { frameDbfs } from "./vad.js";

export type AmdOutcome = "human" | "machine" | "unknown";

export interface AmdVerdict {
  outcome: AmdOutcome;
  /** From the start of listening to the decision. */
  ms: number;
  /** What decided it, in words. */
  reason: string;
}

const SPEECH_DB = -45;
const BEEP_MS = 160;
const BEEP_RATIO = 0.3;
const MACHINE_SPEECH_MS = 2600;
const HUMAN_GREETING_MS = 2000;
const HUMAN_PAUSE_MS = 700;
const SILENT_MS = 4000;
/** Frequencies a beep is looked for at (every 50 Hz from 400 to 2,000). */
const BEEP_FREQUENCIES = Array.from({ length: 33 }, (_, i) => 400 + i * 50);

/** The strongest single frequency's share of a frame's energy (a pure tone is about 0.5). */
function toneShare(frame: AudioFrame): number {
  let best = 0;
  for (const f of BEEP_FREQUENCIES) best = Math.max(best, toneRatio(frame.pcm, frame.sampleRate, f));
  return best;
}

export class MachineDetector {
  private ms = 0;
  /** ms of speech since its first word (pauses shorter than HUMAN_PAUSE_MS included). */
  private speechSpan = 0;
  private heardSpeech = false;
  private silenceRun = 0;
  private toneRun = 0;
  private verdict?: AmdVerdict;

  /** Feeds one caller frame; returns the verdict once there is one (then again on every frame). */
  push(frame: AudioFrame): AmdVerdict | undefined {
    if (this.verdict) return this.verdict;
    const frameMs = (frame.pcm.length * 1000) / frame.sampleRate;
    this.ms += frameMs;
    const loud = frameDbfs(frame.pcm) >= SPEECH_DB;
    this.toneRun = loud && toneShare(frame) >= BEEP_RATIO ? this.toneRun + frameMs : 0;
    if (this.toneRun >= BEEP_MS) return this.decide("machine", "a beep");
    if (loud) {
      if (this.heardSpeech) this.speechSpan += this.silenceRun + frameMs;
      else this.speechSpan = frameMs;
      this.heardSpeech = true;
      this.silenceRun = 0;
      if (this.speechSpan >= MACHINE_SPEECH_MS) return this.decide("machine", `a greeting of over ${(MACHINE_SPEECH_MS / 1000).toFixed(1)} s`);
      return undefined;
    }
    this.silenceRun += frameMs;
    if (this.heardSpeech && this.silenceRun >= HUMAN_PAUSE_MS) {
      if (this.speechSpan <= HUMAN_GREETING_MS) return this.decide("human", `a greeting of ${(this.speechSpan / 1000).toFixed(1)} s, then a pause`);
      // A longer greeting that stopped: a machine's, short of the limit, or a person who talked on.
      return this.decide("machine", `a greeting of ${(this.speechSpan / 1000).toFixed(1)} s`);
    }
    if (!this.heardSpeech && this.ms >= SILENT_MS) return this.decide("unknown", `nothing said for ${(SILENT_MS / 1000).toFixed(0)} s`);
    return undefined;
  }

  private decide(outcome: AmdOutcome, reason: string): AmdVerdict {
    this.verdict = { outcome, ms: Math.round(this.ms), reason };
    return this.verdict;
  }
}

/** After a machine's verdict: tells when its greeting is over (a beep ended, or its speech stopped for a while). */
export class BeepWaiter {
  private toneRun = 0;
  private silenceRun = 0;

  /** `sawBeep`: the beep is under way (it decided the verdict): wait for its end. */
  constructor(private sawBeep = false) {}

  /** True once what follows can be said: the beep is over, or the machine has been quiet for `quietMs`. */
  push(frame: AudioFrame, quietMs = 1200): boolean {
    const frameMs = (frame.pcm.length * 1000) / frame.sampleRate;
    const loud = frameDbfs(frame.pcm) >= SPEECH_DB;
    const tonal = loud && toneShare(frame) >= BEEP_RATIO;
    this.toneRun = tonal ? this.toneRun + frameMs : 0;
    if (this.toneRun >= BEEP_MS) this.sawBeep = true;
    // The beep has ended: speak now.
    if (this.sawBeep && !tonal) return true;
    this.silenceRun = loud ? 0 : this.silenceRun + frameMs;
    return this.silenceRun >= quietMs;
  }
}

/** Words a voicemail greeting has, and words a person answering (a business line) says. */
const MACHINE_WORDS = [/\bleave (a|your) message\b/, /\bnot available\b/, /\bvoice ?mail\b/, /\bafter the (tone|beep)\b/, /\bcan'?t (take|come to)\b/, /\byou('ve| have) reached\b/, /\brecord (a|your) message\b/, /\bmailbox\b/, /\bnot (at )?home\b/];
const PERSON_WORDS = [/\b(can|may) (i|we) help\b/, /\bhelp you\b/, /\bspeaking\b/, /\bwho('s| is) (this|calling)\b/];
/** How long a long greeting is heard out for its words before its length decides. */
const HEAR_OUT_MS = 6000;

/** The recogniser on a greeting (batch): its words, lower case. */
export type Transcribe = (pcm: Int16Array, sampleRate: 8000 | 16000) => Promise<string>;

/**
 * The detector with the recogniser's words on the greeting, for what
 * cadence alone gets wrong: a short voicemail greeting without a beep
 * ("Leave a message."), and a person answering at length ("Smith and
 * Partners, Sam speaking, how may I help you?"), heard out to its pause
 * (at most HEAR_OUT_MS) unless its words already say machine. `next` gives
 * the far end's frames (undefined: none within the time left); without
 * `transcribe`, cadence and the beep alone decide. `ms` counts the audio
 * heard and the recogniser's time.
 */
export async function detectAnsweredBy(next: () => Promise<AudioFrame | undefined>, transcribe?: Transcribe): Promise<AmdVerdict> {
  const detector = new MachineDetector();
  const greeting: Int16Array[] = [];
  let rate: 8000 | 16000 = 8000;
  let audioMs = 0;
  let verdict: AmdVerdict | undefined;
  while (!verdict) {
    const frame = await next();
    if (!frame) return { outcome: "unknown", ms: Math.round(audioMs), reason: "no decision in time" };
    rate = frame.sampleRate === 16000 ? 16000 : 8000;
    greeting.push(frame.pcm);
    audioMs += (frame.pcm.length * 1000) / frame.sampleRate;
    verdict = detector.push(frame);
  }
  if (!transcribe || verdict.outcome === "unknown" || verdict.reason === "a beep") return verdict;
  let spentMs = 0;
  const words = async () => {
    const started = performance.now();
    const heard = (await transcribe(concatPcm(greeting), rate).catch(() => "")).toLowerCase();
    spentMs += performance.now() - started;
    return heard;
  };
  const says = (heard: string, phrases: RegExp[]) => phrases.some((p) => p.test(heard));
  const at = () => Math.round(audioMs + spentMs);
  let heard = await words();
  if (says(heard, MACHINE_WORDS)) return { outcome: "machine", ms: at(), reason: `${verdict.outcome === "machine" ? `${verdict.reason}, and ` : ""}a voicemail's words ("${heard}")` };
  if (verdict.outcome === "human") return { ...verdict, ms: at() };
  // Long, and no voicemail words yet: heard out to its pause, its beep, or HEAR_OUT_MS.
  let silence = 0;
  let tone = 0;
  while (audioMs < HEAR_OUT_MS) {
    const frame = await next();
    if (!frame) break;
    greeting.push(frame.pcm);
    const frameMs = (frame.pcm.length * 1000) / frame.sampleRate;
    audioMs += frameMs;
    const loud = frameDbfs(frame.pcm) >= SPEECH_DB;
    tone = loud && toneShare(frame) >= BEEP_RATIO ? tone + frameMs : 0;
    if (tone >= BEEP_MS) return { outcome: "machine", ms: at(), reason: "a beep" };
    silence = loud ? 0 : silence + frameMs;
    if (silence >= HUMAN_PAUSE_MS) break;
  }
  heard = await words();
  if (says(heard, MACHINE_WORDS)) return { outcome: "machine", ms: at(), reason: `a voicemail's words ("${heard}")` };
  if (silence >= HUMAN_PAUSE_MS && says(heard, PERSON_WORDS)) return { outcome: "human", ms: at(), reason: `a person's words, then a pause ("${heard}")` };
  return { ...verdict, ms: at() };
}
