/**
 * Decoders lent per utterance. A pocketsphinx decoder holds the whole model
 * (~100 MB, ~0.4 s to build), so one per call made memory and answer times
 * grow with the number of calls. The bus already cuts each call's audio into
 * utterances (see gate.ts), so a decoder is needed only while someone is
 * speaking: a session takes one from the pool when its utterance starts and
 * gives it back when the utterance ends. When every decoder is busy, the
 * utterance's audio waits (bounded) and is decoded as soon as one is free.
 * Memory is then `maxDecoders` models per model kind, whatever the call count.
 *
 * Sans-IO: requests in, events per session out; the worker thread wires it
 * to its port, tests drive it with a fake decoder.
 */
import type { Expectation, TranscriptEvent } from "./types.js";

export interface PooledDecoder {
  /** The state a decoder adapts to one caller (cepstral means); saved when it goes back to the pool. */
  saveMeans(): Float32Array | undefined;
  /** Resumes a caller's state, or the model's initial one (undefined). */
  loadMeans(means: Float32Array | undefined): void;
  expect(grammar: Expectation | undefined): TranscriptEvent[];
  process(chunk: Int16Array): TranscriptEvent[];
  endUtterance(): TranscriptEvent[];
  free(): void;
}

export interface DecoderPoolOptions {
  /** Builds a decoder for a model configuration (its args). */
  create: (args: string[]) => PooledDecoder;
  /** Decoders per model configuration. */
  maxDecoders: number;
  /** Audio one session may hold while it waits for a decoder, in samples; beyond it the utterance is given up. */
  maxWaitingSamples: number;
  sampleRate: number;
  /** Events for a session, in order; `done` once it has ended and everything it said is out. */
  emit: (id: number, events: TranscriptEvent[], done?: boolean) => void;
}

interface Kind {
  args: string[];
  idle: PooledDecoder[];
  count: number;
}

interface Utterance {
  chunks: Int16Array[];
  samples: number;
  grammar: Expectation | undefined;
  /** The bus said it ended: decode and finish it as soon as a decoder is free. */
  complete: boolean;
}

interface Session {
  kind: Kind;
  grammar: Expectation | undefined;
  decoder?: PooledDecoder;
  /** This caller's cepstral means between utterances (a lent decoder adapts to one voice and line). */
  means?: Float32Array;
  /** Utterances waiting for a decoder, oldest first. */
  waiting: Utterance[];
  ending: boolean;
}

export class DecoderPool {
  private readonly kinds = new Map<string, Kind>();
  private readonly sessions = new Map<number, Session>();
  /** Sessions waiting for a decoder of their kind, in arrival order. */
  private readonly queue: number[] = [];
  private serving = false;
  private readonly lastUser = new WeakMap<PooledDecoder, Session>();

  constructor(private readonly options: DecoderPoolOptions) {}

  /** Decoders built so far, over every kind (each holds a model). */
  get decoders(): number {
    let n = 0;
    for (const k of this.kinds.values()) n += k.count;
    return n;
  }

  open(id: number, args: string[]): void {
    const key = args.join("\u0000");
    let kind = this.kinds.get(key);
    if (!kind) {
      kind = { args, idle: [], count: 0 };
      this.kinds.set(key, kind);
    }
    // One decoder warm per kind, so the first utterance does not wait for a model to load.
    if (kind.count === 0) {
      kind.idle.push(this.options.create(args));
      kind.count = 1;
    }
    this.sessions.set(id, { kind, grammar: undefined, waiting: [], ending: false });
  }

  chunk(id: number, pcm: Int16Array): void {
    const s = this.sessions.get(id);
    if (!s || s.ending) return;
    if (!s.decoder && s.waiting.length === 0) this.lend(s);
    if (s.decoder) {
      this.emit(id, s.decoder.process(pcm));
      return;
    }
    let current = s.waiting.at(-1);
    if (!current || current.complete) {
      current = { chunks: [], samples: 0, grammar: s.grammar, complete: false };
      s.waiting.push(current);
      if (!this.queue.includes(id)) this.queue.push(id);
    }
    current.chunks.push(pcm);
    current.samples += pcm.length;
    let held = 0;
    for (const u of s.waiting) held += u.samples;
    if (held > this.options.maxWaitingSamples) {
      // Bounded: the oldest waiting utterance is given up, and said so.
      const dropped = s.waiting.shift()!;
      const seconds = (dropped.samples / this.options.sampleRate).toFixed(1);
      this.emit(id, [{ type: "unrecognised", reason: `recognition fell behind: ${seconds} s of speech waited for a free decoder and was given up` }]);
    }
  }

  expect(id: number, grammar: Expectation | undefined): void {
    const s = this.sessions.get(id);
    if (!s) return;
    s.grammar = grammar;
    if (s.decoder) this.emit(id, s.decoder.expect(grammar));
  }

  /** The end of an utterance (the bus's voice detector heard it stop). */
  flush(id: number): void {
    const s = this.sessions.get(id);
    if (!s) return;
    if (s.decoder) {
      this.emit(id, s.decoder.endUtterance());
      this.giveBack(s);
      return;
    }
    const last = s.waiting.at(-1);
    if (last) last.complete = true;
  }

  /** No more audio: what is held is decoded, then the session reports done. */
  end(id: number): void {
    const s = this.sessions.get(id);
    if (!s) return;
    this.flush(id);
    s.ending = true;
    if (s.waiting.length === 0) this.emit(id, [], true);
  }

  free(id: number): void {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    const q = this.queue.indexOf(id);
    if (q >= 0) this.queue.splice(q, 1);
    if (s.decoder) {
      // Whatever it was in the middle of is not needed any more.
      s.decoder.endUtterance();
      this.giveBack(s);
    }
  }

  /** Frees every decoder (the worker is stopping). */
  close(): void {
    for (const k of this.kinds.values()) for (const d of k.idle) d.free();
    this.kinds.clear();
    this.sessions.clear();
  }

  private lend(s: Session, grammar = s.grammar): void {
    const kind = s.kind;
    let decoder = kind.idle.pop();
    if (!decoder && kind.count < this.options.maxDecoders) {
      decoder = this.options.create(kind.args);
      kind.count += 1;
    }
    if (!decoder) return;
    s.decoder = decoder;
    // Fresh, or back with the caller it last served, the decoder's own state is exactly right.
    const last = this.lastUser.get(decoder);
    if (last !== undefined && last !== s) decoder.loadMeans(s.means);
    this.lastUser.set(decoder, s);
    // Between utterances a decoder holds no speech: switching its search says nothing.
    decoder.expect(grammar);
  }

  private giveBack(s: Session): void {
    this.release(s);
    this.serveQueue();
  }

  private release(s: Session): void {
    const decoder = s.decoder!;
    s.means = decoder.saveMeans();
    s.kind.idle.push(decoder);
    s.decoder = undefined;
  }

  /** Lends free decoders to waiting sessions, oldest first, decoding what they held. */
  private serveQueue(): void {
    if (this.serving) return;
    this.serving = true;
    try {
      for (let i = 0; i < this.queue.length; ) {
        const id = this.queue[i]!;
        const s = this.sessions.get(id);
        if (!s) {
          this.queue.splice(i, 1);
          continue;
        }
        if (s.kind.idle.length === 0 && s.kind.count >= this.options.maxDecoders) {
          i += 1;
          continue;
        }
        this.queue.splice(i, 1);
        this.drain(id, s);
      }
    } finally {
      this.serving = false;
    }
  }

  /** Decodes a session's held utterances with a freshly lent decoder. */
  private drain(id: number, s: Session): void {
    while (s.waiting.length > 0) {
      const u = s.waiting.shift()!;
      this.lend(s, u.grammar);
      const decoder = s.decoder!;
      for (const c of u.chunks) this.emit(id, decoder.process(c));
      if (!u.complete) {
        // Still being spoken: the decoder stays lent and hears the rest live.
        if (u.grammar !== s.grammar) this.emit(id, decoder.expect(s.grammar));
        return;
      }
      this.emit(id, decoder.endUtterance());
      this.release(s);
    }
    if (s.ending) this.emit(id, [], true);
  }

  private emit(id: number, events: TranscriptEvent[], done?: boolean): void {
    if (events.length > 0 || done) this.options.emit(id, events, done);
  }
}
