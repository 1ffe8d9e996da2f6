/**
 * Realtime voice on the real PBX: a lab phone calls Asterisk 22, whose
 * externalMedia audio is held by a realtime model (our OpenAI GA client on
 * the local protocol server). The phone's words reach the model as audio
 * and the model's answer is heard at the phone (read back by the offline
 * recogniser); a caller cutting in stops it at the phone within 300 ms and
 * the model's item is truncated at what played; keys both ways keep the
 * call up; the model hangs up after its farewell. Holds a lab slot only
 * while it runs; skips, saying why, where no lab can run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallView } from "../src/calls/types.js";
import { defaultLabBackend, Lab, labUnavailableReason } from "../src/lab/lab.js";
import { PhoneAudio } from "../src/lab/phone-audio.js";
import { callerScenario, runSipp } from "../src/lab/sipp.js";
import { createLogger } from "../src/log.js";
import { createRuntime, type VoiceCallRuntime } from "../src/runtime.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { transcribePcm } from "../src/speech/pocketsphinx.js";
import { synthesizeAll } from "../src/speech/types.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { FakeRealtimeVoice, type AnswerCause } from "./fakes/realtime.js";
import { GOOD_KEY } from "./fakes/vendors.js";
import { makeConfig, tempDir, waitFor } from "./helpers.js";

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`skipping the realtime PBX tests: ${unavailable}`);
/** The gateway test's slot (a container lab; it holds it only for its PBX cases), else the chroot lab's. */
const SLOT = labUnavailableReason("container") === undefined ? 2 : 0;

const GREETING = "Hello from the lab.";
const LONG =
  "Our opening hours are from nine in the morning to five in the afternoon, Monday to Friday. " +
  "On Saturdays we open at ten and close at two. We are closed on Sundays and on public holidays.";
const wordForWord = (cause: AnswerCause) => ("instructions" in cause && cause.instructions ? { say: cause.instructions.slice(cause.instructions.lastIndexOf(": ") + 2) } : undefined);

describe.skipIf(unavailable !== undefined)("realtime voice on a real Asterisk 22 (lab phone, externalMedia RTP)", () => {
  let lab: Lab;
  let rt: VoiceCallRuntime;
  let model: FakeRealtimeVoice;
  let sipPort = 15070 + 2000 * SLOT;
  let mediaPort = 16090 + 2000 * SLOT;
  let sippMediaPort = 20400 + 2000 * SLOT;
  const fliteSpeech = (text: string) => synthesizeAll(new FliteSynthesizer(), text, 8000);
  const calls = (): CallView[] => rt.manager.listCalls().map((c) => rt.manager.getCall(c.callId)!);

  /** A phone (our ear and mouth on it) dials `extension` and stays; resolves once the model's greeting has played. */
  const greetedCaller = async (extension: string) => {
    model.answer = wordForWord;
    const known = new Set(calls().map((c) => c.callId));
    const ear = await PhoneAudio.open(mediaPort);
    const phone = runSipp(lab, `rt-call-${sipPort}`, callerScenario({ extension, holdMs: "wait", mediaPort: mediaPort++ }), [
      "-s", extension, "-p", String(sipPort++), "-mp", String((sippMediaPort += 4)), "-i", "127.0.0.1", `127.0.0.1:${lab.info.sipPort}`,
    ]);
    const call = await waitFor(() => calls().find((c) => c.direction === "inbound" && !known.has(c.callId)), "an inbound call", 10_000);
    await waitFor(() => rt.manager.getCall(call.callId)?.state === "listening" && rt.manager.getCall(call.callId)!.transcript.length > 0, "the greeting played", 15_000);
    return { ear, phone, callId: call.callId };
  };

  beforeAll(async () => {
    lab = await Lab.start({ backend: defaultLabBackend(SLOT), slot: SLOT, onProgress: (l) => console.log(`[lab] ${l}`), waitForLabMs: 600_000 });
    model = await FakeRealtimeVoice.start();
    const info = lab.info;
    const config = makeConfig(
      {
        provider: "asterisk",
        inboundPolicy: "open",
        inboundGreeting: GREETING,
        asterisk: { ari: { url: info.ariUrl, username: info.ariUser, password: info.ariPassword, app: info.ariApp }, dialTemplate: "PJSIP/{to}@lab-uas" },
        realtime: { enabled: true, providers: { openai: { apiKey: GOOD_KEY, baseUrl: model.baseUrl } } },
      },
      tempDir(),
    );
    rt = await createRuntime(config, createLogger("warn"));
  }, 900_000);

  afterAll(async () => {
    await rt?.stop();
    await model?.close();
    await lab?.stop();
  });

  it("the phone's words reach the model as audio; the model's answer is heard at the phone", async () => {
    const { ear, phone, callId } = await greetedCaller("700");
    model.script = ["I would like to book a table"];
    model.answer = (cause) => ("heard" in cause ? { say: "You said you would like to book a table." } : undefined);
    await ear.say(await fliteSpeech("I would like to book a table."));
    const saidAt = performance.now();
    await ear.say(new Int16Array(8000));
    const answerAt = await waitFor(() => ear.firstLoud(saidAt), "the answer at the phone", 15_000);
    await waitFor(() => ear.quietAfter(answerAt, 800), "the answer played", 15_000);
    const heard = await transcribePcm(ear.audio(), 8000);
    expect(wordErrorRate("hello from the lab you said you would like to book a table", heard), heard).toBeLessThanOrEqual(0.35);
    expect(model.sessions.at(-1)!.updates[0]!.audio.input.format).toEqual({ type: "audio/pcmu" });
    expect(rt.manager.getCall(callId)!.transcript.map((l) => [l.speaker, l.text])).toEqual([
      ["bot", GREETING],
      ["caller", "I would like to book a table"],
      ["bot", "You said you would like to book a table."],
    ]);
    await rt.manager.endCall(callId);
    expect((await phone.done).code).toBe(0);
    ear.close();
  }, 60_000);

  it("a caller cutting in stops the model at the phone within 300 ms, and its item is truncated at what played; keys both ways keep the call up", async () => {
    const { ear, phone, callId } = await greetedCaller("701");
    model.script = ["what are your opening hours", "wait"];
    model.answer = (cause) => ("heard" in cause && cause.heard !== "wait" ? { say: LONG } : undefined);
    await ear.say(await fliteSpeech("What are your opening hours?"));
    const asked = performance.now();
    await ear.say(new Int16Array(4000));
    const started = await waitFor(() => ear.firstLoud(asked), "the answer at the phone", 10_000);
    await new Promise((r) => setTimeout(r, 1500 - (performance.now() - started)));
    const onset = await ear.say(await fliteSpeech("Wait, stop please."));
    const session = model.sessions.at(-1)!;
    const truncate = await waitFor(() => session.truncates[0], "the truncate", 5000);
    const stoppedAt = ear.lastLoud(started)!;
    console.log(`[realtime barge-in] the model's audio stopped ${(stoppedAt - onset).toFixed(0)} ms after the caller's onset; truncated at ${truncate.audio_end_ms} ms, heard ${(stoppedAt - started).toFixed(0)} ms`);
    expect(stoppedAt - onset).toBeLessThanOrEqual(300);
    // What the phone heard of it (first to last sound) is where the item was cut, give or take the words' edges.
    expect(Math.abs(truncate.audio_end_ms - (stoppedAt - started))).toBeLessThanOrEqual(300);

    // Keys: pressed at the phone they are recorded; ours reach the phone; the call and its model session stay.
    await ear.press("5");
    await waitFor(() => rt.manager.getCall(callId)!.transcript.find((l) => l.kind === "dtmf"), "the key recorded", 10_000);
    await rt.manager.sendDtmf(callId, "42");
    await waitFor(() => ear.dtmf().length === 2, "our keys at the phone", 5000);
    expect(ear.dtmf()).toBe("42");
    expect(rt.manager.getCall(callId)!.state).toBe("listening");
    expect(model.sessions.filter((s) => s === session)).toHaveLength(1);
    await rt.manager.endCall(callId);
    expect((await phone.done).code).toBe(0);
    ear.close();
  }, 60_000);

  it("the model hangs up after its farewell has played at the phone", async () => {
    const { ear, phone, callId } = await greetedCaller("702");
    model.script = ["thanks that is all"];
    const farewell = "Goodbye, and have a nice day.";
    model.answer = (cause) => ("heard" in cause ? { say: farewell, toolCall: { name: "openclaw_end_call", arguments: {} } } : undefined);
    await ear.say(await fliteSpeech("Thanks, that is all."));
    await ear.say(new Int16Array(4000));
    const ended = await waitFor(() => rt.manager.getCall(callId)?.endedAt && rt.manager.getCall(callId), "the call ended by the model", 15_000);
    expect(ended).toMatchObject({ state: "hangup-bot", endReason: "ended by the model" });
    expect((await phone.done).code).toBe(0);
    ear.close();
    // The whole call as the phone heard it: the greeting, then the farewell in full before the hang-up.
    const heard = await transcribePcm(ear.audio(), 8000);
    expect(wordErrorRate("hello from the lab goodbye and have a nice day", heard), heard).toBeLessThanOrEqual(0.35);
  }, 60_000);
});
