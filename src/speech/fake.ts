/**
 * Instant speech engines for tests and the bridge benchmark: the synthesizer
 * makes a tone per sentence at once, the recogniser "hears" each utterance
 * the bus hands it and answers with the next scripted text on its flush.
 */
import { toFrames, type SampleRate } from "../audio/frame.js";
import { AsyncQueue } from "../util/async-queue.js";
import { sentences, type SpokenFrame, type SynthesizeOptions, type Synthesizer, type TranscriptEvent, type Transcriber, type TranscriberStream } from "./types.js";

export class FakeSynthesizer implements Synthesizer {
  readonly id = "fake";

  /** `msPerChar`: how long each sentence sounds (at least one frame). */
  constructor(private readonly msPerChar = 60) {}

  async *synthesize(text: string, options: SynthesizeOptions): AsyncIterable<SpokenFrame> {
    for (const sentence of sentences(text)) {
      const samples = Math.max(1, Math.round((sentence.length * this.msPerChar * options.sampleRate) / 1000));
      const pcm = Int16Array.from({ length: samples }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / options.sampleRate)));
      const frames: SpokenFrame[] = toFrames(pcm, options.sampleRate as SampleRate);
      frames[frames.length - 1]!.completes = sentence;
      for (const frame of frames) {
        if (options.signal?.aborted) return;
        yield frame;
      }
    }
  }
}

export class FakeTranscriber implements Transcriber {
  readonly id = "fake";
  readonly endpointing = "bus" as const;
  private next = 0;

  /** `script`: what each utterance is heard as, in turn (cycled). */
  constructor(private readonly script: string[] = ["hello"]) {}

  async stream(options: { sampleRate: number }): Promise<TranscriberStream> {
    return new FakeStream(options.sampleRate, (consume) => this.script[(consume ? this.next++ : this.next) % this.script.length]!);
  }
}

class FakeStream implements TranscriberStream {
  private readonly queue = new AsyncQueue<TranscriptEvent>();
  private inSpeech = false;
  private ending = false;

  constructor(
    private readonly rate: number,
    /** The next utterance's words; `consume`: it is over, the script moves on. */
    private readonly nextText: (consume: boolean) => string,
  ) {}

  pushFrame(frame: { pcm: Int16Array; sampleRate: number }): void {
    if (this.ending) return;
    if (frame.sampleRate !== this.rate) throw new Error(`frame at ${frame.sampleRate} Hz on a ${this.rate} Hz stream`);
    if (!this.inSpeech && frame.pcm.some((v) => Math.abs(v) > 300)) {
      this.inSpeech = true;
      this.queue.push({ type: "speech_started" });
      // A partial result as a real recogniser's: turn-taking judges the pause by it.
      this.queue.push({ type: "interim", text: this.nextText(false) });
    }
  }

  flush(): void {
    if (!this.inSpeech) return;
    this.inSpeech = false;
    this.queue.push({ type: "final", text: this.nextText(true) });
    this.queue.push({ type: "speech_ended" });
  }

  endInput(): void {
    this.flush();
    this.ending = true;
    this.queue.end();
  }

  close(): void {
    this.ending = true;
    this.queue.end();
  }

  events(): AsyncIterable<TranscriptEvent> {
    return this.queue.iterate();
  }
}
