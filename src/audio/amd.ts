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
import type { TranscriberStream } from "../speech/types.js";
import { toneRatio } from "./goertzel.js";
import type { AudioFrame } from "./frame.js";
import { frameDbfs } from "./vad.js";

export type AmdOutcome = "human" | "machine" | "unknown";

export interface AmdVerdict {
  outcome: AmdOutcome;
  /** From the start of listening to the decision. */
  ms: number;
  /** What decided it, in words. */
  reason: string;
  /** The far end was still talking when it was decided (a phrase decided it mid-greeting). */
  talking?: boolean;
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

  /** The far end has been quiet for HUMAN_PAUSE_MS after speaking (its greeting stopped). */
  get paused(): boolean {
    return this.heardSpeech && this.silenceRun >= HUMAN_PAUSE_MS;
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

/** Phrases a voicemail greeting has, and phrases a person answering (a business line) says: what the spotter listens for. */
export const MACHINE_PHRASES = ["leave a message", "leave your message", "not available", "you have reached", "you've reached", "voicemail", "not home"];
export const PERSON_PHRASES = ["speaking", "help you"];
const PHRASES = [...MACHINE_PHRASES, ...PERSON_PHRASES];
/** How long a long greeting is heard out for its words before its length decides. */
const HEAR_OUT_MS = 6000;
/** How long a decision waits for the spotter to finish an utterance it is still in. */
const SETTLE_MS = 500;

/**
 * Opens a stream that spots `phrases` in the greeting as it comes (the
 * offline recogniser's keyphrase search); its interim and final results name
 * the phrases spotted so far.
 */
export type SpotPhrases = (sampleRate: 8000 | 16000, phrases: readonly string[]) => Promise<TranscriberStream>;

/** The phrases spotted in the greeting so far, read from a spotting stream as it reports them. */
class GreetingWords {
  private readonly spotted: string[] = [];
  private speaking = false;
  private ended?: () => void;

  constructor(private readonly stream: TranscriberStream) {
    void (async () => {
      for await (const e of stream.events()) {
        if (e.type === "speech_started") this.speaking = true;
        if (e.type === "interim" || e.type === "final") {
          const text = ` ${e.text.trim().split(/\s+/).join(" ")} `;
          for (const p of PHRASES) if (text.includes(` ${p} `) && !this.spotted.includes(p)) this.spotted.push(p);
        }
        if (e.type === "speech_ended") {
          this.speaking = false;
          this.ended?.();
        }
      }
    })().catch(() => undefined);
  }

  push(frame: AudioFrame): void {
    this.stream.pushFrame(frame);
  }

  /** What the phrases spotted so far decide: a voicemail's phrase wins over a person's. */
  decision(): { outcome: "human" | "machine"; reason: string } | undefined {
    const machine = this.spotted.filter((p) => MACHINE_PHRASES.includes(p));
    if (machine.length > 0) return { outcome: "machine", reason: `a voicemail's words ("${machine.join('", "')}")` };
    const person = this.spotted.filter((p) => PERSON_PHRASES.includes(p));
    if (person.length > 0) return { outcome: "human", reason: `a person's words ("${person.join('", "')}")` };
    return undefined;
  }

  /** Everything heard is reported: an utterance the spotter is still in is ended (at most SETTLE_MS). Resolves with the ms waited. */
  async settle(): Promise<number> {
    if (!this.speaking) return 0;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.ended = resolve;
      timer = setTimeout(resolve, SETTLE_MS);
      this.stream.flush();
    });
    clearTimeout(timer);
    return performance.now() - started;
  }

  close(): void {
    this.stream.endInput();
    this.stream.close();
  }
}

/**
 * The detector with the recogniser spotting phrases in the greeting as it
 * comes, for what cadence alone gets wrong: a short voicemail greeting
 * without a beep ("Leave a message."), and a person answering at length
 * ("Smith and Partners, Sam speaking, how may I help you?"). A phrase
 * decides at once (a voicemail's over a person's); a short greeting and its
 * pause is a person unless a voicemail phrase was in it; a long one is heard
 * out to its pause, its beep, or HEAR_OUT_MS, and is a machine unless a
 * person's phrase comes. Deciding on a person's phrase at once, not at their
 * pause, was as accurate on the set and keeps a later misheard voicemail
 * phrase ("voicemail" in "how may I help you") from hanging up on them.
 * `next` gives the far end's frames (undefined: none within the time left);
 * without `spot`, cadence and the beep alone decide.
 * `ms` counts the audio heard and any wait for the spotter.
 */
export async function detectAnsweredBy(next: () => Promise<AudioFrame | undefined>, spot?: SpotPhrases): Promise<AmdVerdict> {
  const detector = new MachineDetector();
  let words: GreetingWords | undefined;
  let audioMs = 0;
  let waitedMs = 0;
  const at = () => Math.round(audioMs + waitedMs);
  let verdict: AmdVerdict | undefined;
  let silence = 0;
  let tone = 0;
  // A person told by their words mid-sentence: our opening waits for them to finish.
  const byWords = (said: { outcome: "human" | "machine"; reason: string }): AmdVerdict => ({ ...said, ms: at(), ...(said.outcome === "human" && silence < HUMAN_PAUSE_MS ? { talking: true } : {}) });
  try {
    for (;;) {
      const frame = await next();
      if (!frame) break;
      if (spot && !words) {
        // A recogniser that cannot start (not installed) leaves cadence and the beep to decide.
        const rate = frame.sampleRate === 16000 ? 16000 : 8000;
        const open = spot;
        spot = undefined;
        words = await Promise.resolve()
          .then(() => open(rate, PHRASES))
          .then((s) => new GreetingWords(s), () => undefined);
      }
      words?.push(frame);
      const frameMs = (frame.pcm.length * 1000) / frame.sampleRate;
      audioMs += frameMs;
      const loud = frameDbfs(frame.pcm) >= SPEECH_DB;
      silence = loud ? 0 : silence + frameMs;
      const said = words?.decision();
      if (said) return byWords(said);
      if (!verdict) {
        verdict = detector.push(frame);
        if (!verdict) continue;
        if (!words || verdict.outcome === "unknown" || verdict.reason === "a beep") return verdict;
        if (verdict.outcome === "human") {
          waitedMs += await words.settle();
          const said = words.decision();
          return said?.outcome === "machine" ? { ...said, ms: at() } : { ...verdict, ms: at() };
        }
        // Long, and no phrase yet: heard out to its pause, its beep, or HEAR_OUT_MS.
        if (detector.paused) break;
        continue;
      }
      tone = loud && toneShare(frame) >= BEEP_RATIO ? tone + frameMs : 0;
      if (tone >= BEEP_MS) return { outcome: "machine", ms: at(), reason: "a beep" };
      if (silence >= HUMAN_PAUSE_MS || audioMs >= HEAR_OUT_MS) break;
    }
    // Heard out, or out of time: what the spotter has heard by now (it may lag a busy machine) decides before the cadence.
    if (words) waitedMs += await words.settle();
    const said = words?.decision();
    if (said) return byWords(said);
    return verdict ? { ...verdict, ms: at() } : { outcome: "unknown", ms: at(), reason: "no decision in time" };
  } finally {
    words?.close();
  }
}
