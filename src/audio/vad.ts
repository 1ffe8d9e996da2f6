/**
 * Is the caller speaking? WebRTC's voice activity detector (WASM build from
 * @echogarden/fvad-wasm) gated by an energy floor and a minimum duration.
 * The floor is what keeps room tone and line hiss from counting as speech
 * (a bare VAD fires on the breath of someone picking up the phone), and the
 * minimum duration keeps clicks and coughs from barging in.
 */
// The package ships an Emscripten module factory without type declarations.
// @ts-expect-error no types
import createFvadModule from "@echogarden/fvad-wasm";
import type { AudioFrame } from "./frame.js";
import { Resampler } from "./resample.js";
import { SileroVoice } from "./silero.js";

interface FvadModule {
  HEAP16: Int16Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _fvad_new(): number;
  _fvad_free(inst: number): void;
  _fvad_set_mode(inst: number, mode: number): number;
  _fvad_set_sample_rate(inst: number, rate: number): number;
  _fvad_process(inst: number, frame: number, length: number): number;
}

let modulePromise: Promise<FvadModule> | undefined;
const loadModule = (): Promise<FvadModule> => (modulePromise ??= (createFvadModule as () => Promise<FvadModule>)());

/** Rates the WebRTC detector takes as they are; others are resampled to 16 kHz. */
const FVAD_RATES = new Set([8000, 16000, 32000, 48000]);

export interface SpeechDetectorOptions {
  /** Which model says "speech": WebRTC's VAD (default), or Silero v5 where installed (see silero.ts). */
  vad: "webrtc" | "silero";
  /** WebRTC VAD aggressiveness, 0 (lenient) to 3 (strict). */
  vadMode: 0 | 1 | 2 | 3;
  /** Frames quieter than this (dBFS) never count as speech. */
  energyThresholdDb: number;
  /** Speech must last this long before it starts (and barge-in fires). */
  minSpeechMs: number;
  /** This much non-speech ends it. */
  minSilenceMs: number;
}

export const DEFAULT_DETECTOR: SpeechDetectorOptions = { vad: "webrtc", vadMode: 2, energyThresholdDb: -40, minSpeechMs: 120, minSilenceMs: 600 };

export type SpeechEdge = "start" | "end";

/** Loudness of a frame in dBFS (-Infinity for digital silence). */
export function frameDbfs(pcm: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < pcm.length; i += 1) sum += pcm[i]! * pcm[i]!;
  return 10 * Math.log10(sum / Math.max(1, pcm.length) / (32768 * 32768));
}

export class SpeechDetector {
  private speaking = false;
  /** ms of speech (or silence, while speaking) in the current run. */
  private run = 0;
  private buffer = 0;
  private capacity = 0;
  private resampler?: Resampler;
  private silero?: SileroVoice;

  private constructor(
    private readonly mod: FvadModule,
    private inst: number,
    private readonly options: SpeechDetectorOptions,
    private readonly rate: number,
  ) {}

  static async create(sampleRate: number, options: Partial<SpeechDetectorOptions> = {}): Promise<SpeechDetector> {
    const mod = await loadModule();
    const inst = mod._fvad_new();
    if (!inst) throw new Error("fvad_new failed");
    const rate = FVAD_RATES.has(sampleRate) ? sampleRate : 16000;
    const opts = { ...DEFAULT_DETECTOR, ...options };
    if (mod._fvad_set_mode(inst, opts.vadMode) !== 0 || mod._fvad_set_sample_rate(inst, rate) !== 0) {
      mod._fvad_free(inst);
      throw new Error(`fvad rejected mode ${opts.vadMode} or rate ${rate}`);
    }
    const detector = new SpeechDetector(mod, inst, opts, rate);
    if (rate !== sampleRate) detector.resampler = await Resampler.create(sampleRate, rate);
    if (opts.vad === "silero") detector.silero = await SileroVoice.create(sampleRate);
    return detector;
  }

  get inSpeech(): boolean {
    return this.speaking;
  }

  /** Whether this one frame sounds like speech (energy floor and VAD). */
  isSpeech(frame: AudioFrame): boolean {
    if (this.silero) {
      // Silero keeps state across windows, so it hears every frame, quiet ones too.
      const voiced = this.silero.isSpeech(frame);
      return voiced && frameDbfs(frame.pcm) >= this.options.energyThresholdDb;
    }
    if (frameDbfs(frame.pcm) < this.options.energyThresholdDb) return false;
    const pcm = this.resampler ? this.resampler.process(frame.pcm) : frame.pcm;
    // fvad takes 10, 20 or 30 ms; a resampled frame can be a sample short or long.
    const tenMs = this.rate / 100;
    const n = Math.min(3, Math.floor(pcm.length / tenMs)) * tenMs;
    if (n === 0) return false;
    if (n > this.capacity) {
      if (this.buffer) this.mod._free(this.buffer);
      this.buffer = this.mod._malloc(n * 2);
      this.capacity = n;
    }
    this.mod.HEAP16.set(pcm.subarray(0, n), this.buffer >> 1);
    return this.mod._fvad_process(this.inst, this.buffer, n) === 1;
  }

  /** Feeds one frame; returns the edge it completes, if any. */
  push(frame: AudioFrame): SpeechEdge | undefined {
    const ms = (frame.pcm.length * 1000) / frame.sampleRate;
    const voiced = this.isSpeech(frame);
    if (voiced !== this.speaking) this.run += ms;
    else this.run = 0;
    if (!this.speaking && this.run >= this.options.minSpeechMs) {
      this.speaking = true;
      this.run = 0;
      return "start";
    }
    if (this.speaking && this.run >= this.options.minSilenceMs) {
      this.speaking = false;
      this.run = 0;
      return "end";
    }
    return undefined;
  }

  close(): void {
    if (!this.inst) return;
    this.mod._fvad_free(this.inst);
    if (this.buffer) this.mod._free(this.buffer);
    this.resampler?.destroy();
    this.silero?.close();
    this.inst = 0;
  }
}
