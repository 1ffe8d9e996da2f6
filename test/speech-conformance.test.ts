/**
 * One conformance suite for every speech engine: offline (flite, espeak-ng,
 * pocketsphinx), the fakes, and the cloud engines against local servers that
 * speak their vendors' wire protocols. Engines whose binaries are missing
 * skip, saying why.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toneRatio } from "../src/audio/goertzel.js";
import { DeepgramOptions, DeepgramTranscriber } from "../src/speech/deepgram.js";
import { ElevenLabsSynthesizer } from "../src/speech/elevenlabs.js";
import { EspeakSynthesizer } from "../src/speech/espeak.js";
import { FakeSynthesizer, FakeTranscriber } from "../src/speech/fake.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { SpeechGate } from "../src/speech/gate.js";
import { OpenAiSttOptions, OpenAiSynthesizer, OpenAiTranscriber } from "../src/speech/openai.js";
import { PocketsphinxTranscriber } from "../src/speech/pocketsphinx.js";
import { SpeechError, sentences, type SpokenFrame, type Synthesizer, type TranscriptEvent, type Transcriber } from "../src/speech/types.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { FakeVendors, GOOD_KEY } from "./fakes/vendors.js";

const missing = {
  flite: spawnSync("flite", ["-lv"]).status !== 0 ? "flite is not installed (apt-get install flite)" : undefined,
  espeak: spawnSync("espeak-ng", ["--version"]).status !== 0 ? "espeak-ng is not installed (apt-get install espeak-ng)" : undefined,
  sphinx: !existsSync("/usr/share/pocketsphinx/model/en-us/en-us/feat.params") ? "apt-get install libpocketsphinx3 pocketsphinx-en-us" : undefined,
};
for (const [name, why] of Object.entries(missing)) if (why) console.warn(`skipping ${name} conformance: ${why}`);

let vendors: FakeVendors;
beforeAll(async () => {
  vendors = await FakeVendors.start();
});
afterAll(async () => {
  await vendors?.close();
});

const TEXT = "Your appointment is on Monday. Please arrive ten minutes early!";

async function collect(synth: Synthesizer, text: string, sampleRate: 8000 | 16000, signal?: AbortSignal): Promise<SpokenFrame[]> {
  const frames: SpokenFrame[] = [];
  for await (const f of synth.synthesize(text, { sampleRate, signal })) frames.push(f);
  return frames;
}

function synthesizerConformance(name: string, make: () => Synthesizer, skip?: string): void {
  describe.skipIf(skip !== undefined)(`synthesizer conformance: ${name}`, () => {
    it.each([8000, 16000] as const)("speaks whole 20 ms frames at %i Hz, marking each sentence's last frame", async (rate) => {
      const frames = await collect(make(), TEXT, rate);
      for (const f of frames) {
        expect(f.sampleRate).toBe(rate);
        expect(f.pcm.length).toBe(rate / 50);
      }
      expect(frames.filter((f) => f.completes).map((f) => f.completes)).toEqual(sentences(TEXT));
      expect(frames.at(-1)!.completes).toBe(sentences(TEXT).at(-1));
      // Audible: not silence, and a plausible length for the text.
      const energy = frames.reduce((sum, f) => sum + f.pcm.reduce((s, v) => s + v * v, 0), 0) / (frames.length * (rate / 50));
      expect(Math.sqrt(energy)).toBeGreaterThan(300);
      expect(frames.length * 20).toBeGreaterThan(1000);
    });

    it("stops when aborted", async () => {
      const controller = new AbortController();
      let n = 0;
      for await (const _f of make().synthesize(TEXT, { sampleRate: 8000, signal: controller.signal })) {
        if (++n === 2) controller.abort();
      }
      expect(n).toBe(2);
    });

    it("says nothing for text without words", async () => {
      expect(await collect(make(), " ... ", 8000)).toEqual([]);
    });
  });
}

/** The sentence as a caller says it: flite at 8 kHz with a second of silence after it. */
async function callerSentence(text: string): Promise<Int16Array[]> {
  const frames = await collect(new FliteSynthesizer(), text, 8000);
  return [...frames.map((f) => f.pcm), ...Array.from({ length: 50 }, () => new Int16Array(160))];
}

async function hear(transcriber: Transcriber, audio: Int16Array[], paceMs = 0): Promise<TranscriptEvent[]> {
  const stream = await transcriber.stream({ sampleRate: 8000 });
  const gate = await SpeechGate.create(stream, { sampleRate: 8000, endpointing: transcriber.endpointing });
  const events: TranscriptEvent[] = [];
  const reading = (async () => {
    for await (const e of stream.events()) events.push(e);
  })();
  for (const pcm of audio) {
    gate.push({ pcm, sampleRate: 8000 });
    if (paceMs) await new Promise((r) => setTimeout(r, paceMs));
  }
  // Let a cloud engine answer before the input ends.
  await new Promise((r) => setTimeout(r, transcriber.endpointing === "engine" ? 300 : 0));
  stream.endInput();
  await reading;
  stream.close();
  gate.close();
  return events;
}

function transcriberConformance(name: string, make: () => Transcriber, skip?: string): void {
  describe.skipIf(skip !== undefined)(`transcriber conformance: ${name}`, () => {
    const SENTENCE = "I would like to book a table for two people.";

    it("turns a spoken sentence into speech_started, a final result and speech_ended, in that order", async () => {
      vendors.script = [SENTENCE.replace(".", "")];
      const events = await hear(make(), await callerSentence(SENTENCE));
      const kinds = events.map((e) => e.type).filter((t) => t !== "interim");
      expect(kinds).toEqual(["speech_started", "final", "speech_ended"]);
      const final = events.find((e) => e.type === "final") as { text: string };
      expect(wordErrorRate(SENTENCE, final.text), final.text).toBeLessThanOrEqual(0.2);
    });

    it("hears nothing in silence, and its event stream ends with the input", async () => {
      const events = await hear(make(), Array.from({ length: 100 }, () => new Int16Array(160)));
      expect(events.filter((e) => e.type === "final")).toEqual([]);
    });
  });
}

// ------------------------------------------------------------- engines

synthesizerConformance("flite", () => new FliteSynthesizer(), missing.flite);
synthesizerConformance("espeak-ng", () => new EspeakSynthesizer(), missing.espeak);
synthesizerConformance("fake", () => new FakeSynthesizer());
synthesizerConformance("openai (local server)", () => new OpenAiSynthesizer({ apiKey: GOOD_KEY, baseUrl: vendors.httpUrl, model: "gpt-4o-mini-tts", voice: "alloy", timeoutMs: 5000 }));
synthesizerConformance("elevenlabs (local server)", () => new ElevenLabsSynthesizer({ apiKey: GOOD_KEY, baseUrl: vendors.httpUrl, voiceId: "voice1", modelId: "eleven_flash_v2_5", timeoutMs: 5000 }));

const openAiStt = (apiKey = GOOD_KEY) =>
  new OpenAiTranscriber(OpenAiSttOptions.parse({ apiKey, baseUrl: vendors.httpUrl, model: "gpt-4o-transcribe", connectTimeoutMs: 3000 }));
const deepgramStt = (apiKey = GOOD_KEY) =>
  new DeepgramTranscriber({ apiKey, baseUrl: vendors.httpUrl.replace("http", "ws"), model: "nova-3", language: "en", endpointingMs: 300, connectTimeoutMs: 3000 });

transcriberConformance("pocketsphinx", () => new PocketsphinxTranscriber(), missing.sphinx ?? missing.flite);
transcriberConformance("fake", () => new FakeTranscriber(["I would like to book a table for two people"]), missing.flite);
transcriberConformance("openai (local server)", () => openAiStt(), missing.flite);
transcriberConformance("deepgram (local server)", () => deepgramStt(), missing.flite);
const fluxStt = () => new DeepgramTranscriber(DeepgramOptions.parse({ apiKey: GOOD_KEY, baseUrl: vendors.httpUrl.replace("http", "ws"), model: "flux-general-en", connectTimeoutMs: 3000 }));
transcriberConformance("deepgram flux (local server)", () => fluxStt(), missing.flite);

// ------------------------------------------------ cloud-specific behaviour

describe("cloud speech: keys, wire format, reconnects", () => {
  it("a bad key is a clear error naming the vendor, never echoing the key", async () => {
    const bad = "sk-this-key-is-wrong";
    const failures = [
      await openAiStt(bad).stream({ sampleRate: 8000 }).catch((e: unknown) => e),
      await deepgramStt(bad).stream({ sampleRate: 8000 }).catch((e: unknown) => e),
      await collect(new OpenAiSynthesizer({ apiKey: bad, baseUrl: vendors.httpUrl, model: "m", voice: "v", timeoutMs: 3000 }), "Hi.", 8000).catch((e: unknown) => e),
      await collect(new ElevenLabsSynthesizer({ apiKey: bad, baseUrl: vendors.httpUrl, voiceId: "v", modelId: "m", timeoutMs: 3000 }), "Hi.", 8000).catch((e: unknown) => e),
    ];
    const vendorsNamed = ["OpenAI realtime transcription", "Deepgram", "OpenAI text-to-speech", "ElevenLabs"];
    failures.forEach((err, i) => {
      expect(err).toBeInstanceOf(SpeechError);
      expect((err as Error).message).toContain(`${vendorsNamed[i]} refused the API key (HTTP 401)`);
      expect((err as Error).message).not.toContain(bad);
    });
  });

  it("an unreachable vendor fails within its timeout", async () => {
    const started = Date.now();
    const err = await collect(new OpenAiSynthesizer({ apiKey: GOOD_KEY, baseUrl: "http://127.0.0.1:9/v1", model: "m", voice: "v", timeoutMs: 2000 }), "Hi.", 8000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpeechError);
    expect((err as Error).message).toMatch(/unreachable|did not answer/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("sends phone audio to OpenAI as G.711 mu-law and asks for its semantic VAD, or the fixed-silence one a config tunes", async () => {
    const sessionOf = async (options: Record<string, unknown>) => {
      vendors.requests.length = 0;
      await hear(new OpenAiTranscriber(OpenAiSttOptions.parse({ apiKey: GOOD_KEY, baseUrl: vendors.httpUrl, connectTimeoutMs: 3000, ...options })), [new Int16Array(160)]);
      const update = vendors.requests.find((r) => (r.body as { type?: string })?.type === "transcription_session.update")!.body as {
        session: { input_audio_format: string; turn_detection: Record<string, unknown> };
      };
      return update.session;
    };
    const semantic = await sessionOf({});
    expect(semantic.input_audio_format).toBe("g711_ulaw");
    expect(semantic.turn_detection).toEqual({ type: "semantic_vad", eagerness: "auto" });
    // The reference's silenceDurationMs keeps its meaning: a fixed silence.
    expect(await sessionOf({ silenceDurationMs: 700 }).then((s) => s.turn_detection)).toEqual({ type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 700 });
    expect(await sessionOf({ turnDetection: "semantic_vad", eagerness: "low", silenceDurationMs: 700 }).then((s) => s.turn_detection)).toEqual({ type: "semantic_vad", eagerness: "low" });
  });

  it("Deepgram Flux: its v2 API with the end-of-turn settings; its EndOfTurn is the turn, through a pause after \"and\"; a flush is a ForceEndTurn", async () => {
    vendors.requests.length = 0;
    vendors.script = ["a table for two and", "a high chair"];
    const tone = (ms: number) => Array.from({ length: ms / 20 }, () => Int16Array.from({ length: 160 }, (_, i) => Math.round(6000 * Math.sin(i / 3))));
    const quiet = (ms: number) => Array.from({ length: ms / 20 }, () => new Int16Array(160));
    const transcriber = fluxStt();
    expect(transcriber.endsTurns).toBe(true);
    const events = await hear(transcriber, [...tone(600), ...quiet(800), ...tone(600), ...quiet(800)], 2);
    expect(events.filter((e) => e.type === "final")).toEqual([{ type: "final", text: "a table for two and a high chair" }]);
    const opened = vendors.requests.find((r) => r.path.startsWith("/v2/listen?"))!.path;
    expect(new URL(opened, "ws://x").searchParams.get("eot_threshold")).toBe("0.7");
    expect(new URL(opened, "ws://x").searchParams.get("model")).toBe("flux-general-en");
    const stream = await transcriber.stream({ sampleRate: 8000 });
    stream.flush();
    stream.endInput();
    for await (const _e of stream.events()) void _e;
    expect(vendors.requests.some((r) => r.path === "/v2/listen#control" && (r.body as { type: string }).type === "ForceEndTurn")).toBe(true);
    // A nova model stays on v1 and ends no turns itself.
    expect(deepgramStt().endsTurns).toBe(false);
  });

  it.each([
    ["openai", () => openAiStt()],
    ["deepgram", () => deepgramStt()],
  ] as const)("%s: a dropped session reconnects and recognition goes on", async (_name, make) => {
    vendors.script = ["first words", "second words"];
    const stream = await make().stream({ sampleRate: 8000 });
    const finals: string[] = [];
    const reading = (async () => {
      for await (const e of stream.events()) if (e.type === "final") finals.push(e.text);
    })();
    const tone = () => Int16Array.from({ length: 160 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / 8000)));
    const utterance = async () => {
      for (let i = 0; i < 25; i += 1) stream.pushFrame({ pcm: tone(), sampleRate: 8000 });
      for (let i = 0; i < 30; i += 1) stream.pushFrame({ pcm: new Int16Array(160), sampleRate: 8000 });
    };
    await utterance();
    await new Promise((r) => setTimeout(r, 200));
    vendors.dropSockets();
    await new Promise((r) => setTimeout(r, 600));
    await utterance();
    await new Promise((r) => setTimeout(r, 300));
    stream.endInput();
    await reading;
    stream.close();
    expect(finals).toEqual(["first words", "second words"]);
  });

  it("fetches TTS one sentence at a time, at the transport's rate for ElevenLabs", async () => {
    vendors.requests.length = 0;
    const frames = await collect(new ElevenLabsSynthesizer({ apiKey: GOOD_KEY, baseUrl: vendors.httpUrl, voiceId: "v1", modelId: "m", timeoutMs: 3000 }), TEXT, 16000);
    expect(vendors.requests.map((r) => r.path)).toEqual([
      "/v1/text-to-speech/v1/stream?output_format=pcm_16000",
      "/v1/text-to-speech/v1/stream?output_format=pcm_16000",
    ]);
    // The tone survives reassembly of samples split across chunks.
    expect(toneRatio(frames[5]!.pcm, 16000, 440)).toBeGreaterThan(0.45);
  });
});
