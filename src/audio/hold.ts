/**
 * What a caller on hold hears: a soft two-note chime every two seconds,
 * written to the call's transport until stopped (its queue cleared). Made
 * here, so holding needs no file and no carrier feature.
 */
import { toFrames, type AudioFrame, type SampleRate } from "./frame.js";
import type { MediaTransport } from "./transport.js";

const CYCLE_MS = 2000;
const NOTE_MS = 220;

/** One cycle of the chime as 20 ms frames. */
export function holdFrames(rate: SampleRate): AudioFrame[] {
  const total = (rate * CYCLE_MS) / 1000;
  const pcm = new Int16Array(total);
  const note = (rate * NOTE_MS) / 1000;
  for (const [start, hz] of [[0, 660], [note, 440]] as const) {
    for (let i = 0; i < note; i += 1) {
      const fade = Math.min(1, i / (note / 8), (note - i) / (note / 4));
      pcm[start + i] = Math.round(2500 * fade * Math.sin((2 * Math.PI * hz * i) / rate));
    }
  }
  return toFrames(pcm, rate);
}

/** Plays the chime on `transport` until the returned stop() (or the transport closes). */
export function holdOn(transport: MediaTransport): { stop(): void } {
  const frames = holdFrames(transport.sampleRate);
  let on = true;
  void (async () => {
    while (on && !transport.closed) {
      for (const f of frames) transport.write(f, "hold");
      if (!(await transport.mark())) return;
    }
  })();
  return {
    stop: () => {
      if (!on) return;
      on = false;
      transport.clear();
    },
  };
}
