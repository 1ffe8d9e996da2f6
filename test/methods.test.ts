/** The voicecall.* methods table: the gateway's compatibility names, async turns, pre-connect keys, pairing. */
import { afterEach, describe, expect, it } from "vitest";
import { Operations } from "../src/calls/operations.js";
import { VoiceCallError } from "../src/errors.js";
import { invoke, type MethodContext } from "../src/server/methods.js";
import { startManager, tempDir, waitFor, type Harness, errorOf } from "./helpers.js";

const TO = "+15550001234";
const running: Harness[] = [];
afterEach(async () => {
  for (const h of running.splice(0)) await h.manager.stop();
});

async function context(raw: Record<string, unknown> = {}, storeDir = tempDir()): Promise<MethodContext & { h: Harness }> {
  const h = await startManager({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes please"] }, ...raw }, storeDir);
  running.push(h);
  return { manager: h.manager, operations: new Operations(), h };
}


describe("gateway compatibility methods", () => {
  it("voicecall.start needs `to`, takes no message, and presses the dtmfSequence before the message", async () => {
    const ctx = await context();
    const noTo = await errorOf(invoke(ctx, "voicecall.start", { message: "hi" }));
    expect(noTo).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "to" }] });
    const placed = (await invoke(ctx, "voicecall.start", { to: TO, mode: "conversation", dtmfSequence: "1w2#", sessionKey: "agent:main:voice:1" })) as { callId: string };
    const view = await waitFor(() => {
      const v = ctx.manager.getCall(placed.callId);
      return v?.state === "listening" ? v : undefined;
    }, "the call to listen");
    expect(ctx.h.mock.dtmfSentTo(view.providerCallId!)).toEqual(["1w2#"]);
    expect(view.sessionKey).toBe("agent:main:voice:1");
  });

  it("what Google Meet's delegation sends is accepted: start with a trusted agentId, speak with allowTwimlFallback false, status by sid", async () => {
    const ctx = await context();
    const placed = (await invoke(ctx, "voicecall.start", {
      to: TO,
      mode: "conversation",
      dtmfSequence: "123456#",
      requesterSessionKey: "agent:main:discord:channel:general",
      sessionKey: "voice:google-meet:meet-1",
      agentId: "meet-agent",
    })) as { callId: string };
    await waitFor(() => ctx.manager.getCall(placed.callId)?.state === "listening", "the call to listen");
    expect(await invoke(ctx, "voicecall.speak", { callId: placed.callId, allowTwimlFallback: false, message: "Say exactly: I'm here and listening." })).toEqual({ success: true });
    const byId = (await invoke(ctx, "voicecall.status", { sid: placed.callId })) as { found: boolean; call: { agentId?: string; transcript: Array<{ text: string }> } };
    expect(byId).toMatchObject({ found: true, call: { agentId: "meet-agent", sessionKey: "voice:google-meet:meet-1" } });
    expect(byId.call.transcript.map((t) => t.text)).toContain("Say exactly: I'm here and listening.");
    expect(await errorOf(invoke(ctx, "voicecall.status", { callId: placed.callId, sid: "another" }))).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "sid" }] });
    expect(await errorOf(invoke(ctx, "voicecall.start", { to: TO, agentId: "no spaces allowed" }))).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "agentId" }] });
  });

  it("an agent's turn asked for at once waits behind the keys and the opening message, whatever the carrier's pace", async () => {
    const ctx = await context({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes please"] } });
    const send = ctx.h.mock.sendDtmf.bind(ctx.h.mock);
    ctx.h.mock.sendDtmf = async (id, digits) => {
      await new Promise((r) => setTimeout(r, 30)); // keys take time to play
      return send(id, digits);
    };
    const { callId } = (await invoke(ctx, "voicecall.start", { to: TO, mode: "conversation", message: "Hi there.", dtmfSequence: "12#" })) as { callId: string };
    const answer = await invoke(ctx, "voicecall.continue", { callId, message: "Does Tuesday work?" });
    expect(answer).toEqual({ success: true, transcript: "yes please" });
    const bot = ctx.manager.getCall(callId)!.transcript.filter((t) => t.speaker === "bot").map((t) => t.text);
    expect(bot).toEqual(["Hi there.", "Does Tuesday work?"]);
  });

  it("voicecall.transfer: a person who does not answer leaves the caller with us; one who does ends the call transferred; warm and bad targets are refused, naming the field", async () => {
    const ctx = await context({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"], transferOutcome: "no-answer", warmTransfer: false } });
    const { callId } = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "Hello.", mode: "conversation" })) as { callId: string };
    await waitFor(() => ctx.manager.getCall(callId)?.state === "listening", "the call to listen");
    expect(await errorOf(invoke(ctx, "voicecall.transfer", { callId, to: "not a number!" }))).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "to" }] });
    expect(await errorOf(invoke(ctx, "voicecall.transfer", { callId, to: "+15550002222", mode: "warm" }))).toMatchObject({ code: "UNSUPPORTED", issues: [{ path: "mode" }] });
    expect(await errorOf(invoke(ctx, "voicecall.transfer", { callId }))).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "to" }] });
    const missed = await invoke(ctx, "voicecall.transfer", { callId, to: "+15550002222", message: "One moment, I will put you through." });
    expect(missed).toMatchObject({ success: true, transferred: false, outcome: "no-answer", to: "+15550002222", mode: "blind", state: "listening" });
    // The caller is still ours: a turn goes on as before.
    expect(await invoke(ctx, "voicecall.continue", { callId, message: "Anything else?" })).toEqual({ success: true, transcript: "yes" });
    const view = ctx.manager.getCall(callId)!;
    expect(view.transfers).toEqual([expect.objectContaining({ to: "+15550002222", outcome: "no-answer", reason: "mock transferOutcome no-answer" })]);
    expect(view.transcript.map((t) => [t.kind, t.text])).toContainEqual(["transfer", "transfer to +15550002222: no-answer (mock transferOutcome no-answer)"]);
    expect(view.transcript.findIndex((t) => t.text === "One moment, I will put you through.")).toBeLessThan(view.transcript.findIndex((t) => t.kind === "transfer"));
  });

  it("a call handed to a person ends transferred, with the attempt in its record after a restart", async () => {
    const store = tempDir();
    const ctx = await context({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] } }, store);
    const { callId } = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "Hello.", mode: "conversation" })) as { callId: string };
    await waitFor(() => ctx.manager.getCall(callId)?.state === "listening", "the call to listen");
    const done = await invoke(ctx, "voicecall.transfer", { callId, to: "+15550003333" });
    expect(done).toMatchObject({ transferred: true, outcome: "connected", state: "transferred" });
    expect(ctx.manager.getCall(callId)).toMatchObject({ state: "transferred", endReason: "transferred to +15550003333" });
    expect(await errorOf(invoke(ctx, "voicecall.speak", { callId, message: "still there?" }))).toMatchObject({ code: "CALL_ENDED" });
    await ctx.h.manager.stop();
    const again = await context({}, store);
    expect(again.manager.getCall(callId)).toMatchObject({ state: "transferred", transfers: [{ to: "+15550003333", outcome: "connected", mode: "blind" }] });
    expect(again.manager.getCall(callId)!.transcript.at(-1)).toMatchObject({ kind: "transfer", text: "transfer to +15550003333: connected" });
  });

  it("recording: the consent message is said first; a carrier whose audio does not pass through us, or a disk that fills, leaves a transcript line and the call goes on", async () => {
    const ctx = await context({ recording: { consentMessage: "This call is recorded." }, mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] } });
    const { callId } = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "Hello.", mode: "conversation", record: true })) as { callId: string };
    await waitFor(() => ctx.manager.getCall(callId)?.state === "listening", "the call to listen");
    const lines = () => ctx.manager.getCall(callId)!.transcript.map((t) => [t.kind, t.text]);
    expect(lines().slice(0, 3)).toEqual([
      ["recording", "not recorded: mock calls' audio does not pass through this service"],
      ["speech", "This call is recorded."],
      ["speech", "Hello."],
    ]);
    expect(await invoke(ctx, "voicecall.recording", { callId })).toEqual({ found: false, callId });
    expect(await errorOf(invoke(ctx, "voicecall.recording", { callId: "nope" }))).toMatchObject({ code: "NOT_FOUND", issues: [{ path: "callId" }] });

    // A carrier that records, on a disk that fills: the recording stops, the call does not.
    ctx.h.mock.record = (_id, request) => void setTimeout(() => request.failed("ENOSPC: no space left on device, write"), 20);
    const second = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "Hello again.", mode: "conversation", record: true })) as { callId: string };
    await waitFor(() => ctx.manager.getCall(second.callId)?.recording?.failed, "the recording to stop");
    expect(await invoke(ctx, "voicecall.continue", { callId: second.callId, message: "Still there?" })).toEqual({ success: true, transcript: "yes" });
    const view = ctx.manager.getCall(second.callId)!;
    expect(view.transcript.map((t) => [t.kind, t.text])).toContainEqual(["recording", "recording stopped: ENOSPC: no space left on device, write"]);
    expect(await invoke(ctx, "voicecall.recording", { callId: second.callId })).toMatchObject({ found: true, inProgress: true, channels: "stereo", failed: expect.stringContaining("ENOSPC") });
    // Not asked and not configured: not recorded, and nothing said about it.
    const third = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "Hi.", mode: "conversation", record: false })) as { callId: string };
    await waitFor(() => ctx.manager.getCall(third.callId)?.state === "listening", "the third call");
    expect(ctx.manager.getCall(third.callId)!.transcript.map((t) => t.kind)).not.toContain("recording");
  });

  it("answering machines: the opening message waits for the verdict; a machine is hung up on, or gets the message and a hang-up; a person hears the message; the verdict is in the record", async () => {
    const mock = { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] };
    const hangsUp = await context({ mock: { ...mock, answeredBy: "machine" }, outbound: { amd: { enabled: true, onMachine: "hangup" } } });
    const a = (await invoke(hangsUp, "voicecall.initiate", { to: TO, message: "Hello.", mode: "conversation" })) as { callId: string };
    const hungUp = await waitFor(() => hangsUp.manager.getCall(a.callId)?.endedAt && hangsUp.manager.getCall(a.callId), "the hang-up");
    expect(hungUp).toMatchObject({ state: "hangup-bot", endReason: "answered by a machine (mock answeredBy machine)", amd: { outcome: "machine" } });
    expect(hungUp.transcript.map((t) => [t.kind, t.text])).toEqual([["amd", "answered by a machine: mock answeredBy machine (0.0 s)"]]);

    const leaves = await context({ mock: { ...mock, answeredBy: "machine" }, outbound: { amd: { onMachine: "message", message: "Please call us back." } } });
    const b = (await invoke(leaves, "voicecall.initiate", { to: TO, message: "Hello.", mode: "conversation", amd: true })) as { callId: string };
    const left = await waitFor(() => leaves.manager.getCall(b.callId)?.endedAt && leaves.manager.getCall(b.callId), "the message left");
    expect(left).toMatchObject({ state: "hangup-bot", endReason: "message left on an answering machine" });
    expect(left.transcript.filter((t) => t.kind === "speech").map((t) => t.text)).toEqual(["Please call us back."]);
    // Not asked for: no detection.
    const plain = (await invoke(leaves, "voicecall.initiate", { to: TO, message: "Hello.", mode: "conversation" })) as { callId: string };
    await waitFor(() => leaves.manager.getCall(plain.callId)?.state === "listening", "the plain call");
    expect(leaves.manager.getCall(plain.callId)!.amd).toBeUndefined();

    const person = await context({ mock, outbound: { amd: { enabled: true, onMachine: "hangup" } } });
    const c = (await invoke(person, "voicecall.initiate", { to: TO, message: "Hello there.", mode: "conversation" })) as { callId: string };
    await waitFor(() => person.manager.getCall(c.callId)?.state === "listening", "the person's call");
    expect(person.manager.getCall(c.callId)).toMatchObject({ amd: { outcome: "human" } });
    expect(person.manager.getCall(c.callId)!.transcript.map((t) => [t.speaker, t.kind]).slice(0, 2)).toEqual([["caller", "amd"], ["bot", "speech"]]);
  });

  it("refuses a dtmfSequence on a notify call, naming the field, and places nothing", async () => {
    const ctx = await context();
    const err = await errorOf(invoke(ctx, "voicecall.initiate", { to: TO, message: "hi", mode: "notify", dtmfSequence: "12" }));
    expect(err).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "dtmfSequence" }] });
    const bad = await errorOf(invoke(ctx, "voicecall.initiate", { to: TO, message: "hi", mode: "conversation", dtmfSequence: "12x" }));
    expect(bad.issues[0]!.path).toBe("dtmfSequence");
    expect(ctx.manager.listCalls()).toEqual([]);
  });

  it("continue's digits is a count of keys, 1-64, named when wrong", async () => {
    const ctx = await context();
    for (const digits of ["5", 0, 2.5, 65]) {
      const err = await errorOf(invoke(ctx, "voicecall.continue", { callId: "x", message: "code?", digits }));
      expect(err).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "digits" }] });
    }
  });

  it("continue.start returns an operation at once; continue.result reports pending, then the answer", async () => {
    const ctx = await context({ mock: { ringMs: 5, replyDelayMs: 300, speakMsPerChar: 0, replies: ["yes please"] } });
    const { callId } = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "hello", mode: "conversation" })) as { callId: string };
    const { operationId } = (await invoke(ctx, "voicecall.continue.start", { callId, message: "Tuesday?" })) as { operationId: string };
    expect(await invoke(ctx, "voicecall.continue.result", { operationId })).toEqual({ status: "pending", operationId });
    const result = await waitFor(() => {
      const r = ctx.operations.read(operationId);
      return r.status === "pending" ? undefined : r;
    }, "the answer");
    expect(result).toEqual({ status: "completed", operationId, result: { success: true, transcript: "yes please" } });
    const missing = await errorOf(invoke(ctx, "voicecall.continue.start", { callId: "nope", message: "x" }));
    expect(missing.code).toBe("NOT_FOUND");
    expect((await errorOf(invoke(ctx, "voicecall.continue.result", { operationId: "nope" }))).code).toBe("NOT_FOUND");
  });

  it("a failed turn is reported as failed with its code", async () => {
    const ctx = await context({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["bye"], hangupAfterReplies: 1 } });
    const { callId } = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "hello", mode: "conversation" })) as { callId: string };
    await waitFor(() => ctx.manager.getCall(callId)?.state.startsWith("hangup"), "the caller to hang up");
    const err = await errorOf(invoke(ctx, "voicecall.continue.start", { callId, message: "still there?" }));
    expect(err.code).toBe("CALL_ENDED");
    const ops = new Operations();
    const { operationId } = ops.start(async () => {
      throw new VoiceCallError("TIMEOUT", "the caller said nothing");
    });
    await waitFor(() => ops.read(operationId).status !== "pending", "settled");
    expect(ops.read(operationId)).toEqual({ status: "failed", operationId, error: "the caller said nothing", code: "TIMEOUT" });
  });

  it("voicecall.status without callId lists the calls in progress only", async () => {
    const ctx = await context();
    const a = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "a", mode: "conversation" })) as { callId: string };
    const b = (await invoke(ctx, "voicecall.initiate", { to: TO, message: "b", mode: "conversation" })) as { callId: string };
    await invoke(ctx, "voicecall.end", { callId: b.callId });
    const active = (await invoke(ctx, "voicecall.status", {})) as { calls: Array<{ callId: string }> };
    expect(active.calls.map((c) => c.callId)).toEqual([a.callId]);
    const all = (await invoke(ctx, "voicecall.list", {})) as { calls: Array<{ callId: string }> };
    expect(all.calls.map((c) => c.callId).sort()).toEqual([a.callId, b.callId].sort());
  });
});

describe("operations", () => {
  it("forget settled results after keepMs and refuse past their bound", async () => {
    let now = 0;
    const ops = new Operations({ keepMs: 1000, max: 2, now: () => now });
    const a = ops.start(async () => 1);
    await waitFor(() => ops.read(a.operationId).status === "completed", "a");
    ops.start(() => new Promise(() => {}));
    ops.start(() => new Promise(() => {})); // a (settled) makes room
    expect(() => ops.start(async () => 3)).toThrow(/too many operations/);
    now = 5000;
    expect(() => ops.read(a.operationId)).toThrow(/unknown, or its result expired/);
  });
});

describe("inbound policy pairing", () => {
  it("answers paired (allowFrom) callers and refuses others with the reason", async () => {
    const ctx = await context({ inboundPolicy: "pairing", allowFrom: ["+15550001111"], inboundGreeting: "Hello." });
    const paired = ctx.h.mock.simulateInbound("+15550001111", "+15550000000");
    const stranger = ctx.h.mock.simulateInbound("+15550003333", "+15550000000");
    await waitFor(() => ctx.manager.getCall(paired)?.transcript.length, "greeting");
    expect(ctx.manager.getCall(paired)!.transcript[0]!.text).toBe("Hello.");
    expect(ctx.manager.getCall(stranger)!.endReason).toContain("not paired");
  });
});
