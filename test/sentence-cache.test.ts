/** Repeated sentences are made once: the greeting for twenty callers at once, not twenty times. */
import { describe, expect, it } from "vitest";
import { FakeSynthesizer } from "../src/speech/fake.js";
import { SentenceCache } from "../src/speech/sentence-cache.js";
import type { SpokenFrame, SynthesizeOptions } from "../src/speech/types.js";

/** Counts what it is asked to make, and takes a while to make it (a busy engine). */
class CountingSynthesizer extends FakeSynthesizer {
  made: string[] = [];
  constructor(private readonly delayMs = 20) {
    super(10);
  }
  override async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    this.made.push(text);
    await new Promise((r) => setTimeout(r, this.delayMs));
    yield* super.synthesize(text, options);
  }
}

async function collect(synth: SentenceCache, text: string, options: SynthesizeOptions = { sampleRate: 8000 }): Promise<SpokenFrame[]> {
  const out: SpokenFrame[] = [];
  for await (const f of synth.synthesize(text, options)) out.push(f);
  return out;
}

describe("sentence cache", () => {
  it("makes a greeting once for twenty callers asking at once, and each gets every frame with its sentence mark", async () => {
    const inner = new CountingSynthesizer();
    const cache = new SentenceCache(inner);
    const greeting = "Hello, you reached the lab. How can I help?";
    const heard = await Promise.all(Array.from({ length: 20 }, () => collect(cache, greeting)));
    expect(inner.made).toEqual(["Hello, you reached the lab.", "How can I help?"]);
    const alone = await collect(new SentenceCache(new CountingSynthesizer()), greeting);
    for (const frames of heard) {
      expect(frames.length).toBe(alone.length);
      expect(frames.filter((f) => f.completes).map((f) => f.completes)).toEqual(["Hello, you reached the lab.", "How can I help?"]);
    }
    // Other rates are other audio.
    await collect(cache, greeting, { sampleRate: 16000 });
    expect(inner.made).toHaveLength(4);
  });

  it("keeps nothing from a sentence cut short, and evicts the least recently used", async () => {
    const inner = new CountingSynthesizer(0);
    const cache = new SentenceCache(inner, { maxEntries: 2 });
    const controller = new AbortController();
    for await (const _f of cache.synthesize("Cut short here.", { sampleRate: 8000, signal: controller.signal })) controller.abort();
    expect(cache.size).toBe(0);
    await collect(cache, "One.");
    await collect(cache, "Two.");
    await collect(cache, "One.");
    await collect(cache, "Three."); // evicts Two, the least recently used
    inner.made = [];
    await collect(cache, "One.");
    await collect(cache, "Two.");
    expect(inner.made).toEqual(["Two."]);
  });
});
