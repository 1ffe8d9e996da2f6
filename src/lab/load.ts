/**
 * `voicecall lab load`: N lab phones call the running service at once, each
 * says a sentence, and the run reports per call whether the greeting was
 * heard and the caller's words reached the transcript (word error), with
 * answer and greeting times, the service's memory before / at peak / after,
 * and what Asterisk has left behind (channels, bridges).
 */
import { VoiceCallClient } from "../server/client.js";
import type { CallRecord, CallView } from "../calls/types.js";
import { wordErrorRate } from "../speech/wer.js";
import type { Lab } from "./lab.js";
import { labCall, throughProxy } from "./phone.js";
import { percentile } from "../util/stats.js";

export interface LoadOptions {
  calls: number;
  /** What each phone says (flite speech at 8 kHz) and its text, for the word error. */
  say: Int16Array;
  sayText: string;
  /** Extensions dialled are firstExtension, firstExtension + 1, ...: each call is found by its number. */
  firstExtension?: number;
  holdMs?: number;
  /** Several instances on a shared store: every one's calls are collected (status goes to any; it answers for the others). */
  clients?: VoiceCallClient[];
  /** The phones dial this port on loopback, a record-routing proxy (Kamailio) in front of the PBX, instead of the lab's Asterisk. */
  proxyPort?: number;
  onProgress?: (line: string) => void;
}

export interface LoadCall {
  extension: string;
  callId?: string;
  /** The carrier's id of the call (with several Asterisks, it names the one the call landed on: ast1/…). */
  providerCallId?: string;
  /** sipp's verdict: the call went as scripted. */
  completed: boolean;
  answerMs?: number;
  greetingMs?: number;
  greeted: boolean;
  transcript: string;
  wordError?: number;
  /** Why words are missing, when the service said so (an unrecognised line). */
  unrecognised?: string;
  /** How long after the hang-up the caller's last words were recorded (recognition behind the calls). */
  wordsLateMs?: number;
}

export interface LoadReport {
  calls: LoadCall[];
  answerMs: Percentiles;
  greetingMs: Percentiles;
  rssMb: { before?: number; peak?: number; after?: number };
  leftover: { channels: number; bridges: number };
}

interface Percentiles {
  p50?: number;
  p95?: number;
  max?: number;
}

export async function runLoad(lab: Lab, client: VoiceCallClient, options: LoadOptions): Promise<LoadReport> {
  const serviceUrl = client.url;
  const progress = options.onProgress ?? (() => {});
  const first = options.firstExtension ?? 7000;
  const startedAt = new Date().toISOString();
  const rss: number[] = [];
  const before = await serviceRssMb(serviceUrl);
  const sampler = setInterval(() => void serviceRssMb(serviceUrl).then((mb) => mb !== undefined && rss.push(mb)), 250);
  const line = options.proxyPort === undefined ? lab : throughProxy(lab, options.proxyPort);
  progress(`load: ${options.calls} phones dial at once (extensions ${first}-${first + options.calls - 1})`);
  let results;
  try {
    results = await Promise.all(
      Array.from({ length: options.calls }, (_, i) =>
        labCall(line, String(first + i), { say: options.say, holdMs: options.holdMs ?? 15_000, viaProxy: options.proxyPort !== undefined }).catch((err: Error) => ({
          heard: new Int16Array(0),
          code: null,
          output: err.message,
          firstAudioMs: undefined,
          firstWordsMs: undefined,
        })),
      ),
    );
  } finally {
    clearInterval(sampler);
  }
  progress("load: every phone has hung up; collecting transcripts (a call whose words are not in yet is waited for, up to 32 s after its end)");
  const lists = await Promise.all((options.clients ?? [client]).map(async (c) => ((await c.call("voicecall.list", {})) as { calls: CallRecord[] }).calls));
  const mine = lists.flat().filter((c) => c.direction === "inbound" && c.createdAt >= startedAt);
  const calls: LoadCall[] = [];
  for (let i = 0; i < options.calls; i += 1) {
    const extension = String(first + i);
    const r = results[i]!;
    const record = mine.find((c) => c.to === extension);
    const view = record ? await settledView(client, record.callId) : undefined;
    const said = (view?.transcript ?? []).filter((t) => t.speaker === "caller");
    const spoken = said.filter((t) => t.kind === "speech");
    const transcript = spoken.map((t) => t.text).join(" ");
    const lateMs = view?.endedAt && spoken.length > 0 ? Date.parse(spoken.at(-1)!.at) - Date.parse(view.endedAt) : undefined;
    calls.push({
      extension,
      callId: record?.callId,
      providerCallId: record?.providerCallId,
      completed: r.code === 0,
      answerMs: r.firstAudioMs,
      greetingMs: r.firstWordsMs,
      greeted: r.firstWordsMs !== undefined,
      transcript,
      wordError: view ? wordErrorRate(options.sayText, transcript) : undefined,
      unrecognised: said.find((t) => t.kind === "unrecognised")?.text ?? (transcript ? undefined : (view?.endReason ?? (record ? undefined : "the service has no such call"))),
      ...(lateMs !== undefined && lateMs > 2000 ? { wordsLateMs: lateMs } : {}),
    });
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = await serviceRssMb(serviceUrl);
  return {
    calls,
    answerMs: percentiles(calls.map((c) => c.answerMs)),
    greetingMs: percentiles(calls.map((c) => c.greetingMs)),
    rssMb: { before, peak: rss.length ? Math.max(...rss) : undefined, after },
    leftover: await leftovers(lab),
  };
}

/**
 * What the service records within this long of a call's end: the caller's last words, or an
 * unrecognised line saying why not (the cascade gives recognition 30 s to catch up).
 */
const WORDS_SETTLE_MS = 32_000;

/** Quiet after a call's end and its newest caller line that counts as its words being in. */
const WORDS_QUIET_MS = 3000;

/**
 * The call once the recogniser has had its say: ended (the phones have hung up), with nothing new from the
 * caller for WORDS_QUIET_MS after the end and the newest caller line (read from their times, so calls long
 * over are not waited for again); a call with no caller line at all until WORDS_SETTLE_MS after its end.
 * Under load a sentence split at a pause has its last part recognised after the hang-up (collected as
 * soon as the first part was in, a call's words were cut to "I would like to put"), and with more callers
 * talking at once than the recogniser keeps up with, a call's words came 24 s after it ended (collected
 * 10 s after, they read as none).
 */
async function settledView(client: VoiceCallClient, callId: string): Promise<CallView | undefined> {
  const started = Date.now();
  for (;;) {
    const view = ((await client.call("voicecall.status", { callId })) as { call?: CallView }).call;
    if (!view) return view;
    const said = view.transcript.filter((t) => t.speaker === "caller");
    const now = Date.now();
    if (view.endedAt) {
      const ended = Date.parse(view.endedAt);
      const newest = Math.max(ended, ...said.map((t) => Date.parse(t.at)));
      if (now - ended >= WORDS_SETTLE_MS || (said.length > 0 && now - newest >= WORDS_QUIET_MS)) return view;
    } else if (now - started >= WORDS_SETTLE_MS) {
      // Not ended although its phone hung up: reported as it is.
      return view;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function serviceRssMb(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(new URL("/healthz", url), { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { process?: { rssBytes?: number } };
    return body.process?.rssBytes === undefined ? undefined : Math.round(body.process.rssBytes / 1e6);
  } catch {
    return undefined;
  }
}

async function leftovers(lab: Lab): Promise<{ channels: number; bridges: number }> {
  const count = async (what: string) => ((await (await fetch(`${lab.info.ariUrl}/ari/${what}`, { headers: lab.ariHeaders })).json()) as unknown[]).length;
  return { channels: await count("channels"), bridges: await count("bridges") };
}

function percentiles(values: Array<number | undefined>): Percentiles {
  const v = values.filter((x): x is number => x !== undefined);
  if (v.length === 0) return {};
  return { p50: percentile(v, 0.5), p95: percentile(v, 0.95), max: Math.max(...v) };
}

/** The report as lines for a terminal. */
export function formatLoad(r: LoadReport, sayText: string): string[] {
  const lines = [`ext   answered  greeting  words  word error  transcript (said: "${sayText}")`];
  for (const c of r.calls) {
    const ms = (v?: number) => (v === undefined ? "-" : `${v} ms`).padEnd(9);
    const wer = c.wordError === undefined ? "-" : `${Math.round(c.wordError * 100)}%`;
    lines.push(`${c.extension}  ${ms(c.answerMs)} ${ms(c.greetingMs)} ${c.transcript ? "yes" : "no "}    ${wer.padEnd(10)}  ${c.transcript || `(nothing${c.unrecognised ? `: ${c.unrecognised}` : ""})`}`);
  }
  const greeted = r.calls.filter((c) => c.greeted).length;
  const heard = r.calls.filter((c) => c.transcript).length;
  const late = r.calls.flatMap((c) => (c.wordsLateMs !== undefined ? [c.wordsLateMs] : []));
  if (late.length > 0) {
    lines.push(
      `recognition fell behind: the words of ${late.length} ${late.length === 1 ? "call were" : "calls were"} recorded up to ${Math.ceil(Math.max(...late) / 1000)} s after the caller hung up ` +
        "(more callers talking at once than the recogniser keeps up with: streaming.providers.pocketsphinx.workers, docs/performance.md)",
    );
  }
  lines.push(
    `${r.calls.length} calls: ${greeted} greeted, ${heard} transcribed, ${r.calls.filter((c) => c.completed).length} went as scripted`,
    `answer p50 ${r.answerMs.p50 ?? "-"} ms, p95 ${r.answerMs.p95 ?? "-"} ms; greeting p50 ${r.greetingMs.p50 ?? "-"} ms, p95 ${r.greetingMs.p95 ?? "-"} ms (from dialling)`,
    `service memory: ${r.rssMb.before ?? "?"} MB before, ${r.rssMb.peak ?? "?"} MB at peak, ${r.rssMb.after ?? "?"} MB after`,
    `left in Asterisk: ${r.leftover.channels} channels, ${r.leftover.bridges} bridges`,
  );
  return lines;
}
