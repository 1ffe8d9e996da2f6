import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Resampler } from "../src/audio/resample.js";
import { toneRatio } from "../src/audio/goertzel.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { PocketsphinxTranscriber } from "../src/speech/pocketsphinx.js";
import { concatPcm } from "../src/audio/frame.js";
import { createSynthesizer } from "../src/speech/index.js";
import { SpeechError, sentences, type Synthesizer, type TranscriptEvent } from "../src/speech/types.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { makeConfig, waitFor } from "./helpers.js";
import { readWavPcm16 } from "../src/speech/wav.js";

const fliteMissing = spawnSync("flite", ["-lv"]).status !== 0;
if (fliteMissing) console.warn("skipping flite tests: flite is not installed (apt-get install flite)");

describe("sentences", () => {
  it("splits on sentence ends and drops empty pieces", () => {
    expect(sentences("Hello there. How are you?  Fine!\nBye")).toEqual(["Hello there.", "How are you?", "Fine!", "Bye"]);
    expect(sentences("...  !")).toEqual([]);
    // Punctuation inside a number or a time is not a sentence end.
    expect(sentences("It costs 3.50 a person. We open at 10:30; see you (soon.) Bye")).toEqual(["It costs 3.50 a person.", "We open at 10:30;", "see you (soon.)", "Bye"]);
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

describe.skipIf(fliteMissing)("flite synthesizer (the rest: speech-conformance.test.ts)", () => {
  it("names a voice it does not have", () => {
    expect(() => new FliteSynthesizer({ voice: "nobody" })).toThrow(SpeechError);
    expect(() => new FliteSynthesizer({ voice: "nobody" })).toThrow(/no voice "nobody"/);
  });

  it("a reader that stops after the first frame (a hang-up mid-message) leaves no failure behind", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on("unhandledRejection", onUnhandled);
    try {
      const flite = new FliteSynthesizer();
      for await (const frame of flite.synthesize("This is the first sentence. And this is the second one, rendered ahead.", { sampleRate: 8000 })) {
        expect(frame.pcm.length).toBe(160);
        break;
      }
      // Long enough for the second sentence's flite to have finished had it been left running.
      await new Promise((r) => setTimeout(r, 500));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

describe.skipIf(fliteMissing)("per-number voices (numbers.<n>.tts)", () => {
  const render = async (synthesizer: Synthesizer, text: string, voice?: string) => {
    const parts: Int16Array[] = [];
    for await (const f of synthesizer.synthesize(text, { sampleRate: 8000, voice })) parts.push(f.pcm);
    return concatPcm(parts);
  };

  it("a number with its own tts speaks in its voice (merged over tts); every other number and no number in the default", async () => {
    const text = "Hello, you reached the test line.";
    const config = makeConfig({ tts: { providers: { flite: { voice: "rms" } } }, numbers: { "+15550008888": { tts: { providers: { flite: { voice: "kal" } } } }, "+15550007777": { inboundGreeting: "Hi." } } });
    const book = createSynthesizer(config);
    const kal = await render(new FliteSynthesizer({ voice: "kal" }), text);
    const rms = await render(new FliteSynthesizer({ voice: "rms" }), text);
    expect(kal).not.toEqual(rms);
    expect(await render(book, text, "+15550008888")).toEqual(kal);
    expect(await render(book, text, "+15550007777")).toEqual(rms);
    expect(await render(book, text)).toEqual(rms);
  });
});

const sphinxMissing = !existsSync("/usr/share/pocketsphinx/model/en-us/en-us/feat.params");
if (sphinxMissing) console.warn("skipping pocketsphinx tests: apt-get install libpocketsphinx3 pocketsphinx-en-us");

describe.skipIf(sphinxMissing || fliteMissing)("pocketsphinx transcriber", () => {
  async function speak(text: string, sampleRate: 8000 | 16000) {
    const frames = [];
    for await (const f of new FliteSynthesizer().synthesize(text, { sampleRate })) frames.push(f);
    return frames;
  }

  it.each([8000, 16000] as const)("streams a sentence at %i Hz to a final result, with its own speech start and end", async (rate) => {
    const sentence = "I would like to book a table for two people.";
    const stream = await new PocketsphinxTranscriber().stream({ sampleRate: rate });
    const events: TranscriptEvent[] = [];
    const reading = (async () => {
      for await (const e of stream.events()) events.push(e);
    })();
    for (const f of await speak(sentence, rate)) stream.pushFrame(f);
    // Trailing silence lets its endpointer close the utterance by itself.
    for (let i = 0; i < 50; i += 1) stream.pushFrame({ pcm: new Int16Array(rate / 50), sampleRate: rate });
    await waitFor(() => events.some((e) => e.type === "speech_ended"), "the end of speech");
    stream.endInput();
    await reading;
    stream.close();
    const types = events.map((e) => e.type).filter((t) => t !== "interim");
    expect(types).toEqual(["speech_started", "final", "speech_ended"]);
    const final = events.find((e) => e.type === "final") as { text: string };
    expect(wordErrorRate(sentence, final.text), final.text).toBeLessThanOrEqual(0.2);
  });

  it("flushes an utterance cut short by the end of input", async () => {
    const stream = await new PocketsphinxTranscriber().stream({ sampleRate: 8000 });
    const events: TranscriptEvent[] = [];
    const reading = (async () => {
      for await (const e of stream.events()) events.push(e);
    })();
    for (const f of await speak("Yes please.", 8000)) stream.pushFrame(f);
    stream.endInput();
    await reading;
    stream.close();
    expect(events.filter((e) => e.type === "final").map((e) => (e as { text: string }).text).join(" ")).toMatch(/yes/);
  });

  it("decodes a digits answer with the digits grammar, then open speech again", async () => {
    const stream = await new PocketsphinxTranscriber().stream({ sampleRate: 8000 });
    const finals: string[] = [];
    const reading = (async () => {
      for await (const e of stream.events()) if (e.type === "final") finals.push(e.text);
    })();
    const say = async (text: string) => {
      for (const f of await speak(text, 8000)) stream.pushFrame(f);
      stream.flush();
    };
    stream.expect!("digits");
    await say("Four seven one one.");
    await say("Nine zero two.");
    stream.expect!(undefined);
    await say("I would like to book a table.");
    stream.endInput();
    await reading;
    stream.close();
    expect(finals.slice(0, 2)).toEqual(["4711", "902"]);
    expect(wordErrorRate("I would like to book a table", finals[2] ?? ""), finals[2]).toBeLessThanOrEqual(0.2);
  });

  it("spreads streams over several recognition threads when asked", async () => {
    const transcriber = new PocketsphinxTranscriber({ workers: 2 });
    const sentences = ["I would like to book a table for two people.", "Please call me back tomorrow morning at nine."];
    const heard = await Promise.all(
      sentences.map(async (text) => {
        const stream = await transcriber.stream({ sampleRate: 8000 });
        const finals: string[] = [];
        const reading = (async () => {
          for await (const e of stream.events()) if (e.type === "final") finals.push(e.text);
        })();
        for (const f of await speak(text, 8000)) stream.pushFrame(f);
        stream.endInput();
        await reading;
        stream.close();
        return finals.join(" ");
      }),
    );
    heard.forEach((words, i) => expect(wordErrorRate(sentences[i]!, words), words).toBeLessThanOrEqual(0.2));
  });

  it("refuses frames at another rate than the stream's", async () => {
    const stream = await new PocketsphinxTranscriber().stream({ sampleRate: 8000 });
    expect(() => stream.pushFrame({ pcm: new Int16Array(320), sampleRate: 16000 })).toThrow(/16000 Hz on a 8000 Hz stream/);
    stream.close();
  });
});

describe("word error rate", () => {
  it("counts substitutions, insertions and deletions over the reference", () => {
    expect(wordErrorRate("call me at nine", "Call me at nine!")).toBe(0);
    expect(wordErrorRate("call me at nine", "call him at nine")).toBe(0.25);
    expect(wordErrorRate("call me at nine", "call me")).toBe(0.5);
    expect(wordErrorRate("a b", "a x b")).toBe(0.5);
  });
});
