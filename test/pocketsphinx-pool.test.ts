/** Decoders lent per utterance: memory by decoders, not by calls; nothing said is lost or crossed. */
import { describe, expect, it } from "vitest";
import { DecoderPool, type PooledDecoder } from "../src/speech/pocketsphinx-pool.js";
import type { Expectation, TranscriptEvent } from "../src/speech/types.js";

/** Hears chunks whose first sample names them; an utterance's final is the names it heard, with its grammar. */
class FakeDecoder implements PooledDecoder {
  static built = 0;
  /** What each lending started the decoder from: a caller's saved means, or "initial". */
  static loads: Array<number | "initial"> = [];
  private heard: number[] = [];
  private grammar: Expectation | undefined;
  /** Stands for the cepstral means: the last chunk name heard. */
  means = new Float32Array(1);
  constructor() {
    FakeDecoder.built += 1;
  }
  saveMeans(): Float32Array {
    return Float32Array.from(this.means);
  }
  loadMeans(means: Float32Array | undefined): void {
    FakeDecoder.loads.push(means ? means[0]! : "initial");
    this.means = means ? Float32Array.from(means) : new Float32Array(1);
  }
  expect(grammar: Expectation | undefined): TranscriptEvent[] {
    this.grammar = grammar;
    return [];
  }
  process(chunk: Int16Array): TranscriptEvent[] {
    this.heard.push(chunk[0]!);
    this.means[0] = chunk[0]!;
    return [];
  }
  endUtterance(): TranscriptEvent[] {
    const text = `${this.grammar ?? "open"}:${this.heard.join(",")}`;
    this.heard = [];
    return text.endsWith(":") ? [] : [{ type: "final", text }];
  }
  free(): void {}
}

function harness(maxDecoders: number, maxWaitingSamples = 1_000_000) {
  const out = new Map<number, { finals: string[]; unrecognised: string[]; done: boolean }>();
  const pool = new DecoderPool({
    create: () => new FakeDecoder(),
    maxDecoders,
    maxWaitingSamples,
    sampleRate: 16000,
    emit: (id, events, done) => {
      const o = out.get(id) ?? { finals: [], unrecognised: [], done: false };
      for (const e of events) {
        if (e.type === "final") o.finals.push(e.text);
        if (e.type === "unrecognised") o.unrecognised.push(e.reason);
      }
      if (done) o.done = true;
      out.set(id, o);
    },
  });
  const chunk = (name: number) => Int16Array.of(name, 0, 0, 0);
  return { pool, out, chunk, of: (id: number) => out.get(id) ?? { finals: [], unrecognised: [], done: false } };
}

describe("decoder pool", () => {
  it("serves twenty calls talking at once with two decoders, each caller's words kept whole and apart", () => {
    FakeDecoder.built = 0;
    const { pool, chunk, of } = harness(2);
    for (let id = 1; id <= 20; id += 1) pool.open(id, ["-hmm", "phone"]);
    expect(FakeDecoder.built).toBe(1); // one warm decoder, not one per call
    // Everyone talks at once, interleaved chunk by chunk.
    for (let n = 0; n < 3; n += 1) for (let id = 1; id <= 20; id += 1) pool.chunk(id, chunk(id * 10 + n));
    for (let id = 1; id <= 20; id += 1) pool.flush(id);
    expect(FakeDecoder.built).toBe(2);
    for (let id = 1; id <= 20; id += 1) expect(of(id).finals).toEqual([`open:${id * 10},${id * 10 + 1},${id * 10 + 2}`]);
  });

  it("decodes a waiting utterance with the grammar it was spoken under, and keeps later audio live", () => {
    const { pool, chunk, of } = harness(1);
    pool.open(1, ["m"]);
    pool.open(2, ["m"]);
    pool.chunk(1, chunk(1)); // 1 holds the only decoder
    pool.expect(2, "digits");
    pool.chunk(2, chunk(20));
    pool.flush(2); // 2's digits answer waits, complete
    pool.chunk(2, chunk(21)); // and 2 starts talking again
    pool.expect(2, undefined);
    pool.flush(1);
    expect(of(1).finals).toEqual(["open:1"]);
    expect(of(2).finals).toEqual(["digits:20"]);
    pool.chunk(2, chunk(22));
    pool.flush(2);
    expect(of(2).finals).toEqual(["digits:20", "open:21,22"]);
  });

  it("reports done only after what a session held has been decoded", () => {
    const { pool, chunk, of } = harness(1);
    pool.open(1, ["m"]);
    pool.open(2, ["m"]);
    pool.chunk(1, chunk(1));
    pool.chunk(2, chunk(2));
    pool.end(2);
    expect(of(2).done).toBe(false);
    pool.end(1);
    expect(of(1)).toMatchObject({ finals: ["open:1"], done: true });
    expect(of(2)).toMatchObject({ finals: ["open:2"], done: true });
  });

  it("gives up speech past the waiting bound and says so, never silently", () => {
    const { pool, chunk, of } = harness(1, 8);
    pool.open(1, ["m"]);
    pool.open(2, ["m"]);
    pool.chunk(1, chunk(1));
    pool.chunk(2, chunk(20));
    pool.flush(2);
    pool.chunk(2, chunk(21));
    pool.chunk(2, chunk(22)); // 12 samples held > 8: the oldest utterance goes
    expect(of(2).unrecognised).toEqual(["recognition fell behind: 0.0 s of speech waited for a free decoder and was given up"]);
    pool.flush(2);
    pool.flush(1);
    expect(of(2).finals).toEqual(["open:21,22"]);
  });

  it("a caller's decoder state (cepstral means) follows the caller, not the decoder", () => {
    FakeDecoder.loads = [];
    const { pool, chunk } = harness(1);
    pool.open(1, ["m"]);
    pool.open(2, ["m"]);
    pool.chunk(1, chunk(7));
    pool.flush(1);
    pool.chunk(2, chunk(9));
    pool.flush(2);
    pool.chunk(1, chunk(8));
    pool.flush(1);
    // A fresh decoder needs no loading; after caller 1, caller 2 starts from the model's means, then 1 from its own.
    expect(FakeDecoder.loads).toEqual(["initial", 7]);
  });

  it("models of different kinds never share a decoder", () => {
    FakeDecoder.built = 0;
    const { pool, chunk, of } = harness(1);
    pool.open(1, ["phone"]);
    pool.open(2, ["wideband"]);
    pool.chunk(1, chunk(1));
    pool.chunk(2, chunk(2));
    pool.flush(1);
    pool.flush(2);
    expect(FakeDecoder.built).toBe(2);
    expect([of(1).finals, of(2).finals]).toEqual([["open:1"], ["open:2"]]);
  });
});
