/**
 * Endpointing on the bus: the voice detector decides where the caller's
 * utterances start and end. Engines that ask for it (`endpointing: "bus"`)
 * hear only those utterances, each with the audio just before its onset, and
 * a flush at its end (or when turn-taking says the turn is over); the rest
 * get every frame and find the ends themselves.
 *
 * Why: pocketsphinx, fed the digital silence of an idle phone line (or faint
 * line noise), turned it into words; in grammar mode every such stretch
 * became digits. Gated, the same digits prompts read back right.
 */
import type { AudioFrame } from "../audio/frame.js";
import { SpeechDetector, type SpeechDetectorOptions, type SpeechEdge } from "../audio/vad.js";
import type { TranscriberStream } from "./types.js";

/** Audio kept from before the detector's onset (it fires minSpeechMs into the words). */
const PREROLL_MS = 600;

export class SpeechGate {
  private readonly preroll: AudioFrame[] = [];
  private prerollMs = 0;

  private constructor(
    private readonly detector: SpeechDetector,
    private readonly stream: TranscriberStream,
    private readonly gated: boolean,
    private readonly flushAtPause: boolean,
  ) {}

  static async create(
    stream: TranscriberStream,
    options: {
      sampleRate: number;
      endpointing: "bus" | "engine";
      detector?: Partial<SpeechDetectorOptions>;
      /** Flush at every pause the detector hears (false: the caller of `flush` decides; turn-taking does). */
      flushAtPause?: boolean;
    },
  ): Promise<SpeechGate> {
    const detector = await SpeechDetector.create(options.sampleRate, options.detector);
    return new SpeechGate(detector, stream, options.endpointing === "bus", options.flushAtPause ?? true);
  }

  /** Feeds one caller frame; returns the speech edge it completes, if any. */
  push(frame: AudioFrame): SpeechEdge | undefined {
    const edge = this.detector.push(frame);
    if (!this.gated) {
      this.stream.pushFrame(frame);
      return edge;
    }
    if (edge === "start") {
      for (const f of this.preroll) this.stream.pushFrame(f);
      this.preroll.length = 0;
      this.prerollMs = 0;
    }
    // The recogniser hears the utterance and the pause that ended it (the detector's minimum silence); when
    // turn-taking keeps the utterance open, it hears what the caller says next as more of it. (Feeding it the
    // whole pause instead made its partial results worse on the bench's pause set: 29 cut-offs against 22.)
    if (this.detector.inSpeech || edge === "end") {
      this.stream.pushFrame(frame);
      if (edge === "end" && this.flushAtPause) this.stream.flush();
      return edge;
    }
    this.preroll.push(frame);
    this.prerollMs += (frame.pcm.length * 1000) / frame.sampleRate;
    while (this.prerollMs > PREROLL_MS) {
      const old = this.preroll.shift()!;
      this.prerollMs -= (old.pcm.length * 1000) / old.sampleRate;
    }
    return edge;
  }

  close(): void {
    this.detector.close();
  }
}
