/**
 * Part of `npm run bench` (run with tsx: it uses the test fakes): the
 * realtime pipeline on a socketless 8 kHz transport on the shared pacer,
 * with our OpenAI GA client against the local protocol server.
 * - bridge overhead: a caller frame handed to the transport -> the model's
 *   server has it; the model's first audio delta of a reply sent -> the
 *   first frame of it leaves the transport (this includes waiting for the
 *   next 20 ms tick of the pacer: 0-20 ms by itself);
 * - truncation error on simulated barge-ins: where the model's item was cut
 *   (audio_end_ms) against how much of it the line sent before the cut,
 *   counted by the transport's far side.
 */
import { OpenAiRealtime, OpenAiRealtimeOptions } from "../src/realtime/openai.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { createLogger } from "../src/log.js";
import { percentile } from "../src/util/stats.js";
import { RealtimePipeline } from "../src/voice/realtime.js";
import { LoopTransport } from "../test/fakes/loop-transport.js";
import { FakeRealtimeVoice } from "../test/fakes/realtime.js";
import { GOOD_KEY } from "../test/fakes/vendors.js";

const BARGE_INS = Number(process.env.BENCH_BARGE_INS ?? 100);
const LINES = 4;
const TARGET_OVERHEAD_MS = 20;
const LONG = "Our opening hours are from nine in the morning to five in the afternoon, Monday to Friday. On Saturdays we open at ten.";

const until = async <T>(probe: () => T | undefined, what: string, ms = 15_000): Promise<T> => {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

const model = await FakeRealtimeVoice.start();
const voice = new OpenAiRealtime(OpenAiRealtimeOptions.parse({ apiKey: GOOD_KEY, baseUrl: model.baseUrl }));
const speech = await synthesizeAll(new FliteSynthesizer(), "What are your opening hours?", 8000);
const silence = new Int16Array(8000 * 0.6);
model.script = ["what are your opening hours"];
model.answer = (cause) => ("heard" in cause ? { say: LONG } : undefined);

const inMs: number[] = [];
const outMs: number[] = [];
const errors: number[] = [];

/** A line: a pipeline on its own transport, and the model's session it opened. */
async function open(): Promise<{ transport: LoopTransport; pipeline: RealtimePipeline; session: (typeof model.sessions)[number] }> {
  const transport = new LoopTransport(8000);
  const pipeline = await RealtimePipeline.start({ providerCallId: "bench", transport, narrowband: true, inbandDtmf: false, log: createLogger("silent"), emit: () => {}, voice, instructions: "", tools: [] });
  const session = await until(() => (model.sessions.at(-1)?.updates.length ? model.sessions.at(-1) : undefined), "the session");
  return { transport, pipeline, session };
}

/** One line's share of the barge-ins, one after another. */
async function line(n: number, { transport, pipeline, session }: Awaited<ReturnType<typeof open>>): Promise<void> {
  // Caller frames in -> at the model, in real time (50 frames), on the first line only.
  if (n === 0) {
    const before = session.appendsAt.length;
    const fedAt: number[] = [];
    for (let i = 0; i < 50; i += 1) {
      fedAt.push(performance.now());
      transport.feed(speech.subarray(i * 160, i * 160 + 160));
      await new Promise((r) => setTimeout(r, 20));
    }
    await until(() => (session.appendsAt.length >= before + 50 ? true : undefined), "the frames at the model");
    // Idle silence the transport gives readers may sit among them: pair each fed frame with the first append after it.
    for (const at of fedAt) {
      const got = session.appendsAt.slice(before).find((t) => t >= at);
      if (got !== undefined) inMs.push(got - at);
    }
    // Its answer: the first barge-in below cuts it.
    transport.feed(silence);
    await until(() => (session.spoken.length > 0 ? true : undefined), "the first answer");
  }
  for (let i = 0; i < BARGE_INS / LINES; i += 1) {
    const spoken = session.spoken.length;
    transport.feed(speech);
    transport.feed(silence);
    const reply = await until(() => session.spoken[spoken], "the answer");
    const first = await until(() => transport.sent.find((s) => s.frame && s.at >= reply.firstDeltaAt! - 1), "its first frame");
    outMs.push(first.at - reply.firstDeltaAt!);
    // Cut in after 200-1800 ms of it.
    const wait = 200 + ((i * 397 + n * 131) % 1600);
    await new Promise((r) => setTimeout(r, wait));
    const truncates = session.truncates.length;
    transport.feed(speech);
    const truncate = await until(() => session.truncates[truncates], "the truncate");
    await new Promise((r) => setTimeout(r, 60));
    // What the far side got of the reply: our frames from its first until the truncate arrived.
    const sent = transport.sent.filter((s) => s.frame && s.at >= first.at && s.at <= session.truncatesAt[truncates]!).length * 20;
    errors.push(truncate.audio_end_ms - sent);
    transport.feed(silence);
    await new Promise((r) => setTimeout(r, 200));
  }
  await pipeline.close(200);
}

console.log("");
console.log(`Realtime pipeline (our OpenAI GA client, the local protocol server; ${LINES} lines at once on one 8 kHz socketless transport each)`);
const lines = [];
for (let n = 0; n < LINES; n += 1) lines.push(await open());
await Promise.all(lines.map((l, n) => line(n, l)));
await model.close();
const p = (xs: number[], q: number) => percentile(xs, q).toFixed(1);
console.log(
  `bridge overhead: caller frame -> the model's server p50 ${p(inMs, 0.5)} ms, p95 ${p(inMs, 0.95)} ms (${inMs.length} frames); ` +
    `model's first delta -> our first frame out p50 ${p(outMs, 0.5)} ms, p95 ${p(outMs, 0.95)} ms (${outMs.length} replies; 0-20 ms of it is the next pacer tick); ` +
    `target <= ${TARGET_OVERHEAD_MS} ms p95 added: ratio ${(percentile(outMs, 0.95) / TARGET_OVERHEAD_MS).toFixed(2)}x out, ${(percentile(inMs, 0.95) / TARGET_OVERHEAD_MS).toFixed(2)}x in`,
);
const abs = errors.map(Math.abs);
console.log(
  `truncation on ${errors.length} barge-ins: cut at (audio_end_ms) minus what the line sent of the reply before the cut: median ${p(errors, 0.5)} ms, ` +
    `|error| p95 ${p(abs, 0.95)} ms, worst ${Math.max(...abs).toFixed(0)} ms (one frame is 20 ms)`,
);
