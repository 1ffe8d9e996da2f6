/**
 * Sentences spoken again are not synthesized again. Every caller of a line
 * hears the same greeting, and many calls arriving at once each rendered it
 * anew: on two cores, 8 flite greetings at once took ~0.5 s before the first
 * frame, 20 took over a second. A small LRU of recent sentences' frames (per
 * sample rate) serves repeats at once; callers who ask for a sentence already
 * being made wait for that one rather than making it again. The next sentence
 * is made while the current one plays, as the engines do themselves.
 */
import { sentences, type SpokenFrame, type SynthesizeOptions, type Synthesizer } from "./types.js";

export interface SentenceCacheOptions {
  /** Sentences kept. */
  maxEntries?: number;
  /** PCM bytes kept, over all sentences. */
  maxBytes?: number;
}

export class SentenceCache implements Synthesizer {
  private readonly entries = new Map<string, SpokenFrame[]>();
  /** Sentences being made now: their frames once complete, or undefined if the maker stopped early. */
  private readonly inflight = new Map<string, Promise<SpokenFrame[] | undefined>>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;

  constructor(
    private readonly inner: Synthesizer,
    options: SentenceCacheOptions = {},
  ) {
    this.maxEntries = options.maxEntries ?? 64;
    this.maxBytes = options.maxBytes ?? 8 * 1024 * 1024;
  }

  get id(): string {
    return this.inner.id;
  }

  /** Sentences held now (for tests and diagnostics). */
  get size(): number {
    return this.entries.size;
  }

  async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    const parts = sentences(text);
    for (let i = 0; i < parts.length; i += 1) {
      if (options.signal?.aborted) return;
      const sentence = parts[i]!;
      const key = `${options.sampleRate}\u0000${sentence}`;
      // The next sentence is made while this one plays.
      const next = parts[i + 1];
      // Cached, being made by someone else, or ours to make: decided before any await, so
      // callers asking at the same moment make it once.
      let ready = this.cached(key);
      const pending = ready ? undefined : this.inflight.get(key);
      const settle = ready || pending ? undefined : this.claim(key);
      if (pending) ready = await pending;
      // The next sentence starts once this one is ready to play, not before (it would compete for the CPU).
      const ahead = () => next !== undefined && this.prefetch(next, options);
      if (ready) {
        ahead();
        for (const frame of ready) {
          if (options.signal?.aborted) return;
          yield frame;
        }
        continue;
      }
      yield* this.make(key, sentence, options, settle ?? this.claim(key), ahead);
    }
  }

  /** Marks a sentence as being made; the function settles what waiters get. */
  private claim(key: string): (frames: SpokenFrame[] | undefined) => void {
    let settle!: (frames: SpokenFrame[] | undefined) => void;
    this.inflight.set(key, new Promise((r) => (settle = r)));
    return settle;
  }

  private cached(key: string): SpokenFrame[] | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      // Most recently used goes last: the first entry is the one to evict.
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  /** Makes a sentence while handing its frames on, and keeps it when it completes. */
  private async *make(
    key: string,
    sentence: string,
    options: SynthesizeOptions,
    settle: (frames: SpokenFrame[] | undefined) => void,
    onFirstFrame?: () => void,
  ): AsyncIterable<SpokenFrame> {
    const frames: SpokenFrame[] = [];
    let complete = false;
    try {
      for await (const frame of this.inner.synthesize(sentence, options)) {
        if (frames.length === 0) onFirstFrame?.();
        frames.push(frame);
        yield frame;
      }
      complete = !options.signal?.aborted;
    } finally {
      this.inflight.delete(key);
      if (complete) this.keep(key, frames);
      settle(complete ? frames : undefined);
    }
  }

  private prefetch(sentence: string, options: SynthesizeOptions): void {
    const key = `${options.sampleRate}\u0000${sentence}`;
    if (this.entries.has(key) || this.inflight.has(key)) return;
    const settle = this.claim(key);
    const drain = async () => {
      for await (const _frame of this.make(key, sentence, options, settle)) {
        // Collected by make(); played when the reader gets to this sentence.
      }
    };
    // A failed prefetch is made again (and its error seen) when the reader gets there.
    drain().catch(() => undefined);
  }

  private keep(key: string, frames: SpokenFrame[]): void {
    const size = frames.reduce((n, f) => n + f.pcm.byteLength, 0);
    if (size > this.maxBytes / 4) return; // a long paragraph is not worth the room
    this.entries.set(key, frames);
    this.bytes += size;
    for (const [old, oldFrames] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(old);
      this.bytes -= oldFrames.reduce((n, f) => n + f.pcm.byteLength, 0);
    }
  }
}
