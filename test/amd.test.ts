/**
 * Answering-machine detection on the bus: a person's short greeting and
 * pause, a machine's long greeting, a short one given away by its beep, and
 * silence; the wait for a machine's beep before a message. The whole
 * labelled set's confusion matrix is in the bench (npm run bench).
 */
import { describe, expect, it } from "vitest";
import { BeepWaiter, detectAnsweredBy } from "../src/audio/amd.js";
import { amdSet, detect, detectWithWords } from "../src/bench/amd-set.js";

describe("answering-machine detection", () => {
  it("a person's short greeting and pause is human; a long greeting is a machine; a short one with a beep is a machine by its beep; silence is unknown", async () => {
    const set = await amdSet();
    const pick = (text: string, voice = "rms") => set.find((s) => s.text === text && s.voice === voice)!;
    const hello = detect(pick("Hello?").pcm);
    expect(hello).toMatchObject({ outcome: "human", reason: expect.stringMatching(/^a greeting of 0\.\d s, then a pause$/) });
    // Decided soon after the greeting: its length, 0.7 s of waiting, the 0.3 s before it.
    expect(hello.ms).toBeLessThan(2500);
    expect(detect(pick("Hi, you've reached Sam. I can't take your call right now. Please leave a message after the tone.").pcm)).toMatchObject({ outcome: "machine", reason: "a greeting of over 2.6 s" });
    expect(detect(pick("Leave a message.").pcm)).toMatchObject({ outcome: "machine", reason: "a beep" });
    expect(detect(new Int16Array(8000 * 6))).toMatchObject({ outcome: "unknown", reason: "nothing said for 4 s", ms: 4000 });
  });

  it("with the phrases the recogniser spots: a person answering at length is a person once they say a person's phrase, before they stop; a voicemail greeting is a machine by its phrase, before it ends; a short greeting is still a person", async () => {
    const set = await amdSet();
    const pick = (text: string) => set.find((s) => s.voice === "rms" && s.text.startsWith(text))!;
    // The greeting's end: the samples end with 4 s (people) or 400 ms + beep + 3 s (machines) of quiet.
    const business = pick("Good afternoon, Smith and Partners");
    expect(detect(business.pcm)).toMatchObject({ outcome: "machine" });
    const voicemail = pick("You have reached the voicemail");
    // At the line's pace each: all three at once.
    const [person, machine, hello] = await Promise.all([business, voicemail, pick("Hello?")].map((s) => detectWithWords(s.pcm)));
    expect(person).toMatchObject({ outcome: "human", reason: 'a person\'s words ("speaking")' });
    expect(person.ms).toBeLessThan(business.pcm.length / 8 - 4000);
    expect(machine).toMatchObject({ outcome: "machine", reason: expect.stringMatching(/^a voicemail's words \("you have reached"/) });
    expect(machine.ms).toBeLessThan(voicemail.pcm.length / 8 - 3400);
    expect(hello).toMatchObject({ outcome: "human", reason: expect.stringMatching(/^a greeting of 0\.\d s, then a pause$/) });
  });

  it("a recogniser that cannot start leaves the decision to cadence and the beep", async () => {
    const set = await amdSet();
    const hello = set.find((s) => s.voice === "rms" && s.text === "Hello?")!;
    let at = 0;
    const next = async () => (at + 160 <= hello.pcm.length ? { pcm: hello.pcm.subarray(at, (at += 160)), sampleRate: 8000 as const } : undefined);
    const verdict = await detectAnsweredBy(next, () => {
      throw new Error("pocketsphinx is not installed");
    });
    expect(verdict).toMatchObject({ outcome: "human", reason: expect.stringMatching(/^a greeting of 0\.\d s, then a pause$/) });
  });

  it("after a machine, what follows waits for the end of its beep (or of its greeting, when it has none)", async () => {
    const set = await amdSet();
    const withBeep = set.find((s) => s.label === "machine" && s.beepHz && s.text.startsWith("Hi, you've reached"))!;
    const waiter = new BeepWaiter();
    let readyAt: number | undefined;
    for (let at = 0; at + 160 <= withBeep.pcm.length; at += 160) {
      if (waiter.push({ pcm: withBeep.pcm.subarray(at, at + 160), sampleRate: 8000 })) {
        readyAt = at / 8;
        break;
      }
    }
    // The greeting, 400 ms of quiet, the 400 ms beep, then 3 s of quiet: ready right as the beep ends.
    const beepEnds = (withBeep.pcm.length - 8000 * 3) / 8;
    expect(readyAt).toBeGreaterThanOrEqual(beepEnds - 40);
    expect(readyAt).toBeLessThanOrEqual(beepEnds + 40);
  });
});
