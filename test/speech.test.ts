import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { Resampler } from "../src/audio/resample.js";
import { toneRatio } from "../src/audio/goertzel.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { SpeechError, sentences } from "../src/speech/types.js";
import { readWavPcm16 } from "../src/speech/wav.js";

const fliteMissing = spawnSync("flite", ["-lv"]).status !== 0;
if (fliteMissing) console.warn("skipping flite tests: flite is not installed (apt-get install flite)");

describe("sentences", () => {
  it("splits on sentence ends and drops empty pieces", () => {
    expect(sentences("Hello there. How are you?  Fine!\nBye")).toEqual(["Hello there.", "How are you?", "Fine!", "Bye"]);
    expect(sentences("...  !")).toEqual([]);
  });
});

describe("resampler", () => {
  it("converts 16 kHz to 8 kHz frame by frame without losing the tone", async () => {
    const r = await Resampler.create(16000, 8000);
    const pcm = Int16Array.from({ length: 16000 }, (_, i) => Math.round(9000 * Math.sin((2 * Math.PI * 440 * i) / 16000)));
    const out: number[] = [];
    for (let i = 0; i < pcm.length; i += 320) out.push(...r.process(pcm.subarray(i, i + 320)));
    r.destroy();
    expect(Math.abs(out.length - 8000)).toBeLessThan(100);
    expect(toneRatio(Int16Array.from(out).subarray(2000, 3600), 8000, 440)).toBeGreaterThan(0.45);
  });
});

describe("WAV reader", () => {
  it("rejects what is not PCM16 mono WAV", () => {
    expect(() => readWavPcm16(new Uint8Array(10))).toThrow(/RIFF/);
  });
});

describe.skipIf(fliteMissing)("flite synthesizer", () => {
  it("speaks sentence by sentence as 20 ms frames at the transport's rate", async () => {
    const tts = new FliteSynthesizer();
    let frames = 0;
    let energy = 0;
    for await (const f of tts.synthesize("Hello there. This is a test of the voice call service.", { sampleRate: 8000 })) {
      expect(f.sampleRate).toBe(8000);
      expect(f.pcm.length).toBe(160);
      frames += 1;
      for (const s of f.pcm) energy += s * s;
    }
    // About three seconds of speech, and loud enough to hear.
    expect(frames * 20).toBeGreaterThan(1500);
    expect(frames * 20).toBeLessThan(8000);
    expect(Math.sqrt(energy / (frames * 160))).toBeGreaterThan(500);
  });

  it("stops when aborted", async () => {
    const tts = new FliteSynthesizer();
    const controller = new AbortController();
    let frames = 0;
    for await (const _f of tts.synthesize("One sentence here. Another one follows. And a third.", { sampleRate: 16000, signal: controller.signal })) {
      frames += 1;
      if (frames === 3) controller.abort();
    }
    expect(frames).toBe(3);
  });

  it("names a voice it does not have", () => {
    expect(() => new FliteSynthesizer({ voice: "nobody" })).toThrow(SpeechError);
    expect(() => new FliteSynthesizer({ voice: "nobody" })).toThrow(/no voice "nobody"/);
  });
});
