/**
 * Streaming sample-rate conversion with the Speex resampler (WASM build from
 * @echogarden/speex-resampler-wasm). One Resampler per stream: it keeps its
 * filter state between chunks, so frame-by-frame output has no seams.
 */
// The package ships an Emscripten module factory without type declarations.
// @ts-expect-error no types
import createSpeexModule from "@echogarden/speex-resampler-wasm";

interface SpeexModule {
  HEAP16: Int16Array;
  HEAPU32: Uint32Array;
  HEAP32: Int32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _speex_resampler_init(channels: number, inRate: number, outRate: number, quality: number, errPtr: number): number;
  _speex_resampler_process_int(state: number, channel: number, inPtr: number, inLenPtr: number, outPtr: number, outLenPtr: number): number;
  _speex_resampler_destroy(state: number): void;
  _speex_resampler_skip_zeros(state: number): number;
}

let modulePromise: Promise<SpeexModule> | undefined;
const loadModule = (): Promise<SpeexModule> => (modulePromise ??= (createSpeexModule as () => Promise<SpeexModule>)());

export class Resampler {
  private inPtr = 0;
  private outPtr = 0;
  private capacity = 0;
  private readonly lenPtr: number;

  private constructor(
    private readonly mod: SpeexModule,
    private state: number,
    readonly inRate: number,
    readonly outRate: number,
  ) {
    this.lenPtr = mod._malloc(8);
  }

  /** quality 0-10; 5 is Speex's default for voice. */
  static async create(inRate: number, outRate: number, quality = 5): Promise<Resampler> {
    const mod = await loadModule();
    const errPtr = mod._malloc(4);
    const state = mod._speex_resampler_init(1, inRate, outRate, quality, errPtr);
    const err = mod.HEAP32[errPtr >> 2]!;
    mod._free(errPtr);
    if (!state || err !== 0) throw new Error(`speex resampler init ${inRate}->${outRate} failed (error ${err})`);
    mod._speex_resampler_skip_zeros(state);
    return new Resampler(mod, state, inRate, outRate);
  }

  process(input: Int16Array): Int16Array {
    if (!this.state) throw new Error("resampler was destroyed");
    const mod = this.mod;
    const outMax = Math.ceil((input.length * this.outRate) / this.inRate) + 64;
    this.ensure(Math.max(input.length, outMax));
    mod.HEAP16.set(input, this.inPtr >> 1);
    mod.HEAPU32[this.lenPtr >> 2] = input.length;
    mod.HEAPU32[(this.lenPtr >> 2) + 1] = outMax;
    const rc = mod._speex_resampler_process_int(this.state, 0, this.inPtr, this.lenPtr, this.outPtr, this.lenPtr + 4);
    if (rc !== 0) throw new Error(`speex resampler process failed (error ${rc})`);
    const produced = mod.HEAPU32[(this.lenPtr >> 2) + 1]!;
    return mod.HEAP16.slice(this.outPtr >> 1, (this.outPtr >> 1) + produced);
  }

  destroy(): void {
    if (!this.state) return;
    this.mod._speex_resampler_destroy(this.state);
    if (this.inPtr) this.mod._free(this.inPtr);
    if (this.outPtr) this.mod._free(this.outPtr);
    this.mod._free(this.lenPtr);
    this.state = 0;
  }

  private ensure(samples: number): void {
    if (samples <= this.capacity) return;
    if (this.inPtr) this.mod._free(this.inPtr);
    if (this.outPtr) this.mod._free(this.outPtr);
    this.capacity = Math.max(samples, 4096);
    this.inPtr = this.mod._malloc(this.capacity * 2);
    this.outPtr = this.mod._malloc(this.capacity * 2);
  }
}
