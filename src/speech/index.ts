/**
 * The speech engines, each registered once with its options schema and an
 * auto-select order. `streaming.provider` / `tts.provider` pick one by id;
 * unset, the first in auto-select order whose options are complete (cloud
 * engines need a key) is used, so offline speech is the default and cloud
 * speech takes over once a key is configured. Options live under
 * `streaming.providers.<id>` / `tts.providers.<id>`, owned by each engine.
 */
import { z } from "zod";
import { providersInUse } from "../config/load.js";
import type { ProviderId, VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError, zodIssues, type FieldIssue } from "../errors.js";
import { DeepgramOptions, DeepgramTranscriber } from "./deepgram.js";
import { ElevenLabsOptions, ElevenLabsSynthesizer } from "./elevenlabs.js";
import { EspeakSynthesizer } from "./espeak.js";
import { FakeSynthesizer, FakeTranscriber } from "./fake.js";
import { FliteSynthesizer } from "./flite.js";
import { OpenAiSttOptions, OpenAiSynthesizer, OpenAiTranscriber, OpenAiTtsOptions } from "./openai.js";
import { PocketsphinxTranscriber } from "./pocketsphinx.js";
import { SentenceCache } from "./sentence-cache.js";
import { SpeechError, type Synthesizer, type Transcriber } from "./types.js";
import { VoiceBook } from "./voice-book.js";

interface Entry<T> {
  options: z.ZodType;
  /** Lower goes first when nothing is chosen; undefined: only when chosen by id. */
  autoSelectOrder?: number;
  create(options: any): T;
}

const TRANSCRIBERS: Record<string, Entry<Transcriber>> = {
  openai: { options: OpenAiSttOptions, autoSelectOrder: 10, create: (o) => new OpenAiTranscriber(o) },
  deepgram: { options: DeepgramOptions, autoSelectOrder: 20, create: (o) => new DeepgramTranscriber(o) },
  pocketsphinx: {
    options: z.strictObject({
      modelDir: z.string().min(1).optional().describe("acoustic model folder (default Debian's pocketsphinx-en-us)"),
      jsgf: z.string().min(1).optional().describe("a JSGF grammar file every turn is decoded with"),
      workers: z.number().int().min(1).max(64).optional().describe("recognition threads (default 1; one keeps up with about 8 callers talking at once, see docs/performance.md)"),
      decoders: z.number().int().min(1).max(32).optional().describe("decoders per thread, lent per utterance (default 4, each ~100 MB); callers beyond them wait their turn"),
      maxWaitingSeconds: z
        .number()
        .int()
        .min(1)
        .max(600)
        .optional()
        .describe("speech a call may hold while waiting for a decoder before it is recorded as unrecognised (default 30)"),
    }),
    autoSelectOrder: 100,
    create: (o) => new PocketsphinxTranscriber(o),
  },
  fake: {
    options: z.strictObject({ script: z.array(z.string()).min(1).optional().describe("what it hears, one entry per utterance (tests and the bench)") }),
    create: (o) => new FakeTranscriber(o.script),
  },
};

const SYNTHESIZERS: Record<string, Entry<Synthesizer>> = {
  openai: { options: OpenAiTtsOptions, autoSelectOrder: 10, create: (o) => new OpenAiSynthesizer(o) },
  elevenlabs: { options: ElevenLabsOptions, autoSelectOrder: 20, create: (o) => new ElevenLabsSynthesizer(o) },
  flite: {
    options: z.strictObject({ voice: z.string().min(1).optional().describe('flite voice: rms (default), awb, slt, kal16 or kal') }),
    autoSelectOrder: 100,
    create: (o) => new FliteSynthesizer(o),
  },
  "espeak-ng": {
    options: z.strictObject({
      voice: z.string().min(1).optional().describe("espeak-ng voice, e.g. en-us"),
      speed: z.number().int().min(80).max(450).optional().describe("words per minute"),
    }),
    create: (o) => new EspeakSynthesizer(o),
  },
  fake: {
    options: z.strictObject({ msPerChar: z.number().nonnegative().optional().describe("silence made per character (tests and the bench)") }),
    create: (o) => new FakeSynthesizer(o.msPerChar),
  },
};

export const TRANSCRIBER_IDS = Object.keys(TRANSCRIBERS);
export const SYNTHESIZER_IDS = Object.keys(SYNTHESIZERS);

/** Engines that run on this machine with nothing to configure. */
const OFFLINE = new Set(["pocketsphinx", "flite", "espeak-ng", "fake"]);

/**
 * Which engine a section (streaming, tts, numbers.<n>.tts) selects, its
 * parsed options, and why it was picked. `lenient`: a chosen engine this
 * service does not have (inside the gateway, one of the gateway's), or whose
 * options do not parse, falls back to auto-selection instead of failing.
 */
function choose<T>(registry: Record<string, Entry<T>>, section: string, chosen: string | undefined, providers: Record<string, unknown>, lenient = false) {
  if (chosen !== undefined) {
    const entry = registry[chosen];
    const parsed = entry?.options.safeParse(providers[chosen] ?? {});
    if (entry && parsed?.success) return { id: chosen, entry, options: parsed.data, why: `${section}.provider names it` };
    if (!lenient) {
      if (!entry) {
        const message = `unknown speech provider "${chosen}" (available: ${Object.keys(registry).join(", ")})`;
        throw new VoiceCallError("INVALID_CONFIG", `${section}.provider: ${message}`, [{ path: `${section}.provider`, message }]);
      }
      const issues = zodIssues(parsed!.error!, `${section}.providers.${chosen}`);
      throw new VoiceCallError("INVALID_CONFIG", `${section}.provider ${chosen}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
    }
  }
  const auto = Object.entries(registry)
    .filter(([, e]) => e.autoSelectOrder !== undefined)
    .sort(([, a], [, b]) => a.autoSelectOrder! - b.autoSelectOrder!);
  for (const [id, entry] of auto) {
    const parsed = entry.options.safeParse(providers[id] ?? {});
    if (!parsed.success) continue;
    const why = OFFLINE.has(id) ? "the offline default (no cloud engine has its key)" : `the first engine with its key configured (${section}.providers.${id})`;
    return { id, entry, options: parsed.data, why: chosen === undefined ? why : `${section}.provider ${chosen} is not one of this service's engines; ${why}` };
  }
  throw new VoiceCallError("INVALID_CONFIG", `${section}: no speech provider is usable`);
}

/** The engine serving one direction, and why it was picked (the start log and `voicecall setup` say it). */
export interface EngineChoice {
  engine: string;
  why: string;
}

/** What speaks and what listens: the service's own engines as the config picks them. */
export function speechChoice(config: VoiceCallConfig, lenient = false): { tts: EngineChoice; stt: EngineChoice } {
  const tts = choose(SYNTHESIZERS, "tts", config.tts.provider, config.tts.providers, lenient);
  const stt = choose(TRANSCRIBERS, "streaming", config.streaming.provider, config.streaming.providers, lenient);
  return { tts: { engine: tts.id, why: tts.why }, stt: { engine: stt.id, why: stt.why } };
}

/** Whether an engine id is one of this service's offline engines (run here even inside the gateway). */
export function isOfflineEngine(id: string | undefined): boolean {
  return id !== undefined && OFFLINE.has(id);
}

function build<T>(what: string, create: () => T): T {
  try {
    return create();
  } catch (err) {
    if (err instanceof SpeechError) throw new VoiceCallError("UNAVAILABLE", `${what}: ${err.message}`);
    throw err;
  }
}

/** Recognition: streaming.provider, else the first configured in auto-select order (pocketsphinx offline). */
export function createTranscriber(config: VoiceCallConfig, lenient = false): Transcriber {
  const { id, entry, options } = choose(TRANSCRIBERS, "streaming", config.streaming.provider, config.streaming.providers, lenient);
  return build(`streaming.provider ${id}`, () => entry.create(options));
}

/**
 * Synthesis: tts.provider, else the first configured in auto-select order
 * (flite offline); numbers with their own `tts` (deep-merged over `tts`)
 * get their own engine, picked by the number a caller dialled.
 */
export function createSynthesizer(config: VoiceCallConfig, lenient = false): Synthesizer {
  const engine = (section: string, tts: { provider?: string; providers: Record<string, Record<string, unknown>> }) => {
    const { id, entry, options } = choose(SYNTHESIZERS, section, tts.provider, tts.providers, lenient);
    // Greetings and other repeated lines are made once, not once per caller.
    return new SentenceCache(build(`${section}.provider ${id}`, () => entry.create(options)));
  };
  const fallback = engine("tts", config.tts);
  const voices = new Map<string, Synthesizer>();
  for (const [number, override] of Object.entries(config.numbers)) {
    if (override.tts) voices.set(number, engine(`numbers.${number}.tts`, numberTts(config.tts, override.tts)));
  }
  return voices.size > 0 ? new VoiceBook(fallback, voices) : fallback;
}

type TtsSection = { provider?: string; providers?: Record<string, Record<string, unknown>> };

/**
 * What a valid config does that its author may not expect, said at start: a
 * number whose own voice names engines none of which can run as configured
 * (a cloud engine without its key) speaks with the engine picked instead.
 */
export function speechConfigNotes(config: VoiceCallConfig): string[] {
  const out: string[] = [];
  // Only where our engines speak: Asterisk, and cloud carriers streaming to us (not the Mock, not a carrier's own voice).
  const used = providersInUse(config);
  const ours = used.has("asterisk") || (config.streaming.enabled && ["twilio", "telnyx", "plivo"].some((p) => used.has(p as ProviderId)));
  if (!ours) return out;
  for (const [number, override] of Object.entries(config.numbers)) {
    const named = Object.keys(override.tts?.providers ?? {});
    if (!override.tts || override.tts.provider || named.length === 0) continue;
    const merged = numberTts(config.tts, override.tts);
    const { id } = choose(SYNTHESIZERS, `numbers.${number}.tts`, merged.provider, merged.providers);
    if (!named.includes(id)) {
      out.push(`numbers.${number}.tts: ${named.join(", ")} cannot run as configured (a cloud engine needs its key, e.g. OPENAI_API_KEY), so this number speaks with ${id}`);
    }
  }
  return out;
}

/** A number's `tts` deep-merged over the global one: its provider, and each engine's options key by key. */
export function numberTts(base: TtsSection, own: TtsSection): { provider?: string; providers: Record<string, Record<string, unknown>> } {
  const providers: Record<string, Record<string, unknown>> = { ...base.providers };
  for (const [id, options] of Object.entries(own.providers ?? {})) providers[id] = { ...providers[id], ...options };
  return { provider: own.provider ?? base.provider, providers };
}

/**
 * Speech config problems inside the gateway: engines other than this
 * service's offline ones may be the gateway's (its TTS providers and
 * realtime transcription providers own their options), so only sections
 * that pick an offline engine, and offline engines' own options, are checked.
 */
export function gatewaySpeechConfigIssues(raw: Record<string, unknown>): FieldIssue[] {
  return speechConfigIssues(raw, true);
}

/**
 * Config problems in speech options, for the config loader to report with
 * everything else. Reads raw input: wrong types are the schema's to report.
 */
export function speechConfigIssues(raw: Record<string, unknown>, offlineOnly = false): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const object = (node: unknown) => (typeof node === "object" && node !== null && !Array.isArray(node) ? (node as Record<string, unknown>) : {});
  const read = (node: unknown): TtsSection => {
    const obj = object(node);
    return { provider: typeof obj.provider === "string" ? obj.provider : undefined, providers: object(obj.providers) as Record<string, Record<string, unknown>> };
  };
  const streaming = read(raw.streaming);
  const tts = read(raw.tts);
  const sections: Array<[string, Record<string, Entry<unknown>>, TtsSection, Record<string, unknown>]> = [
    ["streaming", TRANSCRIBERS, streaming, streaming.providers ?? {}],
    ["tts", SYNTHESIZERS, tts, tts.providers ?? {}],
  ];
  // A number's own voice: its tts over the global one; only the keys it sets are its own to report.
  for (const [number, override] of Object.entries(object(raw.numbers))) {
    if (object(override).tts === undefined) continue;
    const own = read(object(override).tts);
    sections.push([`numbers.${number}.tts`, SYNTHESIZERS, numberTts(tts, own), own.providers ?? {}]);
  }
  for (const [section, registry, chosen, own] of sections) {
    try {
      if (!offlineOnly || isOfflineEngine(chosen.provider)) choose(registry, section, chosen.provider, chosen.providers ?? {});
    } catch (err) {
      if (err instanceof VoiceCallError) issues.push(...err.issues);
    }
    for (const [id, options] of Object.entries(own)) {
      if (offlineOnly && !isOfflineEngine(id)) continue;
      const entry = registry[id];
      if (!entry) {
        issues.push({ path: `${section}.providers.${id}`, message: `unknown speech provider (available: ${Object.keys(registry).join(", ")})` });
        continue;
      }
      // A cloud engine that is only partly configured (no key) is not an error unless chosen.
      const parsed = entry.options.safeParse(chosen.providers?.[id] ?? options);
      if (!parsed.success && id !== chosen.provider) {
        issues.push(...zodIssues(parsed.error, `${section}.providers.${id}`).filter((i) => !i.message.startsWith("required")));
      }
    }
  }
  return issues;
}

/** Each engine's options schema by section (streaming: recognisers, tts: synthesizers), for the generated config reference. */
export function speechEngineOptions(): Array<{ section: "streaming" | "tts"; id: string; options: z.ZodType; autoSelectOrder?: number }> {
  const list = (section: "streaming" | "tts", registry: Record<string, Entry<unknown>>) =>
    Object.entries(registry).map(([id, e]) => ({ section, id, options: e.options, autoSelectOrder: e.autoSelectOrder }));
  return [...list("streaming", TRANSCRIBERS), ...list("tts", SYNTHESIZERS)];
}
