/**
 * Silero VAD v5, the optional, more accurate voice detector
 * (`bargeIn.vad: "silero"`). It runs the model with onnxruntime-node, which
 * is large (about 290 MB), so neither it nor the model package
 * (@ricky0123/vad-web ships silero_vad_v5.onnx) is a dependency: install
 * both to use it. The model takes 32 ms windows at 16 kHz; each window's
 * verdict stands for the frames it covers (a window behind, about 0.13 ms
 * of CPU per window here).
 */
import { createRequire } from "node:module";
import type { AudioFrame } from "./frame.js";
import { Resampler } from "./resample.js";

const RATE = 16000;
const WINDOW = 512;
/** v5 reads each window with the 64 samples before it. */
const CONTEXT = 64;
export const SILERO_PACKAGES = "onnxruntime-node @ricky0123/vad-web";

// The runtime's types are not available unless it is installed.
interface Ort {
  InferenceSession: { create(path: string): Promise<Session> };
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => unknown;
}
interface Session {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array }>>;
}

let loaded: Promise<{ ort: Ort; session: Session }> | undefined;

/** Loads the runtime and the model once; a clear error when they are not installed. */
export function loadSilero(modelPath?: string): Promise<{ ort: Ort; session: Session }> {
  loaded ??= (async () => {
    const require = createRequire(import.meta.url);
    let ort: Ort;
    let path: string;
    try {
      const name = "onnxruntime-node";
      const mod = (await import(name)) as Ort & { default?: Ort };
      // A CommonJS package: its exports are the default export under Node, the namespace under some loaders.
      ort = mod.default ?? mod;
      path = modelPath ?? require.resolve("@ricky0123/vad-web/dist/silero_vad_v5.onnx");
    } catch (err) {
      throw new Error(`bargeIn.vad "silero" needs ${SILERO_PACKAGES} installed (npm install ${SILERO_PACKAGES}): ${(err as Error).message}`);
    }
    return { ort, session: await ort.InferenceSession.create(path) };
  })();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}

export class SileroVoice {
  private state: unknown;
  private readonly window = new Float32Array(CONTEXT + WINDOW);
  private filled = 0;
  private speaking = false;
  private running: Promise<void> = Promise.resolve();

  private constructor(
    private readonly ort: Ort,
    private readonly session: Session,
    private readonly resampler: Resampler | undefined,
    private readonly threshold: number,
  ) {
    this.state = new ort.Tensor("float32", new Float32Array(2 * 128), [2, 1, 128]);
  }

  static async create(sampleRate: number, threshold = 0.5, modelPath?: string): Promise<SileroVoice> {
    const { ort, session } = await loadSilero(modelPath);
    return new SileroVoice(ort, session, sampleRate === RATE ? undefined : await Resampler.create(sampleRate, RATE), threshold);
  }

  /** The latest verdict (speech or not); feeds the frame to the model for the next one. */
  isSpeech(frame: AudioFrame): boolean {
    const pcm = this.resampler ? this.resampler.process(frame.pcm) : frame.pcm;
    for (let i = 0; i < pcm.length; i += 1) {
      this.window[CONTEXT + this.filled] = pcm[i]! / 32768;
      this.filled += 1;
      if (this.filled === WINDOW) {
        const input = this.window.slice();
        this.window.copyWithin(0, WINDOW, WINDOW + CONTEXT);
        this.filled = 0;
        this.running = this.running.then(() => this.infer(input));
      }
    }
    return this.speaking;
  }

  /** Settles when every window fed so far has been judged. */
  settled(): Promise<void> {
    return this.running;
  }

  close(): void {
    this.resampler?.destroy();
  }

  private async infer(input: Float32Array): Promise<void> {
    const { ort } = this;
    const out = await this.session.run({
      input: new ort.Tensor("float32", input, [1, CONTEXT + WINDOW]),
      state: this.state,
      sr: new ort.Tensor("int64", BigInt64Array.from([BigInt(RATE)]), []),
    });
    this.state = out.stateN;
    const p = out.output!.data[0]!;
    // Hysteresis, as Silero's own iterator does: start at the threshold, stop 0.15 below it.
    this.speaking = this.speaking ? p >= this.threshold - 0.15 : p >= this.threshold;
  }
}
