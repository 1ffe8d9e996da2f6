/**
 * Speech benchmarks: real-time factors of the offline engines, and the
 * bridge itself with instant fake recognition, model and synthesis: the time
 * from the end of caller speech to the first audio packet of the answer, and
 * how fast our audio stops when the caller cuts in. The bridge runs the real
 * path: RTP in, the cascade pipeline (voice detector, recogniser, synthesizer), CallManager, the auto-responder
 * over HTTP, synthesizer, RTP out to a phone socket.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { concatPcm } from "../audio/frame.js";
import { decodeG711, encodeG711 } from "../audio/g711.js";
import { Resampler } from "../audio/resample.js";
import { CallManager } from "../calls/manager.js";
import { Responder } from "../calls/responder.js";
import { JsonlStore } from "../store/jsonl.js";
import { resolveConfig } from "../configure.js";
import { defaultStoreDir } from "../config/load.js";
import { PhoneAudio } from "../lab/phone-audio.js";
import { createLogger } from "../log.js";
import type { VoiceCallConfig } from "../config/schema.js";
import { MediaCarrier, type MediaCall } from "../providers/media-carrier.js";
import { RtpUdpTransport } from "../rtp/udp-transport.js";
import { EspeakSynthesizer } from "../speech/espeak.js";
import { FakeSynthesizer, FakeTranscriber } from "../speech/fake.js";
import { CascadeVoices } from "../voice/cascade.js";
import { FliteSynthesizer } from "../speech/flite.js";
import { PocketsphinxTranscriber, transcribePcm } from "../speech/pocketsphinx.js";
import { SphinxDecoder } from "../speech/pocketsphinx-decoder.js";
import { synthesizeAll, type Synthesizer, type TranscriptEvent } from "../speech/types.js";
import { readWavPcm16 } from "../speech/wav.js";
import { wordErrorRate } from "../speech/wer.js";
import { percentile } from "../util/stats.js";

const PARAGRAPH = [
  "Please call me back tomorrow morning at nine.",
  "I would like to book a table for two people.",
  "This is your reminder to water the plants today.",
  "Our opening hours are from nine to five on weekdays.",
  "Can you tell me where the nearest station is?",
];

export interface TtsRow {
  engine: string;
  rtf: number;
  firstFrameMs: number;
  /** Word error of its speech sent through 8 kHz mu-law and read back by pocketsphinx (intelligibility on the phone). */
  wer: number;
}

/** The paragraph through our synthesizer, three times (its real-time factor and first frame: the medians), and the first run read back. */
export async function benchTts(make: () => Synthesizer): Promise<TtsRow> {
  const tts = make();
  const runs: Array<{ rtf: number; first: number; audio: Int16Array[] }> = [];
  for (let i = 0; i < RUNS; i += 1) {
    const started = performance.now();
    let first = 0;
    const audio: Int16Array[] = [];
    for await (const f of tts.synthesize(PARAGRAPH.join(" "), { sampleRate: 8000 })) {
      first ||= performance.now() - started;
      audio.push(decodeG711("ulaw", encodeG711("ulaw", f.pcm)));
    }
    runs.push({ rtf: (performance.now() - started) / 1000 / ((audio.length * 20) / 1000), first, audio });
  }
  const heard = await transcribePcm(concatPcm(runs[0]!.audio), 8000);
  return {
    engine: tts.id,
    rtf: percentile(runs.map((r) => r.rtf), 0.5),
    firstFrameMs: percentile(runs.map((r) => r.first), 0.5),
    wer: wordErrorRate(PARAGRAPH.join(" "), heard),
  };
}

/** Runs of each synthesis measure (ours and the command alone), whose median is printed: one run of a short job is noise. */
const RUNS = 3;

export interface SttRow {
  rtf: number;
  wer: number;
  modelMb: number;
  audioSeconds: number;
}

/** The paragraph as a caller's phone sends it: flite at 8 kHz through mu-law, 0.8 s of silence after each sentence. */
async function phoneParagraph(): Promise<Int16Array[]> {
  const audio: Int16Array[] = [];
  for (const sentence of PARAGRAPH) {
    for await (const f of new FliteSynthesizer().synthesize(sentence, { sampleRate: 8000 })) audio.push(decodeG711("ulaw", encodeG711("ulaw", f.pcm)));
    for (let i = 0; i < 40; i += 1) audio.push(new Int16Array(160));
  }
  return audio;
}

/** pocketsphinx on flite speech sent through the phone path (8 kHz mu-law), as fast as it decodes, through our recognition stream. */
export async function benchStt(): Promise<SttRow> {
  const audio = await phoneParagraph();
  const rss0 = process.memoryUsage().rss;
  const stream = await new PocketsphinxTranscriber().stream({ sampleRate: 8000 });
  const modelMb = (process.memoryUsage().rss - rss0) / 1e6;
  const finals: string[] = [];
  const started = performance.now();
  const reading = (async () => {
    for await (const e of stream.events()) if (e.type === "final") finals.push(e.text);
  })();
  for (const pcm of audio) stream.pushFrame({ pcm, sampleRate: 8000 });
  stream.endInput();
  await reading;
  const seconds = (performance.now() - started) / 1000;
  stream.close();
  const audioSeconds = (audio.length * 20) / 1000;
  return { rtf: seconds / audioSeconds, wer: wordErrorRate(PARAGRAPH.join(" "), finals.join(" ")), modelMb, audioSeconds };
}

/**
 * The ceiling for recognition in the same run: the engine alone on one
 * stream. The same audio, resampled to the model's 16 kHz beforehand, goes
 * straight into one pocketsphinx decoder on this thread in the same 100 ms
 * chunks: no recognition thread, messages, resampler or decoder lending.
 */
export async function benchSttAlone(): Promise<{ rtf: number; wer: number }> {
  const audio = concatPcm(await phoneParagraph());
  const resampler = await Resampler.create(8000, 16000);
  const wide = resampler.process(audio);
  resampler.destroy();
  const decoder = new SphinxDecoder(new PocketsphinxTranscriber().decoderArgs({ sampleRate: 8000 }));
  const finals: string[] = [];
  const take = (events: TranscriptEvent[]) => events.forEach((e) => e.type === "final" && finals.push(e.text));
  const started = performance.now();
  for (let i = 0; i < wide.length; i += 1600) take(decoder.process(wide.subarray(i, i + 1600)));
  take(decoder.endUtterance());
  const seconds = (performance.now() - started) / 1000;
  decoder.free();
  return { rtf: seconds / (audio.length / 8000), wer: wordErrorRate(PARAGRAPH.join(" "), finals.join(" ")) };
}

/**
 * The ceiling for synthesis in the same run: the engine's own command alone,
 * the whole paragraph in one run to a WAV file (no sentence splitting, no
 * process per sentence, no resampling or framing).
 */
export function benchTtsAlone(engine: string): { rtf: number } {
  const out = join(mkdtempSync(join(tmpdir(), "voicecall-bench-")), "alone.wav");
  const text = PARAGRAPH.join(" ");
  const [command, args] = engine === "flite" ? ["flite", ["-voice", "rms", "-t", text, "-o", out]] : ["espeak-ng", ["-v", "en-us", "-w", out, text]];
  const rtfs: number[] = [];
  for (let i = 0; i < RUNS; i += 1) {
    const started = performance.now();
    const run = spawnSync(command, args);
    const seconds = (performance.now() - started) / 1000;
    if (run.status !== 0) throw new Error(`${command} failed: ${String(run.stderr).trim()}`);
    const wav = readWavPcm16(readFileSync(out));
    rtfs.push(seconds / (wav.pcm.length / wav.sampleRate));
  }
  rmSync(dirname(out), { recursive: true, force: true });
  return { rtf: percentile(rtfs, 0.5) };
}

/** A carrier with one call whose media is a loopback RTP pair: the phone side is a PhoneAudio socket. */
class BenchCarrier extends MediaCarrier<MediaCall> {
  readonly id = "mock" as const;
  readonly capabilities = { inbound: true, dtmfOut: false, e164Only: false, turnTokens: true };
  private readonly call: MediaCall = { id: "bench-call", answered: false, ended: false };

  constructor(
    config: VoiceCallConfig,
    private readonly transport: RtpUdpTransport,
  ) {
    super({ config, logger: createLogger("silent"), voice: new CascadeVoices(config, new FakeSynthesizer(60), new FakeTranscriber(["What time do you open?"])) }, "bench");
    this.calls.set(this.call.id, this.call);
  }

  protected async open(): Promise<void> {}
  protected async close(): Promise<void> {
    await this.call.media?.close(100);
  }
  ring(): void {
    this.emit(this.call, { type: "inbound", from: "+15550001111", to: "+15550002222" });
  }
  async placeCall(): Promise<{ providerCallId: string }> {
    throw new Error("the bench carrier only takes calls");
  }
  async answer(): Promise<void> {
    await this.startMedia(this.call, this.transport, { narrowband: true, inbandDtmf: false });
    this.call.answered = true;
    this.emit(this.call, { type: "answered" });
  }
  async reject(): Promise<void> {}
  async hangup(): Promise<void> {}
  async sendDtmf(): Promise<void> {}
  async getCallStatus() {
    return { status: "active" as const };
  }
}

export interface BridgeRow {
  turns: number;
  answerP50Ms: number;
  answerP95Ms: number;
  endpointingMs: number;
  bargeIns: number;
  stopP50Ms: number;
  stopP95Ms: number;
  minSpeechMs: number;
}

/** Caller speech -> answer, and barge-in stop, over the real bridge with instant fakes. */
export async function benchBridge(turns: number): Promise<BridgeRow> {
  // The "model": an OpenAI-compatible endpoint that answers at once.
  const chat = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ choices: [{ message: { role: "assistant", content: '{"spoken":"We open at nine."}' } }] }));
    });
  });
  await new Promise<void>((r) => chat.listen(0, "127.0.0.1", r));
  const config = resolveConfig({
    inboundPolicy: "open",
    responseModel: "bench",
    responseBaseUrl: `http://127.0.0.1:${(chat.address() as AddressInfo).port}/v1`,
    store: mkdtempSync(join(tmpdir(), "voicecall-bench-")),
    log: { level: "silent" },
  }).config;
  const transport = await RtpUdpTransport.open({ codec: "ulaw", bindHost: "127.0.0.1", portMin: 46000, portMax: 46999 });
  const phone = await PhoneAudio.open(transport.localPort + 1000);
  await transport.connect("127.0.0.1", transport.localPort + 1000);
  const carrier = new BenchCarrier(config, transport);
  const { store, loaded } = JsonlStore.open(defaultStoreDir(config));
  const responder = new Responder({ baseUrl: config.responseBaseUrl, timeoutMs: 5000 });
  const manager = new CallManager({ config, providers: new Map([["mock", carrier]]), store, loaded, logger: createLogger("silent"), responder });
  await manager.start();

  const utterance = await synthesizeAll(new FliteSynthesizer(), "What time do you open tomorrow?", 8000);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  carrier.ring();
  const callId = (await waitUntil(() => manager.listCalls()[0]?.callId, 5000))!;
  await waitUntil(() => manager.getCall(callId)?.state === "listening", 5000);
  await sleep(300);

  const answers: number[] = [];
  for (let i = 0; i < turns; i += 1) {
    await phone.say(utterance);
    const ended = phone.lastVoicedAt!;
    const first = await waitUntil(() => phone.firstLoud(ended), 5000);
    if (first !== undefined) answers.push(first - ended);
    await waitUntil(() => manager.getCall(callId)?.state === "listening", 5000);
    await sleep(400);
  }

  const stops: number[] = [];
  for (let i = 0; i < turns; i += 1) {
    const asked = performance.now();
    const saying = manager.speak(callId, "Our opening hours are from nine in the morning to five in the afternoon, Monday to Friday, and ten to two on Saturdays.").catch(() => undefined);
    const started = await waitUntil(() => phone.firstLoud(asked), 5000);
    if (started === undefined) continue;
    await sleep(300 + Math.random() * 700);
    const onset = await phone.say(utterance);
    await saying;
    const stopped = await waitUntil(() => phone.quietAfter(onset - 100), 3000);
    if (stopped !== undefined) stops.push(Math.max(0, stopped - onset));
    await waitUntil(() => manager.getCall(callId)?.state === "listening", 5000);
    await sleep(1000);
  }

  await manager.stop();
  phone.close();
  await new Promise((r) => chat.close(r));
  return {
    turns: answers.length,
    answerP50Ms: percentile(answers, 0.5),
    answerP95Ms: percentile(answers, 0.95),
    // The fake recogniser's words are a punctuated question, as a cloud recogniser's: turn-taking waits completeMs (semantic) or the fixed silence.
    endpointingMs: config.turnTaking.mode === "semantic" ? config.turnTaking.completeMs : config.silenceTimeoutMs,
    bargeIns: stops.length,
    stopP50Ms: percentile(stops, 0.5),
    stopP95Ms: percentile(stops, 0.95),
    minSpeechMs: config.bargeIn.minSpeechMs,
  };
}

async function waitUntil<T>(probe: () => T | undefined | false, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const TTS_ENGINES: Array<[string, () => Synthesizer]> = [
  ["flite", () => new FliteSynthesizer()],
  ["espeak-ng", () => new EspeakSynthesizer()],
];

export interface SttLoadRow {
  streams: number;
  /** After the last frame, how long until every stream had its last final (the worker's backlog). */
  drainMs: number;
  /** p95 of (final's arrival - end of its sentence's audio), over every sentence of every stream. */
  lagP95Ms: number;
}

/**
 * Concurrent recognition at real time: `streams` callers each saying three
 * sentences (a sentence, a second of silence, the next), every frame fed to
 * the recogniser (no voice gate, so this is the worst case), all on one
 * 20 ms clock as calls would be. The worker keeps up while drain and lag stay small.
 */
export async function benchSttLoad(streams: number, workers = 1): Promise<SttLoadRow> {
  const frames: Array<Int16Array | "end" | "pause"> = [];
  for (const sentence of PARAGRAPH.slice(0, 3)) {
    for await (const f of new FliteSynthesizer().synthesize(sentence, { sampleRate: 8000 })) frames.push(decodeG711("ulaw", encodeG711("ulaw", f.pcm)));
    frames.push("end");
    // A second of pause: paced, but not fed (the bus's voice gate hands the recogniser utterances only).
    for (let i = 0; i < 50; i += 1) frames.push("pause");
  }
  const transcriber = new PocketsphinxTranscriber({ workers });
  const all = await Promise.all(Array.from({ length: streams }, () => transcriber.stream({ sampleRate: 8000 })));
  const lags: number[] = [];
  let lastFinal = 0;
  const ends: number[][] = all.map(() => []);
  const readers = all.map(async (s, i) => {
    let n = 0;
    for await (const e of s.events()) {
      if (e.type !== "final") continue;
      lastFinal = performance.now();
      const end = ends[i]![n++];
      if (end !== undefined) lags.push(lastFinal - end);
    }
  });
  const start = performance.now();
  let k = 0;
  for (const frame of frames) {
    const wait = start + k * 20 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (frame === "end") {
      // The utterance ends as the bus ends it: a flush.
      for (const e of ends) e.push(performance.now());
      for (const s of all) s.flush();
      continue;
    }
    if (frame !== "pause") for (const s of all) s.pushFrame({ pcm: frame, sampleRate: 8000 });
    k += 1;
  }
  const fed = performance.now();
  for (const s of all) s.endInput();
  await Promise.all(readers);
  for (const s of all) s.close();
  return { streams, drainMs: Math.max(0, lastFinal - fed), lagP95Ms: percentile(lags, 0.95) };
}
