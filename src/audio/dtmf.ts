/**
 * DTMF in the audio itself, for carriers that send keys in-band: Goertzel
 * power at the eight DTMF frequencies per 20 ms frame, with the checks a
 * telephone receiver makes (both groups present and dominant, twist within
 * limits, a minimum level) and a debounce (two frames of the same key, a gap
 * before the next), so speech and music do not turn into keys.
 */
import { concatPcm, toFrames, type AudioFrame } from "./frame.js";
import { goertzelPower } from "./goertzel.js";

const ROWS = [697, 770, 852, 941];
const COLS = [1209, 1336, 1477, 1633];
const KEYS = ["123A", "456B", "789C", "*0#D"];

/** Share the two tones must hold together (a clean key scores about 0.5, see below). */
const MIN_SHARE = 0.3;
/** Each tone at least this far (power ratio) above the others in its group. */
const GROUP_MARGIN = 4;
/** Row/column power ratio allowed either way (8 dB). */
const MAX_TWIST = 6.3;
/** Quieter frames (dBFS) are not keys. */
const MIN_DBFS = -40;

export class DtmfDetector {
  private candidate = "";
  private count = 0;
  private reported = "";

  /** Feeds one frame; returns a key once it has lasted two frames (and not for the same press again). */
  push(frame: AudioFrame): string | undefined {
    const key = detectKey(frame.pcm, frame.sampleRate);
    if (key !== this.candidate) {
      this.candidate = key;
      this.count = 0;
    }
    this.count += 1;
    if (!key) {
      this.reported = "";
      return undefined;
    }
    if (this.count >= 2 && this.reported !== key) {
      this.reported = key;
      return key;
    }
    return undefined;
  }
}

/** The key one block of audio holds, or "" when it holds none. */
export function detectKey(pcm: Int16Array, sampleRate: number): string {
  let energy = 0;
  for (let i = 0; i < pcm.length; i += 1) energy += (pcm[i]! / 32768) ** 2;
  if (pcm.length === 0 || 10 * Math.log10(energy / pcm.length) < MIN_DBFS) return "";
  // goertzelPower is normalised by N^2: a block that is one pure tone scores about 0.5, a clean key 0.25 + 0.25.
  const share = (f: number) => (goertzelPower(pcm, sampleRate, f) * pcm.length) / energy;
  const rows = ROWS.map(share);
  const cols = COLS.map(share);
  const r = strongest(rows);
  const c = strongest(cols);
  if (r < 0 || c < 0) return "";
  const row = rows[r]!;
  const col = cols[c]!;
  if (row + col < MIN_SHARE) return "";
  if (row / col > MAX_TWIST || col / row > MAX_TWIST) return "";
  return KEYS[r]![c]!;
}

/** Index of the group's strongest tone if it clearly dominates the others, else -1. */
function strongest(powers: number[]): number {
  let best = 0;
  for (let i = 1; i < powers.length; i += 1) if (powers[i]! > powers[best]!) best = i;
  for (let i = 0; i < powers.length; i += 1) if (i !== best && powers[i]! * GROUP_MARGIN > powers[best]!) return -1;
  return best;
}

/** Tone length and gap of a generated key (telephone standards ask for at least 40 ms each). */
const TONE_MS = 100;
const GAP_MS = 100;
/** A `w` in a key sequence waits this long. */
const PAUSE_MS = 500;
/** Each of the two tones at this amplitude (about -9 dBFS together). */
const TONE_AMPLITUDE = 8000;

/**
 * Keys as audio (in-band DTMF), for carriers whose media we send but that
 * offer no way to send keys without replacing the call's instructions: each
 * key a 100 ms dual tone and a 100 ms gap, `w` a 0.5 s pause.
 */
export function dtmfTones(digits: string, sampleRate: 8000 | 16000): AudioFrame[] {
  const parts: Int16Array[] = [];
  const ms = (n: number) => Math.round((sampleRate * n) / 1000);
  for (const key of digits) {
    if (key === "w") {
      parts.push(new Int16Array(ms(PAUSE_MS)));
      continue;
    }
    const row = KEYS.findIndex((r) => r.includes(key));
    if (row < 0) throw new RangeError(`not a DTMF key: ${key}`);
    const low = ROWS[row]!;
    const high = COLS[KEYS[row]!.indexOf(key)]!;
    const tone = new Int16Array(ms(TONE_MS));
    for (let i = 0; i < tone.length; i += 1) {
      const t = i / sampleRate;
      tone[i] = Math.round(TONE_AMPLITUDE * (Math.sin(2 * Math.PI * low * t) + Math.sin(2 * Math.PI * high * t)));
    }
    parts.push(tone, new Int16Array(ms(GAP_MS)));
  }
  return toFrames(concatPcm(parts), sampleRate);
}
