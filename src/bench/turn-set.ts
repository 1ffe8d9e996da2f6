/**
 * A labelled set for turn-taking: callers who say one thing and stop, and
 * callers who pause mid-sentence (after "for", "um", "my name is", and at a
 * phrase boundary where the words so far could be a whole sentence), with
 * pauses of 400 to 1,200 ms, in four flite voices, through 8 kHz mu-law over
 * line noise. `runTurn` plays one sample into the real cascade pipeline
 * (voice detector, pocketsphinx, turn-taking) at the line's pace and answers
 * each turn at once with an instant synthesizer, as the bridge would.
 */
import type { AudioFrame } from "../audio/frame.js";
import { toFrames } from "../audio/frame.js";
import { sharedPacer } from "../audio/pacer.js";
import { PacedTransport } from "../audio/transport.js";
import { createLogger } from "../log.js";
import { FakeSynthesizer } from "../speech/fake.js";
import { FliteSynthesizer } from "../speech/flite.js";
import { synthesizeAll, type Transcriber } from "../speech/types.js";
import { CascadePipeline } from "../voice/cascade.js";
import type { TurnTakingOptions } from "../voice/turn-taking.js";
import { LINE_RATE, throughPhone, onLine, silence, trimSilence } from "./line-audio.js";

/** Where the caller pauses: what the words before the pause end on. */
export type PauseKind = "function word" | "filler" | "verb waiting for its object" | "phrase boundary";

export interface TurnSample {
  /** complete: one sentence, then silence; paused: a pause inside it. */
  label: "complete" | "paused";
  kind?: PauseKind;
  parts: string[];
  pauseMs?: number;
  voice: string;
  pcm: Int16Array;
  /** Where the last part starts, and where its last word ends (ms into pcm). */
  lastPartMs: number;
  lastWordMs: number;
}

export const COMPLETE = [
  "What time do you close tonight?",
  "I would like to book a table for two people.",
  "Please call me back tomorrow morning.",
  "Can I speak to the manager?",
  "Yes.",
  "No, thank you.",
  "I already paid that bill last week.",
  "That's all, thanks.",
];

export const PAUSED: Array<{ kind: PauseKind; parts: [string, string] }> = [
  { kind: "function word", parts: ["I would like to book a table for", "four people tonight."] },
  { kind: "function word", parts: ["I need a taxi to the", "airport please."] },
  { kind: "function word", parts: ["Can you tell me if", "the store is open today?"] },
  { kind: "function word", parts: ["I'd like to order a pizza and", "a large salad."] },
  { kind: "function word", parts: ["My flight leaves at", "six in the evening."] },
  { kind: "function word", parts: ["Could you send it to", "my office instead?"] },
  { kind: "filler", parts: ["I was calling about um", "my order from last week."] },
  { kind: "filler", parts: ["Let me see", "I think it was on Tuesday."] },
  { kind: "verb waiting for its object", parts: ["My name is", "Sam Smith."] },
  { kind: "verb waiting for its object", parts: ["The problem is", "my card was declined."] },
  { kind: "verb waiting for its object", parts: ["I was wondering", "if you have a room free."] },
  { kind: "phrase boundary", parts: ["I need a taxi", "for tomorrow morning."] },
  { kind: "phrase boundary", parts: ["I called yesterday", "about my bill."] },
];

export const VOICES = ["rms", "slt", "awb", "kal"];
const PAUSES = [400, 600, 800, 1000, 1200];
/** Silence after the caller's last word: long enough for every rule to end the turn. */
const TAIL_MS = 2500;


const ms = (samples: number) => (samples * 1000) / LINE_RATE;

/** One caller's turn: the parts said with `pauseMs` between them (one part: a complete sentence), then silence. */
export async function turnSample(parts: string[], voice: string, options: { pauseMs?: number; kind?: PauseKind; seed?: number } = {}): Promise<TurnSample> {
  const flite = new FliteSynthesizer({ voice });
  const speech = await Promise.all(parts.map(async (text) => trimSilence(await synthesizeAll(flite, text, LINE_RATE))));
  const lead = silence(300);
  const gap = silence(options.pauseMs ?? 0);
  const pieces = [lead, ...speech.flatMap((s, i) => (i === 0 ? [s] : [gap, s]))];
  const lastPart = pieces.slice(0, -1).reduce((n, p) => n + p.length, 0);
  return {
    label: parts.length > 1 ? "paused" : "complete",
    ...(options.kind ? { kind: options.kind } : {}),
    parts,
    ...(parts.length > 1 ? { pauseMs: options.pauseMs ?? 0 } : {}),
    voice,
    pcm: throughPhone(onLine([...pieces, silence(TAIL_MS)], options.seed ?? 1)),
    lastPartMs: ms(lastPart),
    lastWordMs: ms(lastPart + speech.at(-1)!.length),
  };
}

/** The whole set (or `limit` of each label). */
export async function turnSet(limit = Infinity): Promise<TurnSample[]> {
  const out: TurnSample[] = [];
  let seed = 7;
  let pauseIndex = 0;
  for (const voice of VOICES) {
    for (const text of COMPLETE) {
      if (out.filter((s) => s.label === "complete").length >= limit) break;
      out.push(await turnSample([text], voice, { seed: seed++ }));
    }
    for (const { kind, parts } of PAUSED) {
      if (out.filter((s) => s.label === "paused").length >= limit) break;
      out.push(await turnSample(parts, voice, { kind, pauseMs: PAUSES[pauseIndex++ % PAUSES.length]!, seed: seed++ }));
    }
  }
  return out;
}

/** A line with no socket: caller frames are played into it, our first frame out is timed. */
class BenchLine extends PacedTransport {
  firstReplyAt?: number;
  constructor() {
    super(LINE_RATE, sharedPacer);
    this.startClock();
  }
  protected send(frame: AudioFrame | undefined): void {
    if (frame && this.firstReplyAt === undefined) this.firstReplyAt = performance.now();
  }
  protected release(): void {}
  play(frame: AudioFrame): void {
    this.received(frame);
  }
}

export interface TurnResult {
  /** The turns the pipeline ended, with when (ms into the sample's audio, on the wall clock). */
  turns: Array<{ text: string; atMs: number }>;
  /** A turn ended before the caller's last part began: the caller was cut off. */
  cutOff: boolean;
  /** The caller's last word to our first audio of the answer to the turn that holds it. */
  replyMs?: number;
}

const sleepUntil = (t: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, t - performance.now())));

/** Plays one sample into a cascade pipeline at the line's pace; each turn is answered at once. */
export async function runTurn(sample: TurnSample, transcriber: Transcriber, turnTaking: TurnTakingOptions, silenceTimeoutMs: number): Promise<TurnResult> {
  const line = new BenchLine();
  const turns: TurnResult["turns"] = [];
  let start = 0;
  let answering: Promise<unknown> = Promise.resolve();
  const minSilenceMs = turnTaking.mode === "semantic" ? turnTaking.completeMs : silenceTimeoutMs;
  const pipeline = await CascadePipeline.start({
    providerCallId: "bench",
    transport: line,
    narrowband: true,
    inbandDtmf: false,
    log: createLogger("silent"),
    synthesizer: new FakeSynthesizer(20),
    transcriber,
    turnTaking,
    detector: { minSilenceMs },
    emit: (event) => {
      if (event.type !== "speech" || !event.text.trim()) return;
      turns.push({ text: event.text, atMs: performance.now() - start });
      // Only the answer to the last turn counts (an earlier one was a cut-off: its answer is cleared).
      line.clear();
      line.firstReplyAt = undefined;
      answering = pipeline.speak("Okay.", {});
    },
  });
  const frames = toFrames(sample.pcm, LINE_RATE);
  start = performance.now();
  for (const [i, frame] of frames.entries()) {
    await sleepUntil(start + i * 20);
    line.play(frame);
  }
  await answering;
  await pipeline.close();
  const last = turns.at(-1);
  const cutOff = turns.some((t) => t.atMs < sample.lastPartMs);
  const replyMs = last && line.firstReplyAt !== undefined && last.atMs >= sample.lastPartMs ? line.firstReplyAt - start - sample.lastWordMs : undefined;
  return { turns, cutOff, ...(replyMs !== undefined ? { replyMs } : {}) };
}

export interface TurnRuleReport {
  rule: string;
  samples: number;
  /** Paused samples cut off, of all paused; by where the pause was. */
  cutOffs: number;
  paused: number;
  cutOffsByKind: Record<string, { cut: number; of: number }>;
  /** Complete samples split into more than one turn. */
  split: number;
  replyMs: number[];
  results: Array<{ sample: TurnSample; result: TurnResult }>;
}

/** The whole set through one rule, `concurrency` samples at a time (each at the line's pace). */
export async function benchTurnRule(rule: string, set: TurnSample[], transcriber: Transcriber, turnTaking: TurnTakingOptions, silenceTimeoutMs: number, concurrency = 6): Promise<TurnRuleReport> {
  const results: TurnRuleReport["results"] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < set.length) {
        const sample = set[next++]!;
        results.push({ sample, result: await runTurn(sample, transcriber, turnTaking, silenceTimeoutMs) });
      }
    }),
  );
  const paused = results.filter((r) => r.sample.label === "paused");
  const cutOffsByKind: TurnRuleReport["cutOffsByKind"] = {};
  for (const r of paused) {
    const row = (cutOffsByKind[r.sample.kind!] ??= { cut: 0, of: 0 });
    row.of += 1;
    if (r.result.cutOff) row.cut += 1;
  }
  return {
    rule,
    samples: results.length,
    cutOffs: paused.filter((r) => r.result.cutOff).length,
    paused: paused.length,
    cutOffsByKind,
    split: results.filter((r) => r.sample.label === "complete" && r.result.turns.length > 1).length,
    replyMs: results.flatMap((r) => (r.result.replyMs !== undefined ? [r.result.replyMs] : [])),
    results,
  };
}
