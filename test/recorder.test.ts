/**
 * The call recorder: both directions side by side as a 16-bit WAV, each
 * kept on the wall clock (a far side that sends nothing while its caller is
 * quiet leaves silence where the gap was), mono mixed, and a disk that
 * takes nothing stopping the recording with the reason, never throwing.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CallRecorder } from "../src/audio/recorder.js";
import { pruneRecordings, recordingPath, recordingsDir, transferredRecordingPath } from "../src/calls/recording.js";
import { readWav } from "../src/speech/wav.js";
import { tempDir } from "./helpers.js";

const RATE = 8000;
const FRAME = RATE / 50;
const tone = (value: number) => ({ pcm: new Int16Array(FRAME).fill(value), sampleRate: RATE as const });
/** Mean absolute level of `pcm` between `fromMs` and `toMs`. */
const level = (pcm: Int16Array, fromMs: number, toMs: number) => {
  const a = Math.floor((fromMs * RATE) / 1000);
  const b = Math.floor((toMs * RATE) / 1000);
  let sum = 0;
  for (let i = a; i < b; i += 1) sum += Math.abs(pcm[i]!);
  return sum / Math.max(1, b - a);
};

afterEach(() => vi.useRealTimers());

describe("call recorder", () => {
  it("stereo: the caller left, us right, aligned on the clock; a caller who sends nothing for a while is silence there, not a shift", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const path = join(tempDir(), "call.wav");
    const recorder = new CallRecorder(path, RATE, "stereo");
    // 0-1000 ms: the caller talks (level 1000), we are quiet; 1000-1500 ms: the caller sends nothing (a PBX
    // sends no packets in silence); 1500-2000 ms: the caller again (2000); 1000-2000 ms: we speak (3000).
    for (let ms = 0; ms < 2000; ms += 20) {
      vi.advanceTimersByTime(20);
      if (ms < 1000) recorder.caller(tone(1000));
      else if (ms >= 1500) recorder.caller(tone(2000));
      recorder.ours(ms >= 1000 ? tone(3000) : undefined);
    }
    const summary = await recorder.close();
    expect(summary).toMatchObject({ path, channels: "stereo", sampleRate: RATE });
    expect(summary.durationMs).toBeGreaterThanOrEqual(1980);
    expect(summary.durationMs).toBeLessThanOrEqual(2100);
    const wav = readWav(readFileSync(path));
    expect(wav.sampleRate).toBe(RATE);
    expect(wav.channels).toHaveLength(2);
    const [left, right] = wav.channels as [Int16Array, Int16Array];
    expect(summary.bytes).toBe(44 + left.length * 4);
    // Each side where it happened (within the 100 ms slack).
    expect(level(left, 100, 900)).toBe(1000);
    expect(level(left, 1150, 1400)).toBe(0);
    expect(level(left, 1650, 1950)).toBe(2000);
    expect(level(right, 100, 900)).toBe(0);
    expect(level(right, 1100, 1900)).toBe(3000);
  });

  it("mono mixes both sides", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const path = join(tempDir(), "mono.wav");
    const recorder = new CallRecorder(path, RATE, "mono");
    for (let ms = 0; ms < 500; ms += 20) {
      vi.advanceTimersByTime(20);
      recorder.caller(tone(1000));
      recorder.ours(tone(500));
    }
    await recorder.close();
    const wav = readWav(readFileSync(path));
    expect(wav.channels).toHaveLength(1);
    expect(level(wav.channels[0]!, 20, 480)).toBe(1500);
  });

  it("a disk that takes nothing stops the recording with the reason; nothing throws", async () => {
    const failures: string[] = [];
    const recorder = new CallRecorder("/dev/full", RATE, "stereo", (reason) => failures.push(reason));
    for (let i = 0; i < 120; i += 1) {
      recorder.caller(tone(1000));
      recorder.ours(tone(1000));
      await new Promise((r) => setImmediate(r));
    }
    const summary = await recorder.close();
    expect(failures).toEqual([expect.stringContaining("ENOSPC")]);
    expect(summary.failed).toContain("ENOSPC");
  });

  it("the recordings of calls the log no longer keeps are removed; the others stay", () => {
    const store = tempDir();
    mkdirSync(recordingsDir(store));
    for (const id of ["kept", "gone"]) {
      writeFileSync(recordingPath(store, id), "RIFF");
      writeFileSync(transferredRecordingPath(recordingPath(store, id)), "RIFF");
    }
    writeFileSync(join(recordingsDir(store), "notes.txt"), "not a recording");
    expect(pruneRecordings(store, new Map([["kept", {}]]))).toBe(2);
    expect(existsSync(recordingPath(store, "kept"))).toBe(true);
    expect(existsSync(transferredRecordingPath(recordingPath(store, "kept")))).toBe(true);
    expect(existsSync(recordingPath(store, "gone"))).toBe(false);
    expect(existsSync(transferredRecordingPath(recordingPath(store, "gone")))).toBe(false);
    expect(existsSync(join(recordingsDir(store), "notes.txt"))).toBe(true);
    expect(pruneRecordings(tempDir(), new Map())).toBe(0);
  });
});
