/**
 * A labelled set for answering-machine detection: people answering
 * ("Hello?", "Hi, this is Sam.") who then wait, and voicemail greetings with
 * and without a beep, in four flite voices, at 8 kHz mu-law with faint line noise.
 * Used by the tests (a few) and the bench (all: the confusion matrix).
 */
import { detectAnsweredBy, MachineDetector, type AmdOutcome, type AmdVerdict } from "../audio/amd.js";
import { PocketsphinxTranscriber } from "../speech/pocketsphinx.js";
import { FliteSynthesizer } from "../speech/flite.js";
import { synthesizeAll } from "../speech/types.js";
import { percentile } from "../util/stats.js";
import { LINE_RATE, throughPhone, onLine as join, silence, tone, trimSilence } from "./line-audio.js";

export interface AmdSample {
  label: Exclude<AmdOutcome, "unknown">;
  text: string;
  voice: string;
  beepHz?: number;
  pcm: Int16Array;
  /** Where its speech ends (ms into pcm). */
  speechEndMs: number;
}

export const HUMAN_ANSWERS = [
  "Hello?",
  "Hello, who is this?",
  "Yes?",
  "Hi, this is Sam.",
  "Hello, Sam speaking.",
  "Good morning?",
  // A person who answers at length, as a business line does: the hard case for greeting-length rules.
  "Good afternoon, Smith and Partners, Sam speaking, how may I help you?",
];
export const MACHINE_GREETINGS = [
  "Hi, you've reached Sam. I can't take your call right now. Please leave a message after the tone.",
  "The person you are calling is not available. Please leave your message after the beep.",
  "Hello, this is the Smith family. We are not home right now. Leave a message and we will call you back.",
  "You have reached the voicemail of extension two hundred. Please leave a message.",
  // A short greeting: only its beep gives it away.
  "Leave a message.",
];
export const VOICES = ["rms", "slt", "awb", "kal"];
const BEEPS = [1000, 850, 1400, undefined];
const RATE = LINE_RATE;
let spotter: PocketsphinxTranscriber | undefined;

/** Where the synthesizer's speech ends, in ms (it leaves silence after it). */
const lastSound = (speech: Int16Array): number => {
  const sound = trimSilence(speech);
  return (sound.byteOffset - speech.byteOffset) / 2 / (RATE / 1000) + sound.length / (RATE / 1000);
};

/** The whole set (or `limit` of each label): what the far end sends from the answer on. */
export async function amdSet(limit = Infinity): Promise<AmdSample[]> {
  const out: AmdSample[] = [];
  let seed = 1;
  for (const voice of VOICES) {
    const flite = new FliteSynthesizer({ voice });
    for (const text of HUMAN_ANSWERS) {
      if (out.filter((s) => s.label === "human").length >= limit) break;
      const speech = await synthesizeAll(flite, text, RATE);
      out.push({ label: "human", text, voice, speechEndMs: 300 + lastSound(speech), pcm: throughPhone(join([silence(300), speech, silence(4000)], seed++)) });
    }
    for (const [i, text] of MACHINE_GREETINGS.entries()) {
      if (out.filter((s) => s.label === "machine").length >= limit) break;
      const speech = await synthesizeAll(flite, text, RATE);
      const beepHz = BEEPS[(i + VOICES.indexOf(voice)) % BEEPS.length];
      out.push({ label: "machine", text, voice, ...(beepHz ? { beepHz } : {}), speechEndMs: 300 + lastSound(speech), pcm: throughPhone(join([silence(300), speech, silence(400), beepHz ? tone(beepHz, 400) : silence(0), silence(3000)], seed++)) });
    }
  }
  return out;
}

/** What cadence and the beep alone decide on a sample, fed as 20 ms frames (at most 10 s). */
export function detect(pcm: Int16Array, sampleRate: 8000 | 16000 = RATE): AmdVerdict {
  const detector = new MachineDetector();
  const frame = sampleRate / 50;
  for (let at = 0; at + frame <= pcm.length && at < sampleRate * 10; at += frame) {
    const verdict = detector.push({ pcm: pcm.subarray(at, at + frame), sampleRate });
    if (verdict) return verdict;
  }
  return { outcome: "unknown", ms: Math.round((pcm.length / sampleRate) * 1000), reason: "no decision" };
}

/**
 * What the whole detection decides (with the offline recogniser spotting
 * phrases, as on a call). The frames come at the line's pace: the spotter
 * hears the greeting as it comes, so a faster feed would be judged on words
 * not yet decoded.
 */
export function detectWithWords(pcm: Int16Array, sampleRate: 8000 | 16000 = RATE): Promise<AmdVerdict> {
  const frame = sampleRate / 50;
  const started = performance.now();
  let at = 0;
  const next = async () => {
    if (at + frame > pcm.length || at >= sampleRate * 10) return undefined;
    const due = started + (at / sampleRate) * 1000;
    if (due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
    const out = { pcm: pcm.subarray(at, at + frame), sampleRate };
    at += frame;
    return out;
  };
  return detectAnsweredBy(next, (rate, phrases) => (spotter ??= new PocketsphinxTranscriber()).spot({ sampleRate: rate, narrowband: true }, phrases));
}

/** The bench's report: the confusion matrix, decision times, and the quiet a person hears; `ratio` prints measured against target. */
export async function benchAmd(ratio: (value: number, of: number) => string): Promise<void> {
  console.log("Answering-machine detection on the bus: the labelled set (src/bench/amd-set.ts: people answering and waiting, voicemail greetings with and without a beep, four flite voices, 8 kHz mu-law with line noise)");
  const set = await amdSet();
  const report = (name: string, rows: Array<{ label: string; verdict: { outcome: string; ms: number } }>) => {
    const count = (label: string, outcome: string) => rows.filter((r) => r.label === label && r.verdict.outcome === outcome).length;
    console.log(`${name}:   truth   | -> human  machine  unknown`);
    for (const label of ["human", "machine"]) console.log(`${" ".repeat(name.length + 1)}   ${label.padEnd(7)} |   ${String(count(label, "human")).padStart(5)}  ${String(count(label, "machine")).padStart(7)}  ${String(count(label, "unknown")).padStart(7)}`);
    const right = rows.filter((r) => r.verdict.outcome === r.label).length / rows.length;
    const people = rows.filter((r) => r.label === "human").map((r) => r.verdict.ms);
    const machines = rows.filter((r) => r.label === "machine").map((r) => r.verdict.ms);
    const p95 = percentile(people, 0.95);
    console.log(
      `${" ".repeat(name.length + 1)} right ${(right * 100).toFixed(1)}% of ${rows.length} (target 95%: ratio ${ratio(right, 0.95)}); decision for people p50 ${percentile(people, 0.5).toFixed(0)} ms, p95 ${p95.toFixed(0)} ms ` +
        `(target 3000 ms: ratio ${ratio(p95, 3000)}), for machines p50 ${percentile(machines, 0.5).toFixed(0)} ms`,
    );
  };
  report("cadence and beep alone", set.map((s) => ({ label: s.label, verdict: detect(s.pcm) })));
  // At the line's pace (the spotter hears the greeting as it comes), six at a time.
  const worded: Array<{ label: string; text: string; speechEndMs: number; verdict: AmdVerdict }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 6 }, async () => {
      while (next < set.length) {
        const s = set[next++]!;
        worded.push({ label: s.label, text: s.text, speechEndMs: s.speechEndMs, verdict: await detectWithWords(s.pcm) });
      }
    }),
  );
  report("with the phrases the recogniser spots (as on a call)", worded);
  const people = worded.filter((r) => r.label === "human" && r.verdict.outcome === "human");
  const short = people.filter((r) => r.text !== HUMAN_ANSWERS.at(-1)).map((r) => r.verdict.ms);
  // What a person hears: the quiet from their last word to our opening (told mid-sentence, the opening waits for 400 ms of their quiet).
  const waits = people.map((r) => Math.max(r.verdict.talking ? 400 : 0, r.verdict.ms - r.speechEndMs));
  console.log(
    `people told right: decision p95 ${percentile(short, 0.95).toFixed(0)} ms for the ${short.length} who answer with a short greeting (the others answer at length, as a business line does); ` +
      `quiet a person hears after their last word before our opening: p50 ${percentile(waits, 0.5).toFixed(0)} ms, p95 ${percentile(waits, 0.95).toFixed(0)} ms`,
  );
  console.log("a synthetic set: real greetings, line noise and people are harder; the times include any wait for the recogniser");
}
