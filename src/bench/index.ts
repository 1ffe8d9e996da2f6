/**
 * `npm run bench`: every figure measured in this one run, printed with its
 * ratio to the target and, beside it, a ceiling measured in the same run on
 * the same machine (the bare UDP loop for the RTP path, the engine alone for
 * speech, a bare read of the same file for the call log). The absolute
 * figures move with the machine's speed of the day; the ratios to the
 * ceilings should not.
 */
import { cpus } from "node:os";
import { benchRtp, MACHINE, type RtpBenchRow } from "./rtp.js";
import { benchBridge, benchStt, benchSttAlone, benchSttLoad, benchTts, benchTtsAlone, TTS_ENGINES, type SttLoadRow } from "./speech.js";
import { benchLabLoad, benchRestore, LOAD_SENTENCE } from "./load.js";
import { benchInstances, benchStoreWrites } from "./cluster.js";
import { percentile } from "../util/stats.js";
import { benchAmd } from "./amd-set.js";
import { benchTurnRule, PAUSED, turnSet, type TurnRuleReport } from "./turn-set.js";
import { PocketsphinxTranscriber } from "../speech/pocketsphinx.js";
import { FakeSynthesizer } from "../speech/fake.js";
import { CascadePipeline } from "../voice/cascade.js";
import { DEFAULT_TURN_TAKING } from "../voice/turn-taking.js";
import { DEFAULT_DETECTOR } from "../audio/vad.js";

const TARGET_CALLS_PER_CORE = 1000;
const TARGET_BARGE_IN_MS = 300;
const P99_LIMIT_MS = 5;
const sizes = (process.env.BENCH_CALLS ?? "100,300,500,800,1000,1500").split(",").map(Number);
const seconds = Number(process.env.BENCH_SECONDS ?? 4);

const fmt = (n: number, d = 2) => n.toFixed(d).padStart(8);
const ratio = (value: number, of: number) => `${(value / of).toFixed(2)}x`;
const skipped = (what: string, err: unknown) => console.log(`${what}: skipped (${err instanceof Error ? err.message : String(err)})`);

console.log(`RTP path: concurrent calls over loopback RTP (ulaw, 20 ms), ${seconds} s each after 1 s warm-up`);
console.log(`machine: ${MACHINE}, ${cpus()[0]?.model ?? "unknown CPU"}`);
console.log("ceiling: the bare loop, the same sockets and pacer sending the same packets at the same rate with no processing");
console.log("   calls | ours: tick p99 ms  lost  cpu ms/call-s | bare: tick p99 ms  cpu ms/call-s | cpu ours/bare");
const rows: Array<{ ours: RtpBenchRow; bare: RtpBenchRow }> = [];
for (const n of sizes) {
  const ours = await benchRtp(n, seconds, "ours");
  const bare = await benchRtp(n, seconds, "bare");
  rows.push({ ours, bare });
  console.log(
    `${String(n).padStart(8)} |   ${fmt(ours.tickP99Ms)}  ${String(ours.lostToPeer + ours.lostFromPeer).padStart(4)}   ${fmt(ours.cpuMsPerCallSecond, 3)} |   ${fmt(bare.tickP99Ms)}   ${fmt(bare.cpuMsPerCallSecond, 3)} |   ${ratio(ours.cpuMsPerCallSecond, bare.cpuMsPerCallSecond)}`,
  );
}
// One event loop runs on one core: the largest N it holds is the figure per core.
const held = (r: RtpBenchRow) => r.tickP99Ms <= P99_LIMIT_MS && r.lostToPeer === 0 && r.lostFromPeer === 0;
const largest = (pick: (row: { ours: RtpBenchRow; bare: RtpBenchRow }) => RtpBenchRow) => Math.max(0, ...rows.map(pick).filter(held).map((r) => r.calls));
const perCore = largest((r) => r.ours);
const barePerCore = largest((r) => r.bare);
console.log(
  `calls per core (largest N holding tick p99 <= ${P99_LIMIT_MS} ms with 0 lost): ${perCore} (target ${TARGET_CALLS_PER_CORE}: ratio ${ratio(perCore, TARGET_CALLS_PER_CORE)}); ` +
    `the bare loop held ${barePerCore}${barePerCore === Math.max(...sizes) ? " (the largest N tried)" : ""} (a threshold on a tail: it moves between runs; the CPU figure below is the steady one)`,
);
// The ratio that survives a noisy machine: ours and the bare loop measured in turn, several times, at one size.
const PAIR_CALLS = Number(process.env.BENCH_PAIR_CALLS ?? 500);
const pairs: Array<{ ours: number; bare: number }> = [];
for (let i = 0; i < Number(process.env.BENCH_PAIRS ?? 5); i += 1) {
  const ours = await benchRtp(PAIR_CALLS, 3, "ours");
  const bare = await benchRtp(PAIR_CALLS, 3, "bare");
  pairs.push({ ours: ours.cpuMsPerCallSecond, bare: bare.cpuMsPerCallSecond });
}
const cpuRatios = pairs.map((p) => p.ours / p.bare);
const oursCpu = percentile(pairs.map((p) => p.ours), 0.5);
const bareCpu = percentile(pairs.map((p) => p.bare), 0.5);
console.log(
  `CPU per call-second at ${PAIR_CALLS} calls, ${pairs.length} runs of each in turn: ours ${oursCpu.toFixed(3)} ms (${Math.round(1000 / oursCpu)} calls per core if CPU were the only limit), ` +
    `the bare loop ${bareCpu.toFixed(3)} ms (${Math.round(1000 / bareCpu)}): ours / bare ${percentile(cpuRatios, 0.5).toFixed(2)}x (median; runs ${Math.min(...cpuRatios).toFixed(2)}-${Math.max(...cpuRatios).toFixed(2)}x)`,
);

console.log("");
console.log("Offline speech on this machine (8 kHz phone path); ceiling: the engine alone on one stream, in the same run");
try {
  const r = await benchStt();
  const alone = await benchSttAlone();
  console.log(
    `STT pocketsphinx real-time factor ${r.rtf.toFixed(3)} (target < 1: ${ratio(r.rtf, 1)}), word error ${(r.wer * 100).toFixed(1)}% on ${r.audioSeconds.toFixed(0)} s of flite speech, ` +
      `model ${r.modelMb.toFixed(0)} MB; the decoder alone ${alone.rtf.toFixed(3)} (word error ${(alone.wer * 100).toFixed(1)}%): ratio ${ratio(r.rtf, alone.rtf)}`,
  );
  try {
    const loads: SttLoadRow[] = [];
    for (const n of (process.env.BENCH_STT_STREAMS ?? "4,8,12").split(",").map(Number)) {
      const row = await benchSttLoad(n);
      loads.push(row);
      console.log(`STT pocketsphinx, ${String(n).padStart(2)} callers talking at once (utterances as the bus hands them): final words p95 ${row.lagP95Ms.toFixed(0)} ms after the sentence, backlog at the end ${row.drainMs.toFixed(0)} ms`);
    }
    const kept = loads.filter((l) => l.lagP95Ms < 1000 && l.drainMs < 500).map((l) => l.streams);
    const keeps = kept.length ? Math.max(...kept) : 0;
    const ceiling = 1 / alone.rtf;
    console.log(
      `STT pocketsphinx keeps up with ${keeps} callers talking at once on one recognition thread (final p95 < 1 s, no backlog); ` +
        `the decoder alone decodes ${ceiling.toFixed(1)} streams' worth of real time on one core: ratio ${ratio(keeps, ceiling)}` +
        (loads.length > 1 ? ` (tried in steps of ${loads[1]!.streams - loads[0]!.streams} callers)` : ""),
    );
    if (cpus().length >= 2) {
      const two = await benchSttLoad(16, 2);
      console.log(`STT pocketsphinx, 16 callers talking at once on 2 recognition threads (workers: 2): final words p95 ${two.lagP95Ms.toFixed(0)} ms, backlog ${two.drainMs.toFixed(0)} ms`);
    }
  } catch (err) {
    skipped("STT pocketsphinx under load", err);
  }
} catch (err) {
  skipped("STT pocketsphinx", err);
}
for (const [name, make] of TTS_ENGINES) {
  try {
    const r = await benchTts(make);
    const alone = benchTtsAlone(name);
    console.log(
      `TTS ${name.padEnd(10)} real-time factor ${r.rtf.toFixed(3)} (target < 1: ${ratio(r.rtf, 1)}), first frame ${r.firstFrameMs.toFixed(0)} ms, ` +
        `word error ${(r.wer * 100).toFixed(1)}% read back by pocketsphinx after 8 kHz mu-law; the command alone ${alone.rtf.toFixed(3)}: ratio ${ratio(r.rtf, alone.rtf)}`,
    );
  } catch (err) {
    skipped(`TTS ${name}`, err);
  }
}

console.log("");
console.log("The bridge alone (instant fake recogniser, model and synthesizer; real RTP, voice detector, CallManager, HTTP responder)");
try {
  const r = await benchBridge(Number(process.env.BENCH_TURNS ?? 15));
  console.log(
    `end of caller speech -> first answer packet: p50 ${r.answerP50Ms.toFixed(0)} ms, p95 ${r.answerP95Ms.toFixed(0)} ms over ${r.turns} turns ` +
      `(of which ${r.endpointingMs} ms is the pause that ends a turn whose words sound complete: the floor; above it p95 ${(r.answerP95Ms - r.endpointingMs).toFixed(0)} ms)`,
  );
  console.log(
    `barge-in, caller onset -> our audio stops at the phone: p50 ${r.stopP50Ms.toFixed(0)} ms, p95 ${r.stopP95Ms.toFixed(0)} ms over ${r.bargeIns} interruptions ` +
      `(the detector confirms speech after ${r.minSpeechMs} ms of speech-like frames; target ${TARGET_BARGE_IN_MS} ms: ratio ${ratio(r.stopP95Ms, TARGET_BARGE_IN_MS)})`,
  );
} catch (err) {
  skipped("bridge", err);
}

console.log("");
console.log("The call log: a restart with a long log (compacted to live calls and the newest 1,000 ended ones); ceiling: the same file read and parsed, nothing else");
{
  const first = benchRestore(20_000);
  // A short job: the median of five runs.
  const fives = Array.from({ length: 5 }, () => benchRestore(1_000));
  const again = { ms: percentile(fives.map((r) => r.ms), 0.5), bareMs: percentile(fives.map((r) => r.bareMs), 0.5) };
  console.log(
    `20,000 calls logged: restored ${first.restored} (${first.archived} moved to a dated file) in ${first.ms.toFixed(0)} ms (target 1000 ms: ratio ${ratio(first.ms, 1000)}), ` +
      `memory +${first.rssMb.toFixed(0)} MB; the bare parse ${first.bareMs.toFixed(0)} ms: ratio ${ratio(first.ms, first.bareMs)}; ` +
      `an already compacted log of 1,000 calls (median of 5): ${again.ms.toFixed(1)} ms, its bare parse ${again.bareMs.toFixed(1)} ms: ratio ${ratio(again.ms, again.bareMs)}`,
  );
}

console.log("");
console.log(`The lab under load: N lab phones call the real PBX at once and each says "${LOAD_SENTENCE}" (voicecall lab load; offline speech)`);
try {
  for (const { calls, report } of await benchLabLoad((process.env.BENCH_LOAD_CALLS ?? "20,50").split(",").map(Number))) {
    const greeted = report.calls.filter((c) => c.greeted).length;
    const heard = report.calls.filter((c) => c.transcript).length;
    const wer = report.calls.map((c) => c.wordError ?? 1);
    console.log(
      `${String(calls).padStart(3)} calls: ${greeted} greeted, ${heard} transcribed (word error median ${(percentile(wer, 0.5) * 100).toFixed(0)}%, worst ${(Math.max(...wer) * 100).toFixed(0)}%); ` +
        `answer p95 ${report.answerMs.p95 ?? "-"} ms, first greeting audio p95 ${report.greetingMs.p95 ?? "-"} ms from dialling (target 1000 ms: ratio ${ratio(report.greetingMs.p95 ?? Infinity, 1000)}); ` +
        `service memory ${report.rssMb.before} -> peak ${report.rssMb.peak} -> ${report.rssMb.after} MB (target peak 600 MB at 20 calls); left in Asterisk: ${report.leftover.channels} channels, ${report.leftover.bridges} bridges`,
    );
  }
} catch (err) {
  skipped("lab load", err);
}

console.log("");
console.log("Several instances: what a transcript line costs in each store, and lab phones calling the PBX at once with one instance and with two on one PostgreSQL (each the built service in its own process)");
try {
  for (const r of await benchStoreWrites(Number(process.env.BENCH_STORE_LINES ?? 5000))) {
    console.log(
      `store ${r.store.padEnd(8)} ${r.lines} lines back to back: ${r.usPerLine.toFixed(1)} µs per line until the last is ${r.store === "jsonl" ? "in the file (no fsync)" : "committed (fsync on)"}, ` +
        `this process's CPU ${r.cpuUsPerLine.toFixed(1)} µs per line; one line alone: ${r.lagP50Ms.toFixed(2)} ms p50 until ${r.store === "jsonl" ? "written (the call waits for it)" : "committed (written behind the call)"}`,
    );
  }
} catch (err) {
  skipped("store writes", err);
}
try {
  const rows = await benchInstances(Number(process.env.BENCH_CLUSTER_CALLS ?? 20));
  for (const r of rows) {
    const greeted = r.report.calls.filter((c) => c.greeted).length;
    const heard = r.report.calls.filter((c) => c.transcript).length;
    console.log(
      `${r.instances} instance${r.instances === 1 ? " " : "s"}, ${r.calls} phones at once: ${r.setupPerSecond.toFixed(1)} calls set up per second (the last answered ${Math.max(...r.report.calls.map((c) => c.answerMs ?? 0))} ms after dialling), ` +
        `greeting p95 ${r.report.greetingMs.p95 ?? "-"} ms; ${greeted} greeted, ${heard} transcribed; lease or take-over messages: ${r.leaseTrouble.length ? r.leaseTrouble.join(" / ") : "none"}`,
    );
  }
  const [one, two] = rows;
  if (one && two) {
    console.log(
      `two instances against one in this run: setup rate ${ratio(two.setupPerSecond, one.setupPerSecond)}, greeting p95 ${ratio(two.report.greetingMs.p95 ?? Infinity, one.report.greetingMs.p95 ?? 1)} ` +
        "(one machine of 2 cores runs both instances, Asterisk and the phones: a second machine is where a second instance adds room)",
    );
  }
} catch (err) {
  skipped("one and two instances", err);
}

console.log("");
await benchAmd(ratio);

console.log("");
console.log(
  "Turn-taking: the labelled pause set (src/bench/turn-set.ts: complete sentences, and sentences with a 400-1,200 ms pause after a function word, a filler, " +
    "a verb waiting for its object or at a phrase boundary; four flite voices, 8 kHz mu-law over line noise) through the cascade (detector, pocketsphinx, turn-taking) at the line's pace, each turn answered at once",
);
try {
  const set = await turnSet();
  const transcriber = new PocketsphinxTranscriber({ workers: 2 });
  await CascadePipeline.warm({ synthesizer: new FakeSynthesizer(), transcriber, sampleRate: 8000, lines: [] });
  const concurrency = Number(process.env.BENCH_TURN_STREAMS ?? 4);
  const fixed = DEFAULT_DETECTOR.minSilenceMs;
  const rules: TurnRuleReport[] = [
    await benchTurnRule(`semantic (${DEFAULT_TURN_TAKING.completeMs}/${DEFAULT_TURN_TAKING.openMs}/${DEFAULT_TURN_TAKING.trailingMs} ms)`, set, transcriber, DEFAULT_TURN_TAKING, fixed, concurrency),
    await benchTurnRule(`silence ${fixed} ms (before)`, set, transcriber, { ...DEFAULT_TURN_TAKING, mode: "silence" }, fixed, concurrency),
  ];
  const kinds = [...new Set(PAUSED.map((p) => p.kind))];
  for (const r of rules) {
    const p50 = percentile(r.replyMs, 0.5);
    const cut = r.cutOffs / r.paused;
    console.log(
      `${r.rule.padEnd(28)} false cut-offs ${r.cutOffs}/${r.paused} paused (${(cut * 100).toFixed(1)}%, target 5%: ratio ${ratio(cut, 0.05)}; ` +
        kinds.map((k) => `${k} ${r.cutOffsByKind[k]?.cut ?? 0}/${r.cutOffsByKind[k]?.of ?? 0}`).join(", ") +
        `), complete ones split ${r.split}; caller's last word -> our first audio p50 ${p50.toFixed(0)} ms (target 350 ms: ratio ${ratio(p50, 350)}), p95 ${percentile(r.replyMs, 0.95).toFixed(0)} ms over ${r.replyMs.length}`,
    );
  }
  const [semantic, silence] = rules as [TurnRuleReport, TurnRuleReport];
  console.log(
    `semantic against silence in this run: cut-offs ${ratio(semantic.cutOffs || 0.5, silence.cutOffs || 0.5)}, reply p50 ${ratio(percentile(semantic.replyMs, 0.5), percentile(silence.replyMs, 0.5))} ` +
      `(${concurrency} samples at once; what the semantic rule still gets wrong: pauses at a phrase boundary, where the words before are a whole sentence, and words pocketsphinx mishears)`,
  );
} catch (err) {
  skipped("turn-taking", err);
}
