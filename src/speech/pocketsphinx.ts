/**
 * Offline speech recognition with Debian's pocketsphinx (libpocketsphinx3 +
 * pocketsphinx-en-us), called through koffi. It streams: partial results
 * while the caller speaks, a final one when its own endpointer hears the
 * utterance end. Phone audio (8 kHz) is resampled to the model's 16 kHz.
 * Accuracy on open conversation is modest (see README); grammar mode and
 * cloud recognition are the better choices where they fit.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import type { AudioFrame } from "../audio/frame.js";
import { Resampler } from "../audio/resample.js";
import { AsyncQueue } from "../util/async-queue.js";
import { probePocketsphinx } from "./pocketsphinx-decoder.js";
import { SentenceEnd } from "./sentence-end.js";
import { SpeechError, type Expectation, type StreamOptions, type TranscriptEvent, type Transcriber, type TranscriberStream } from "./types.js";

const MODEL_DIR = "/usr/share/pocketsphinx/model/en-us";
const MODEL_RATE = 16000;
/**
 * Cepstral means of phone audio (8 kHz, upsampled), measured on flite speech
 * sent through the 8 kHz path. The stock model starts its live normalisation from
 * wideband means and then misreads short phone utterances entirely; its
 * feat.params overrides the command line, so phone streams use a copy of the
 * model whose feat.params carries these values.
 */
const PHONE_CMNINIT = "42.9,31.9,-26.4,49.7,-12.5,3.2,21.7,-31.2,4.2,-12.3,2.6,17.5,-13.0";
/**
 * Decoders per recognition thread: as many callers as that can talk at once
 * without waiting (4 kept up with 4 simultaneous talkers as a decoder per
 * call did), at ~100 MB each whatever the number of calls.
 */
const DEFAULT_DECODERS = 4;
/**
 * How sure the keyphrase search must be (pocketsphinx's -kws threshold, one
 * for every phrase). On the answering-machine set 1e-30 spotted person phrases
 * in voicemail greetings and 1e-10 missed voicemail phrases the open model
 * heard (docs/answering-machines.md).
 */
const KEYPHRASE_THRESHOLD = "1e-20";
/** Decode in 100 ms chunks: fewer calls into the library, same latency class. */
const CHUNK_SAMPLES = MODEL_RATE / 10;

export interface PocketsphinxOptions {
  modelDir?: string;
  /** A JSGF grammar (digits, yes/no, menu choices) instead of the open language model. */
  jsgf?: string;
  /** Recognition threads (one core each). */
  workers?: number;
  /** Decoders per thread, lent to utterances as they start (each holds the model, ~100 MB). */
  decoders?: number;
  /** Speech one call may hold while it waits for a free decoder, in seconds. */
  maxWaitingSeconds?: number;
}

export class PocketsphinxTranscriber implements Transcriber {
  readonly id = "pocketsphinx";
  /** Its own endpointer turns line silence and faint noise into words (see gate.ts). */
  readonly endpointing = "bus" as const;
  private readonly dir: string;

  constructor(private readonly options: PocketsphinxOptions = {}) {
    this.dir = options.modelDir ?? MODEL_DIR;
    if (!existsSync(join(this.dir, "en-us", "feat.params"))) {
      throw new SpeechError("SPEECH_UNAVAILABLE", `no pocketsphinx model in ${this.dir} (apt-get install pocketsphinx-en-us)`);
    }
    probePocketsphinx();
  }

  /** The decoder's arguments for a stream (the recognition threads build their decoders from them; so does the bench). */
  decoderArgs(options: StreamOptions): string[] {
    // Telephone-band audio needs the phone-tuned model, also when it arrives upsampled to 16 kHz.
    const phone = options.sampleRate < MODEL_RATE || options.narrowband === true;
    return [
      "-hmm", phone ? phoneModel(this.dir) : join(this.dir, "en-us"),
      "-dict", join(this.dir, "cmudict-en-us.dict"),
      ...(this.options.jsgf ? ["-jsgf", this.options.jsgf] : ["-lm", join(this.dir, "en-us.lm.bin")]),
      "-samprate", String(MODEL_RATE),
      // Fast settings measured on phone speech: same accuracy class at a fraction of the time.
      "-fwdflat", "no", "-bestpath", "yes", "-maxhmmpf", "5000", "-maxwpf", "10", "-pl_window", "3",
      "-logfn", "/dev/null",
    ];
  }

  stream(options: StreamOptions): Promise<TranscriberStream> {
    return this.open(options, this.decoderArgs(options));
  }

  /** Its open model's words have no punctuation: the same model says how likely they end a sentence (not with a grammar of one's own). */
  sentenceEnd(text: string): number | undefined {
    if (this.options.jsgf) return undefined;
    return SentenceEnd.load(join(this.dir, "en-us.lm.bin"))?.log10(text);
  }

  /**
   * A stream that listens for `phrases` only (pocketsphinx's keyphrase
   * search), far surer of a few known phrases on phone audio than the open
   * model's words are. Its interim and final results are the phrases spotted
   * so far in the utterance, two spaces apart; every word must be in the
   * model's dictionary.
   */
  spot(options: StreamOptions, phrases: readonly string[]): Promise<TranscriberStream> {
    const list = phrases.map((p) => `${p.toLowerCase()} /${KEYPHRASE_THRESHOLD}/\n`).join("");
    const dir = join(tmpdir(), "openclaw-voice-call", "pocketsphinx-kws");
    const file = join(dir, `${createHash("sha256").update(list).digest("hex").slice(0, 16)}.txt`);
    if (!existsSync(file)) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(file, list);
    }
    const args = this.decoderArgs(options);
    const lm = args.findIndex((a) => a === "-lm" || a === "-jsgf");
    args.splice(lm, 2, "-kws", file);
    return this.open(options, args);
  }

  private async open(options: StreamOptions, args: string[]): Promise<TranscriberStream> {
    const resampler = options.sampleRate !== MODEL_RATE ? await Resampler.create(options.sampleRate, MODEL_RATE) : undefined;
    const stream = new PocketsphinxStream(
      recognitionWorker(this.options.workers ?? 1, { decoders: this.options.decoders ?? DEFAULT_DECODERS, maxWaitingSeconds: this.options.maxWaitingSeconds ?? 30 }),
      options.sampleRate,
      resampler,
    );
    await stream.open(args);
    return stream;
  }
}

/** The phone copy of the acoustic model: links to every file but a rewritten feat.params. */
function phoneModel(dir: string): string {
  const source = join(dir, "en-us");
  const target = join(tmpdir(), "openclaw-voice-call", "pocketsphinx-phone", "en-us");
  const params = readFileSync(join(source, "feat.params"), "utf8").replace(/^-cmninit .*$/m, `-cmninit ${PHONE_CMNINIT}`);
  if (existsSync(join(target, "feat.params")) && readFileSync(join(target, "feat.params"), "utf8") === params) return target;
  mkdirSync(target, { recursive: true });
  for (const file of readdirSync(source)) {
    if (file === "feat.params" || existsSync(join(target, file))) continue;
    symlinkSync(join(source, file), join(target, file));
  }
  writeFileSync(join(target, "feat.params"), params);
  return target;
}

/** Messages to the recognition worker and back. */
export type WorkerRequest =
  | { op: "open"; id: number; args: string[] }
  | { op: "chunk"; id: number; pcm: Int16Array }
  | { op: "expect"; id: number; grammar: Expectation | undefined }
  | { op: "flush"; id: number }
  | { op: "end"; id: number }
  | { op: "free"; id: number };
export type WorkerReply = { id: number; events: TranscriptEvent[]; opened?: boolean; done?: boolean; error?: string };

interface SharedWorker {
  worker: Worker;
  streams: Map<number, PocketsphinxStream>;
  nextId: number;
}

const pool: SharedWorker[] = [];

/**
 * Worker threads decode the calls' audio: pocketsphinx is synchronous
 * (about 7 ms per 100 ms of audio here), and on the main thread it would
 * hold up the 20 ms media clock of every call. A new stream goes to the
 * least busy of up to `size` workers, started as needed; each worker lends
 * its few decoders to utterances (pocketsphinx-pool.ts), so memory does not
 * grow with the number of calls.
 */
function recognitionWorker(size: number, workerData: { decoders: number; maxWaitingSeconds: number }): SharedWorker {
  const idle = pool.find((w) => w.streams.size === 0);
  if (idle) return idle;
  if (pool.length >= size) return pool.reduce((a, b) => (b.streams.size < a.streams.size ? b : a));
  // The built package runs dist/*.js; tests run the TypeScript sources, whose worker needs tsx.
  const worker = import.meta.url.endsWith(".ts")
    ? new Worker(
        `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL("./pocketsphinx-worker.ts", import.meta.url).href)}); });`,
        { eval: true, workerData },
      )
    : new Worker(new URL("./pocketsphinx-worker.js", import.meta.url), { workerData });
  const state: SharedWorker = { worker, streams: new Map(), nextId: 1 };
  worker.on("message", (reply: WorkerReply) => state.streams.get(reply.id)?.receive(reply));
  worker.on("error", (err) => {
    for (const stream of state.streams.values()) stream.receive({ id: 0, events: [], done: true, error: String(err) });
    state.streams.clear();
    pool.splice(pool.indexOf(state), 1);
  });
  // Held only while a stream is open (see PocketsphinxStream), so an idle
  // worker never keeps the process alive. After the listeners: adding a
  // "message" listener refs the port again.
  worker.unref();
  pool.push(state);
  return state;
}

class PocketsphinxStream implements TranscriberStream {
  private readonly queue = new AsyncQueue<TranscriptEvent>();
  private readonly id: number;
  private pending = new Int16Array(CHUNK_SAMPLES);
  private filled = 0;
  private ending = false;
  private opened?: (err?: Error) => void;

  constructor(
    private readonly shared: SharedWorker,
    private readonly sampleRate: number,
    private readonly resampler: Resampler | undefined,
  ) {
    this.id = shared.nextId++;
    shared.streams.set(this.id, this);
    if (shared.streams.size === 1) shared.worker.ref();
  }

  open(args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.opened = (err) => (err ? reject(err) : resolve());
      this.post({ op: "open", id: this.id, args });
    });
  }

  pushFrame(frame: AudioFrame): void {
    if (this.ending) return;
    if (frame.sampleRate !== this.sampleRate) {
      throw new SpeechError("SPEECH_FAILED", `frame at ${frame.sampleRate} Hz on a ${this.sampleRate} Hz stream`);
    }
    const pcm = this.resampler ? this.resampler.process(frame.pcm) : frame.pcm;
    let offset = 0;
    while (offset < pcm.length) {
      const n = Math.min(CHUNK_SAMPLES - this.filled, pcm.length - offset);
      this.pending.set(pcm.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === CHUNK_SAMPLES) this.sendChunk();
    }
  }

  expect(grammar: Expectation | undefined): void {
    if (this.ending) return;
    this.sendChunk();
    this.post({ op: "expect", id: this.id, grammar });
  }

  flush(): void {
    if (this.ending) return;
    this.sendChunk();
    this.post({ op: "flush", id: this.id });
  }

  endInput(): void {
    if (this.ending) return;
    this.sendChunk();
    this.ending = true;
    this.post({ op: "end", id: this.id });
  }

  close(): void {
    this.ending = true;
    this.queue.end();
    this.post({ op: "free", id: this.id });
    this.shared.streams.delete(this.id);
    if (this.shared.streams.size === 0) this.shared.worker.unref();
    this.resampler?.destroy();
  }

  events(): AsyncIterable<TranscriptEvent> {
    return this.queue.iterate();
  }

  /** A reply from the worker. */
  receive(reply: WorkerReply): void {
    if (reply.opened || (reply.error && this.opened)) {
      const done = this.opened;
      this.opened = undefined;
      done?.(reply.error ? new SpeechError("SPEECH_FAILED", reply.error) : undefined);
      if (reply.error) this.queue.end();
      return;
    }
    for (const e of reply.events) this.queue.push(e);
    if (reply.done) this.queue.end();
  }

  private sendChunk(): void {
    if (this.filled === 0) return;
    const pcm = this.pending.slice(0, this.filled);
    this.filled = 0;
    this.shared.worker.postMessage({ op: "chunk", id: this.id, pcm } satisfies WorkerRequest, [pcm.buffer]);
  }

  private post(message: WorkerRequest): void {
    this.shared.worker.postMessage(message);
  }
}

/** A whole recording read back as words (lab recordings, tests): the finals joined. */
export async function transcribePcm(pcm: Int16Array, sampleRate: 8000 | 16000, transcriber = new PocketsphinxTranscriber()): Promise<string> {
  const stream = await transcriber.stream({ sampleRate });
  const finals: string[] = [];
  const reading = (async () => {
    for await (const e of stream.events()) if (e.type === "final") finals.push(e.text);
  })();
  const n = sampleRate / 50;
  // Leading silence too: audio that starts at the speech onset (a phone's recording whose first packets
  // were quiet and never came) loses its first word to the endpointer ("this is" read as "vicious").
  for (let i = 0; i < 15; i += 1) stream.pushFrame({ pcm: new Int16Array(n), sampleRate });
  for (let i = 0; i + n <= pcm.length; i += n) stream.pushFrame({ pcm: pcm.slice(i, i + n), sampleRate });
  // Trailing silence lets the endpointer close the last utterance by itself.
  for (let i = 0; i < 50; i += 1) stream.pushFrame({ pcm: new Int16Array(n), sampleRate });
  stream.endInput();
  await reading;
  stream.close();
  return finals.join(" ");
}
