import { afterEach, describe, expect, it } from "vitest";
import { CallManager } from "../src/calls/manager.js";
import { JsonlStore } from "../src/store/jsonl.js";
import { createLogger } from "../src/log.js";
import type { CallProvider, RemoteCallStatus } from "../src/providers/types.js";
import { makeConfig, startManager, tempDir, waitFor, type Harness, errorOf } from "./helpers.js";

const TO = "+15550001234";
let running: Harness[] = [];

async function harness(raw: Record<string, unknown> = {}, storeDir?: string): Promise<Harness> {
  const h = await startManager({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0 }, ...raw }, storeDir);
  running.push(h);
  return h;
}

afterEach(async () => {
  for (const h of running) await h.manager.stop().catch(() => undefined);
  running = [];
});

const stateOf = (h: Harness, id: string) => h.manager.getCall(id)?.state;


describe("CallManager over the Mock carrier", () => {
  it("notify mode speaks the message, then hangs up", async () => {
    const h = await harness({ outbound: { notifyHangupDelaySec: 0 } });
    const { callId, state } = await h.manager.initiateCall({ to: TO, message: "Your table is ready" });
    expect(state).toBe("initiated");
    await waitFor(() => stateOf(h, callId) === "hangup-bot", "notify hang-up");
    const call = h.manager.getCall(callId)!;
    expect(call.endReason).toBe("notify message delivered");
    expect(call.transcript.map((t) => [t.speaker, t.text])).toEqual([["bot", "Your table is ready"]]);
    expect(h.mock.spokenTo(call.providerCallId!)).toEqual(["Your table is ready"]);
    expect(call.answeredAt).toBeDefined();
  });

  it("conversation mode returns what the caller said, turn by turn", async () => {
    const h = await harness({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes please", "at seven"] } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "Shall I book?", mode: "conversation" });
    await waitFor(() => h.manager.getCall(callId)!.transcript.length === 2, "reply to the opening");
    const { transcript } = await h.manager.continueCall(callId, "What time?");
    expect(transcript).toBe("at seven");
    const call = h.manager.getCall(callId)!;
    expect(call.state).toBe("listening");
    expect(call.transcript.map((t) => `${t.speaker}:${t.text}:${t.turn}`)).toEqual([
      "bot:Shall I book?:1",
      "caller:yes please:1",
      "bot:What time?:2",
      "caller:at seven:2",
    ]);
  });

  it.each([
    ["busy", "busy"],
    ["no-answer", "no-answer"],
    ["failed", "failed"],
  ] as const)("maps the carrier outcome %s to state %s", async (outcome, state) => {
    const h = await harness({ mock: { outcome, ringMs: 5 } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hi" });
    await waitFor(() => stateOf(h, callId) === state, state);
    // A command on an ended call names the state.
    const err = await errorOf(h.manager.speak(callId, "anyone?"));
    expect(err.code).toBe("CALL_ENDED");
    expect(err.message).toContain(state);
  });

  it("gives up ringing after ringTimeoutMs as no-answer", async () => {
    const h = await harness({ ringTimeoutMs: 50, mock: { ringMs: 5000 } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hi" });
    await waitFor(() => stateOf(h, callId) === "no-answer", "ring timeout");
    expect(h.manager.getCall(callId)!.endReason).toContain("50 ms");
  });

  it("ends a call at maxDurationSeconds as timeout", async () => {
    const h = await harness({ maxDurationSeconds: 1, outbound: { defaultMode: "conversation" } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "long call" });
    await waitFor(() => stateOf(h, callId) === "listening", "answer");
    await waitFor(() => stateOf(h, callId) === "timeout", "max duration", 3000);
    expect(h.manager.getCall(callId)!.endReason).toContain("max duration");
  });

  it("reaps calls never answered, and never an answered conversation (maxDurationSeconds above the reaper)", async () => {
    const h = await harness({ staleCallReaperSeconds: 1, maxDurationSeconds: 3600, ringTimeoutMs: 60_000, inboundPolicy: "open", mock: { ringMs: 60_000, replies: [] } });
    // Started together: the same sweep finds both older than the reaper's limit.
    const talking = h.mock.simulateInbound("+15550001111", "+15550002222");
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hi" });
    const live = await waitFor(() => h.manager.listCalls().find((c) => c.providerCallId === talking && c.state === "listening"), "the inbound call answered");
    await waitFor(() => stateOf(h, callId) === "timeout", "reaper", 4000);
    expect(h.manager.getCall(callId)!.endReason).toContain("never answered");
    expect(stateOf(h, live.callId)).toBe("listening");
  });

  it("ignores speech for a stale turn", async () => {
    const h = await harness({ mock: { ringMs: 5, replies: [] } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hello", mode: "conversation" });
    await waitFor(() => stateOf(h, callId) === "listening", "listening");
    const pid = h.manager.getCall(callId)!.providerCallId!;
    const firstToken = h.mock.currentTurnToken(pid)!;

    const reply = h.manager.continueCall(callId, "next question");
    await waitFor(() => h.mock.currentTurnToken(pid) !== firstToken && stateOf(h, callId) === "listening", "second turn");
    // Late speech from the first turn must not answer the second.
    h.mock.simulateSpeech(pid, "answer to the first question", firstToken);
    h.mock.simulateSpeech(pid, "real answer", h.mock.currentTurnToken(pid));
    expect((await reply).transcript).toBe("real answer");
    const callerLines = h.manager.getCall(callId)!.transcript.filter((t) => t.speaker === "caller");
    expect(callerLines.map((t) => t.text)).toEqual(["real answer"]);
  });

  it("a newer turn supersedes a pending one", async () => {
    const h = await harness({ mock: { ringMs: 5, replies: [] } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hello", mode: "conversation" });
    await waitFor(() => stateOf(h, callId) === "listening", "listening");
    const first = h.manager.continueCall(callId, "one");
    const second = h.manager.continueCall(callId, "two");
    expect((await errorOf(first)).message).toContain("superseded");
    const pid = h.manager.getCall(callId)!.providerCallId!;
    await waitFor(() => h.mock.spokenTo(pid).includes("two") && stateOf(h, callId) === "listening", "second turn listening");
    h.mock.simulateSpeech(pid, "for two");
    expect((await second).transcript).toBe("for two");
  });

  it("fails a pending turn when the caller hangs up", async () => {
    const h = await harness({ mock: { ringMs: 5, replies: [] } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hello", mode: "conversation" });
    await waitFor(() => stateOf(h, callId) === "listening", "listening");
    const reply = h.manager.continueCall(callId, "still there?");
    const pid = h.manager.getCall(callId)!.providerCallId!;
    await waitFor(() => h.mock.spokenTo(pid).length === 2, "question spoken");
    h.mock.simulateHangup(pid);
    const err = await errorOf(reply);
    expect(err.code).toBe("CALL_ENDED");
    expect(stateOf(h, callId)).toBe("hangup-user");
  });

  it("times out a turn the caller never answers, keeping the call", async () => {
    const h = await harness({ transcriptTimeoutMs: 50, mock: { ringMs: 5, replies: [] } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hello", mode: "conversation" });
    const err = await errorOf(h.manager.continueCall(callId, "hello?"));
    expect(err.code).toBe("TIMEOUT");
    expect(stateOf(h, callId)).toBe("listening");
  });

  it("carries DTMF both ways", async () => {
    const h = await harness({ mock: { ringMs: 5, replies: [] } });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "press 1", mode: "conversation" });
    await waitFor(() => stateOf(h, callId) === "listening", "listening");
    const pid = h.manager.getCall(callId)!.providerCallId!;
    await h.manager.sendDtmf(callId, "12#");
    expect(h.mock.dtmfSentTo(pid)).toEqual(["12#"]);
    expect((await errorOf(h.manager.sendDtmf(callId, "12x"))).issues[0]?.path).toBe("digits");
    const reply = h.manager.continueCall(callId, "your PIN?");
    await waitFor(() => h.mock.spokenTo(pid).length === 2, "question");
    for (const key of "4321#") h.mock.simulateDtmf(pid, key);
    expect((await reply).transcript).toBe("[DTMF 4321]");
    expect(h.manager.getCall(callId)!.transcript.at(-1)).toMatchObject({ speaker: "caller", kind: "dtmf", text: "4321" });
  });

  it("collects keys like an IVR: until #, until the expected count, or until a pause; a lone # answers too", async () => {
    const h = await harness({ mock: { ringMs: 5, replies: [] }, dtmfInterDigitTimeoutMs: 300 });
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hello", mode: "conversation" });
    await waitFor(() => stateOf(h, callId) === "listening", "listening");
    const pid = h.manager.getCall(callId)!.providerCallId!;
    const asked = async (question: string, digits?: number) => {
      const reply = h.manager.continueCall(callId, question, { digits }).then((r) => r.transcript);
      await waitFor(() => h.mock.spokenTo(pid).at(-1) === question && stateOf(h, callId) === "listening", question);
      // Wrapped: an async function returning the promise itself would wait for the answer.
      return { reply };
    };

    // "Enter your five-digit code": complete at the fifth key, no # needed.
    const { reply: code } = await asked("your code?", 5);
    const started = Date.now();
    for (const key of "80421") h.mock.simulateDtmf(pid, key);
    expect(await code).toBe("[DTMF 80421]");
    expect(Date.now() - started).toBeLessThan(250);

    // No count: keys one by one are one answer, completed by a pause.
    const { reply: pin } = await asked("your PIN?");
    h.mock.simulateDtmf(pid, "1");
    await new Promise((r) => setTimeout(r, 150));
    h.mock.simulateDtmf(pid, "2");
    const t0 = Date.now();
    expect(await pin).toBe("[DTMF 12]");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);

    // # ends early, even short of the count; a lone # is an answer.
    const { reply: early } = await asked("extension?", 4);
    for (const key of "7*#") h.mock.simulateDtmf(pid, key);
    expect(await early).toBe("[DTMF 7*]");
    const { reply: hash } = await asked("press pound to continue");
    h.mock.simulateDtmf(pid, "#");
    expect(await hash).toBe("[DTMF #]");

    // Keys pressed just before the caller hangs up are kept.
    const { reply: last } = await asked("anything else?");
    last.catch(() => undefined);
    h.mock.simulateDtmf(pid, "9");
    h.mock.simulateHangup(pid);
    await waitFor(() => stateOf(h, callId) === "hangup-user", "hang-up");
    const keys = h.manager.getCall(callId)!.transcript.filter((t) => t.kind === "dtmf").map((t) => t.text);
    expect(keys).toEqual(["80421", "12", "7*", "#", "9"]);
  });

  it("ends a call on request and is idempotent", async () => {
    const h = await harness();
    const { callId } = await h.manager.initiateCall({ to: TO, message: "hi", mode: "conversation" });
    await waitFor(() => stateOf(h, callId) === "listening", "listening");
    expect(await h.manager.endCall(callId)).toEqual({ state: "hangup-bot" });
    expect(await h.manager.endCall(callId)).toEqual({ state: "hangup-bot" });
    expect((await errorOf(h.manager.endCall("nope"))).code).toBe("NOT_FOUND");
  });

  it("enforces maxConcurrentCalls and names bad destinations", async () => {
    const h = await harness({ maxConcurrentCalls: 1, mock: { ringMs: 60_000 } });
    await h.manager.initiateCall({ to: TO, message: "one" });
    expect((await errorOf(h.manager.initiateCall({ to: TO, message: "two" }))).code).toBe("LIMIT_REACHED");
    const bad = await errorOf(h.manager.initiateCall({ to: "call me maybe", message: "x" }));
    expect(bad.code).toBe("INVALID_PARAMS");
    expect(bad.issues[0]?.path).toBe("to");
    const unavailable = await errorOf(h.manager.initiateCall({ to: TO, message: "x", provider: "twilio" }));
    expect(unavailable.code).toBe("UNAVAILABLE");
  });

  it("uses toNumber when no destination is given", async () => {
    const h = await harness({ toNumber: "+15550009999" });
    const { callId } = await h.manager.initiateCall({ message: "hi" });
    expect(h.manager.getCall(callId)!.to).toBe("+15550009999");
    const h2 = await harness();
    expect((await errorOf(h2.manager.initiateCall({ message: "hi" }))).issues[0]?.path).toBe("to");
  });
});

describe("inbound calls", () => {
  it("are rejected while inboundPolicy is disabled", async () => {
    const h = await harness();
    const pid = h.mock.simulateInbound("+15550007777", "+15550000000");
    const call = await waitFor(() => h.manager.getCall(pid), "record");
    expect(call.state).toBe("hangup-bot");
    expect(call.endReason).toContain("disabled");
    expect((await h.mock.getCallStatus(pid)).status).toBe("ended");
  });

  it("follow the allowlist, with per-number overrides and greeting", async () => {
    const h = await harness({
      inboundPolicy: "allowlist",
      allowFrom: ["+15550001111"],
      inboundGreeting: "Hello, you reached the agent.",
      numbers: { "+15550002000": { inboundPolicy: "open", inboundGreeting: "Support line." } },
      mock: { ringMs: 5, replyDelayMs: 5, replies: ["I need help"] },
    });
    const allowed = h.mock.simulateInbound("+15550001111", "+15550000000");
    const stranger = h.mock.simulateInbound("+15550003333", "+15550000000");
    const support = h.mock.simulateInbound("+15550003333", "+15550002000");
    await waitFor(() => (h.manager.getCall(allowed)?.transcript.length ?? 0) >= 2, "greeting and reply");
    expect(h.manager.getCall(allowed)!.transcript.slice(0, 2).map((t) => t.text)).toEqual(["Hello, you reached the agent.", "I need help"]);
    expect(h.manager.getCall(allowed)!.direction).toBe("inbound");
    expect(h.manager.getCall(stranger)!.endReason).toContain("allowFrom");
    await waitFor(() => (h.manager.getCall(support)?.transcript.length ?? 0) >= 2, "support greeting");
    expect(h.manager.getCall(support)!.transcript[0]!.text).toBe("Support line.");
  });

  it("speak to a caller in the voice of the number they dialled, where it has one; other lines and outbound calls in the default", async () => {
    const h = await harness({
      inboundPolicy: "open",
      inboundGreeting: "Hello.",
      numbers: { "+15550002000": { tts: { providers: { flite: { voice: "kal" } } } } },
      outbound: { notifyHangupDelaySec: 0 },
      mock: { ringMs: 5, replies: [] },
    });
    const line = h.mock.simulateInbound("+15550003333", "+15550002000");
    const other = h.mock.simulateInbound("+15550003333", "+15550000000");
    const { callId } = await h.manager.initiateCall({ to: "+15550002000", message: "Your table is ready" });
    const out = h.manager.getCall(callId)!.providerCallId!;
    await waitFor(() => [line, other, out].every((id) => h.mock.spokenTo(id).length > 0) || undefined, "all three spoken to");
    expect(h.mock.voicesOf(line)).toEqual(["+15550002000"]);
    expect(h.mock.voicesOf(other)).toEqual([undefined]);
    expect(h.mock.voicesOf(out)).toEqual([undefined]);
  });
});

describe("restore after a restart", () => {
  class ScriptedStatus implements CallProvider {
    readonly id = "mock" as const;
    readonly capabilities = { inbound: false, dtmfOut: false, e164Only: false, turnTokens: false };
    constructor(private readonly answers: Record<string, RemoteCallStatus | Error>) {}
    async start() {}
    async stop() {}
    async placeCall(): Promise<{ providerCallId: string }> {
      throw new Error("not used");
    }
    async answer() {}
    async reject() {}
    async hangup() {}
    async speak() {
      return { interrupted: false, heard: "" };
    }
    async listen() {}
    async sendDtmf() {}
    async getCallStatus(id: string): Promise<RemoteCallStatus> {
      const a = this.answers[id];
      if (a instanceof Error) throw a;
      return a ?? { status: "unknown" };
    }
  }

  it("ends only the calls the carrier says ended; unknown keeps the call", async () => {
    const dir = tempDir();
    const h = await harness({ mock: { ringMs: 5, replies: ["fine"] } }, dir);
    const ids: string[] = [];
    for (let i = 0; i < 4; i += 1) ids.push((await h.manager.initiateCall({ to: TO, message: `call ${i}`, mode: "conversation" })).callId);
    for (const id of ids) await waitFor(() => h.manager.getCall(id)!.transcript.length === 2, "reply");
    const pids = ids.map((id) => h.manager.getCall(id)!.providerCallId!);
    // Simulate a crash: nothing is stopped or flushed, the store is reopened by a new manager.
    const config = makeConfig({}, dir);
    const provider = new ScriptedStatus({
      [pids[0]!]: { status: "ended", state: "completed", reason: "caller finished" },
      [pids[1]!]: { status: "active" },
      [pids[2]!]: new Error("carrier API timed out"),
    });
    const { store, loaded } = JsonlStore.open(dir);
    const restored = new CallManager({ config, providers: new Map([["mock", provider]]), store, loaded, logger: createLogger("silent") });
    await restored.start();
    try {
      expect(restored.getCall(ids[0]!)).toMatchObject({ state: "completed" });
      expect(restored.getCall(ids[0]!)!.endReason).toContain("caller finished");
      expect(restored.getCall(ids[1]!)!.state).toBe("listening");
      expect(restored.getCall(ids[2]!)!.state).toBe("listening");
      expect(restored.getCall(ids[3]!)!.state).toBe("listening");
      expect(restored.getCall(ids[3]!)!.transcript.map((t) => t.text)).toEqual(["call 3", "fine"]);
    } finally {
      await restored.stop();
    }
  });

  describe("barge-in", () => {
    const LONG = "Thanks for calling. Our opening hours are nine to five. We are closed on Sundays. Is there anything else?";
    const inboundGreeting = (extra: Record<string, unknown> = {}) =>
      harness({ inboundPolicy: "open", inboundGreeting: LONG, mock: { replies: [], speakMsPerChar: 10 }, ...extra });

    it("the caller talking over a message stops it; the transcript keeps what was heard and their answer", async () => {
      const h = await inboundGreeting();
      const pid = h.mock.simulateInbound("+15550009999", "+15550000001");
      const call = await waitFor(() => h.manager.listCalls().find((c) => c.providerCallId === pid), "inbound call");
      await waitFor(() => stateOf(h, call.callId) === "speaking", "greeting");
      // 400 ms in: the first sentence (19 chars, 190 ms) has played, the second has not.
      await new Promise((r) => setTimeout(r, 400));
      h.mock.simulateSpeechStart(pid);
      await waitFor(() => stateOf(h, call.callId) === "listening", "greeting stopped", 1000);
      h.mock.simulateSpeech(pid, "do you open on saturday");
      h.mock.simulateSpeechEnd(pid);
      const view = await waitFor(() => {
        const v = h.manager.getCall(call.callId)!;
        return v.transcript.length >= 3 && v;
      }, "the caller's words");
      expect(view.transcript.slice(0, 3).map((t) => [t.speaker, t.kind, t.text, t.turn])).toEqual([
        ["bot", "speech", LONG, 1],
        ["bot", "interrupted", "Thanks for calling.", 1],
        ["caller", "speech", "do you open on saturday", 1],
      ]);
    });

    it("a message queued behind the interrupted one is not played", async () => {
      const h = await inboundGreeting();
      const pid = h.mock.simulateInbound("+15550009999", "+15550000001");
      const call = await waitFor(() => h.manager.listCalls().find((c) => c.providerCallId === pid), "inbound call");
      await waitFor(() => stateOf(h, call.callId) === "speaking", "greeting");
      const queued = h.manager.speak(call.callId, "And one more thing.");
      h.mock.simulateSpeechStart(pid);
      h.mock.simulateSpeechEnd(pid);
      expect((await errorOf(queued)).code).toBe("INTERRUPTED");
      expect(h.mock.spokenTo(pid)).toEqual([LONG]);
      // A message composed after the interruption plays.
      await h.manager.speak(call.callId, "Sorry, go ahead.");
      expect(h.mock.spokenTo(pid)).toEqual([LONG, "Sorry, go ahead."]);
    });

    it("never cuts an outbound call's opening message, and can be switched off", async () => {
      const h = await harness({ outbound: { defaultMode: "conversation" }, mock: { ringMs: 5, replies: [], speakMsPerChar: 5 } });
      const { callId } = await h.manager.initiateCall({ to: TO, message: LONG });
      await waitFor(() => stateOf(h, callId) === "speaking", "opening message");
      h.mock.simulateSpeechStart(h.manager.getCall(callId)!.providerCallId!);
      await waitFor(() => stateOf(h, callId) === "listening", "opening message played", 3000);
      expect(h.manager.getCall(callId)!.transcript.map((t) => t.kind)).toEqual(["speech"]);

      const off = await inboundGreeting({ bargeIn: { enabled: false } });
      const pid = off.mock.simulateInbound("+15550009999", "+15550000001");
      const call = await waitFor(() => off.manager.listCalls().find((c) => c.providerCallId === pid), "inbound call");
      await waitFor(() => stateOf(off, call.callId) === "speaking", "greeting");
      off.mock.simulateSpeechStart(pid);
      await waitFor(() => stateOf(off, call.callId) === "listening", "greeting played", 3000);
      expect(off.manager.getCall(call.callId)!.transcript.map((t) => t.kind)).toEqual(["speech"]);
    });
  });
});
