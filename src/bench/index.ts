/**
 * `npm run bench`: every figure measured in this one run, printed with its
 * ratio to the target.
 */
import { cpus } from "node:os";
import { benchRtp, MACHINE, type RtpBenchRow } from "./rtp.js";
import { benchBridge, benchStt, benchSttLoad, benchTts, TTS_ENGINES, type SttLoadRow } from "./speech.js";
import { benchLabLoad, benchRestore, LOAD_SENTENCE } from "./load.js";
import { percentile } from "../util/stats.js";

const TARGET_CALLS_PER_CORE = 1000;
const TARGET_BARGE_IN_MS = 300;
const P99_LIMIT_MS = 5;
const sizes = (process.env.BENCH_CALLS ?? "100,200,300,400,500,600,800,1000,1500").split(",").map(Number);
const seconds = Number(process.env.BENCH_SECONDS ?? 4);

const fmt = (n: number, d = 2) => n.toFixed(d).padStart(8);
console.log(`RTP path: concurrent calls over loopback RTP (ulaw, 20 ms), ${seconds} s each after 1 s warm-up`);
console.log(`machine: ${MACHINE}, ${cpus()[0]?.model ?? "unknown CPU"}`);
console.log("   calls  tick p99 ms  spacing p99 ms  lost->peer  lost<-peer  cpu ms/call-s  cores used");
const rows: RtpBenchRow[] = [];
for (const n of sizes) {
  const r = await benchRtp(n, seconds);
  rows.push(r);
  console.log(
    `${String(n).padStart(8)}  ${fmt(r.tickP99Ms)}     ${fmt(r.spacingP99Ms)}        ${String(r.lostToPeer).padStart(8)}    ${String(r.lostFromPeer).padStart(8)}   ${fmt(r.cpuMsPerCallSecond, 3)}      ${fmt(r.coresUsed)}`,
  );
}
// One event loop runs on one core: the largest N it holds is the figure per core.
const ok = rows.filter((r) => r.tickP99Ms <= P99_LIMIT_MS && r.lostToPeer === 0 && r.lostFromPeer === 0);
const best = ok.reduce<RtpBenchRow | undefined>((a, r) => (!a || r.calls > a.calls ? r : a), undefined);
const perCore = best?.calls ?? 0;
console.log(
  best
    ? `largest N holding tick p99 <= ${P99_LIMIT_MS} ms with 0 lost: ${best.calls} calls (one event loop, ${best.coresUsed.toFixed(2)} cores of CPU time incl. kernel)`
    : `no N held tick p99 <= ${P99_LIMIT_MS} ms with 0 lost`,
);
console.log(`calls per core: ${perCore} (target ${TARGET_CALLS_PER_CORE}: ratio ${(perCore / TARGET_CALLS_PER_CORE).toFixed(2)}x)`);

const ratio = (value: number, target: number) => `${(value / target).toFixed(2)}x`;
const skipped = (what: string, err: unknown) => console.log(`${what}: skipped (${err instanceof Error ? err.message : String(err)})`);

console.log("");
console.log("Offline speech on this machine (8 kHz phone path)");
try {
  const r = await benchStt();
  console.log(
    `STT pocketsphinx real-time factor ${r.rtf.toFixed(3)} (${ratio(r.rtf, 1)} of real time), ` +
      `word error ${(r.wer * 100).toFixed(1)}% on ${r.audioSeconds.toFixed(0)} s of flite speech, model ${r.modelMb.toFixed(0)} MB (memory taken by the first stream)`,
  );
} catch (err) {
  skipped("STT pocketsphinx", err);
}
for (const [name, make] of TTS_ENGINES) {
  try {
    const r = await benchTts(make);
    console.log(
      `TTS ${name.padEnd(10)} real-time factor ${r.rtf.toFixed(3)} (${ratio(r.rtf, 1)} of real time), first frame ${r.firstFrameMs.toFixed(0)} ms, ` +
        `word error ${(r.wer * 100).toFixed(1)}% read back by pocketsphinx after 8 kHz mu-law`,
    );
  } catch (err) {
    skipped(`TTS ${name}`, err);
  }
}
try {
  const rows: SttLoadRow[] = [];
  for (const n of (process.env.BENCH_STT_STREAMS ?? "4,8,12").split(",").map(Number)) {
    const r = await benchSttLoad(n);
    rows.push(r);
    console.log(`STT pocketsphinx, ${String(n).padStart(2)} callers talking at once (utterances as the bus hands them): final words p95 ${r.lagP95Ms.toFixed(0)} ms after the sentence, backlog at the end ${r.drainMs.toFixed(0)} ms`);
  }
  const ok = rows.filter((r) => r.lagP95Ms < 1000 && r.drainMs < 500).map((r) => r.streams);
  console.log(`STT pocketsphinx keeps up with ${ok.length ? Math.max(...ok) : 0} callers talking at once (one recognition thread; final p95 < 1 s, no backlog)`);
  if (cpus().length >= 2) {
    const r = await benchSttLoad(16, 2);
    console.log(`STT pocketsphinx, 16 callers talking at once on 2 recognition threads (workers: 2): final words p95 ${r.lagP95Ms.toFixed(0)} ms, backlog ${r.drainMs.toFixed(0)} ms`);
  }
} catch (err) {
  skipped("STT pocketsphinx under load", err);
}

console.log("");
console.log("The bridge alone (instant fake recogniser, model and synthesizer; real RTP, voice detector, CallManager, HTTP responder)");
try {
  const r = await benchBridge(Number(process.env.BENCH_TURNS ?? 15));
  console.log(
    `end of caller speech -> first answer packet: p50 ${r.answerP50Ms.toFixed(0)} ms, p95 ${r.answerP95Ms.toFixed(0)} ms over ${r.turns} turns ` +
      `(of which ${r.endpointingMs} ms is the silence that ends an utterance; bridge p95 ${(r.answerP95Ms - r.endpointingMs).toFixed(0)} ms)`,
  );
  console.log(
    `barge-in, caller onset -> our audio stops at the phone: p50 ${r.stopP50Ms.toFixed(0)} ms, p95 ${r.stopP95Ms.toFixed(0)} ms over ${r.bargeIns} interruptions ` +
      `(the detector confirms speech after ${r.minSpeechMs} ms of speech-like frames; target ${TARGET_BARGE_IN_MS} ms: ratio ${ratio(r.stopP95Ms, TARGET_BARGE_IN_MS)})`,
  );
} catch (err) {
  skipped("bridge", err);
}

console.log("");
console.log("The call log: a restart with a long log (compacted to live calls and the newest 1,000 ended ones)");
{
  const first = benchRestore(20_000);
  const again = benchRestore(1_000);
  console.log(
    `20,000 calls logged: restored ${first.restored} (${first.archived} moved to a dated file) in ${first.ms.toFixed(0)} ms (target 1000 ms: ratio ${ratio(first.ms, 1000)}), ` +
      `memory +${first.rssMb.toFixed(0)} MB; an already compacted log of 1,000 calls: ${again.ms.toFixed(0)} ms`,
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
