/**
 * The carrier conformance suite: one set of behaviour tests every cloud
 * carrier runs, each against its own protocol server (its REST API on
 * loopback, webhooks signed its way, its media stream's message names):
 * outbound, inbound (and refused), speak, listen, barge-in, keys in and out,
 * hang-up both ways, end states before an answer, restore after a restart.
 * A carrier joins by describing how its side of a call is played (a Kit).
 */
import { DtmfDetector } from "../src/audio/dtmf.js";
import { concatPcm } from "../src/audio/frame.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallManager } from "../src/calls/manager.js";
import { createLogger } from "../src/log.js";
import { startService, type RunningService } from "../src/server/service.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { transcribePcm } from "../src/speech/pocketsphinx.js";
import { synthesizeAll } from "../src/speech/types.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { MediaStreamClient, PLIVO, TELNYX, TWILIO } from "./fakes/media-stream.js";
import { AUTH_ID, AUTH_TOKEN as PLIVO_TOKEN, FakePlivo, plivoStreamOf } from "./fakes/plivo.js";
import { API_KEY, CONNECTION_ID, FakeTelnyx } from "./fakes/telnyx.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, callSid, streamOf } from "./fakes/twilio.js";
import { freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const CALLER = "+15550001234";
const OURS = "+15550009999";
const STRANGER = "+15557770000";
type Ending = "callee-hangup" | "busy" | "no-answer" | "failed";

/** How one carrier's side of a call is played. */
interface Kit {
  id: "twilio" | "telnyx" | "plivo";
  start(): Promise<{ baseUrl: string; close(): Promise<void> }>;
  /** The carrier's keys in the config. */
  keys(): Record<string, unknown>;
  /** The callee answers our call and the carrier opens the media stream. */
  answer(providerCallId: string): Promise<MediaStreamClient>;
  /** A caller rings in; the stream when the service took the call. */
  ringIn(from: string): Promise<{ id: string; stream?: MediaStreamClient }>;
  /** The carrier reports how the call ended. */
  report(providerCallId: string, how: Ending): Promise<void>;
  /** The service asked the carrier to hang this call up. */
  hungUp(providerCallId: string): boolean;
  /** The keys the service pressed, as the far end got them. */
  keysSent(providerCallId: string, stream: MediaStreamClient, since: number): string;
  /** The call no longer exists at the carrier. */
  gone(providerCallId: string): void;
}

let webhookUrl = "";

function twilioKit(): Kit {
  let fake: FakeTwilio;
  let seq = 0;
  const ended: Record<Ending, string> = { "callee-hangup": "completed", busy: "busy", "no-answer": "no-answer", failed: "failed" };
  return {
    id: "twilio",
    start: async () => (fake = await FakeTwilio.start()),
    keys: () => ({ twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN } }),
    async answer(sid) {
      const twiml = await fake.webhook(`${webhookUrl}?type=voice`, fake.voiceParams(sid, "outbound-api"));
      const target = streamOf(twiml.body)!;
      return MediaStreamClient.connect(target.url, { callSid: sid, token: target.token }, TWILIO);
    },
    async ringIn(from) {
      const sid = callSid(0xc0f000 + (seq += 1));
      const reply = await fake.webhook(webhookUrl, fake.voiceParams(sid, "inbound", from, OURS));
      const target = streamOf(reply.body);
      return { id: sid, stream: target && (await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token }, TWILIO)) };
    },
    async report(sid, how) {
      await fake.webhook(`${webhookUrl}?type=status`, { AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: ended[how], Direction: "outbound-api" });
    },
    hungUp: (sid) => fake.made("POST", new RegExp(`${sid}\\.json$`)).some((r) => r.form.Status === "completed" || r.form.Status === "canceled"),
    keysSent(_sid, stream, since) {
      // Twilio: tones on the stream (changing the call's TwiML would drop the stream).
      const detector = new DtmfDetector();
      return stream.mediaAfter(since).map((m) => detector.push({ pcm: m.pcm!, sampleRate: 8000 }) ?? "").join("");
    },
    gone: (sid) => void (fake.calls.get(sid)!.status = "completed"),
  };
}

function telnyxKit(): Kit {
  let fake: FakeTelnyx;
  const causes: Record<Ending, string> = { "callee-hangup": "normal_clearing", busy: "user_busy", "no-answer": "timeout", failed: "unallocated_number" };
  const event = (type: string, id: string, extra: Record<string, unknown> = {}) =>
    fake.event(type, { call_control_id: id, connection_id: CONNECTION_ID, from: CALLER, to: OURS, ...extra });
  const streamAfter = async (id: string, action: string) => {
    const started = await waitFor(() => fake.made("POST", new RegExp(`/calls/${id}/actions/${action}$`))[0], action);
    return MediaStreamClient.connect(started.body.stream_url, { callSid: id, token: Buffer.from(started.body.client_state, "base64").toString() }, TELNYX);
  };
  return {
    id: "telnyx",
    start: async () => (fake = await FakeTelnyx.start()),
    keys: () => ({ telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID, publicKey: fake.publicKey } }),
    async answer(id) {
      await fake.webhook(webhookUrl, event("call.answered", id));
      return streamAfter(id, "streaming_start");
    },
    async ringIn(from) {
      const id = fake.newCallId();
      fake.alive.set(id, true);
      await fake.webhook(webhookUrl, event("call.initiated", id, { direction: "incoming", from }));
      const action = await waitFor(() => fake.made("POST", new RegExp(`/calls/${id}/actions/(answer|reject)$`))[0], "answer or reject");
      return { id, stream: action.path.endsWith("answer") ? await streamAfter(id, "answer") : undefined };
    },
    async report(id, how) {
      await fake.webhook(webhookUrl, event("call.hangup", id, { hangup_cause: causes[how], hangup_source: "callee" }));
    },
    hungUp: (id) => fake.made("POST", new RegExp(`/calls/${id}/actions/hangup$`)).length > 0,
    keysSent: (id) => fake.made("POST", new RegExp(`/calls/${id}/actions/send_dtmf$`)).map((r) => r.body.digits).join(""),
    gone: (id) => void fake.alive.set(id, false),
  };
}

function plivoKit(): Kit {
  let fake: FakePlivo;
  let seq = 0;
  /** CallUUID by request_uuid, once answered. */
  const uuids = new Map<string, string>();
  const uuidOf = (id: string) => uuids.get(id) ?? id;
  const newUuid = () => `c0ffee00-0000-4000-8000-${(seq += 1).toString(16).padStart(12, "0")}`;
  const statuses: Record<Ending, string> = { "callee-hangup": "completed", busy: "busy", "no-answer": "no-answer", failed: "failed" };
  const connect = (body: string, callUuid: string) => {
    const target = plivoStreamOf(body)!;
    return MediaStreamClient.connect(target.url, { callSid: callUuid, token: target.headers }, PLIVO);
  };
  return {
    id: "plivo",
    start: async () => (fake = await FakePlivo.start()),
    keys: () => ({ plivo: { authId: AUTH_ID, authToken: PLIVO_TOKEN } }),
    async answer(requestUuid) {
      const callUuid = newUuid();
      uuids.set(requestUuid, callUuid);
      fake.calls.set(callUuid, "live");
      fake.calls.set(requestUuid, "ended");
      const reply = await fake.webhook(`${webhookUrl}?type=answer`, { CallUUID: callUuid, RequestUUID: requestUuid, Direction: "outbound", From: OURS, To: CALLER, CallStatus: "in-progress" });
      return connect(reply.body, callUuid);
    },
    async ringIn(from) {
      const callUuid = newUuid();
      fake.calls.set(callUuid, "live");
      const reply = await fake.webhook(`${webhookUrl}?type=answer`, { CallUUID: callUuid, Direction: "inbound", From: from, To: OURS, CallStatus: "ringing" });
      return { id: callUuid, stream: reply.body.includes("<Stream") ? await connect(reply.body, callUuid) : undefined };
    },
    async report(id, how) {
      await fake.webhook(`${webhookUrl}?type=hangup`, { CallUUID: uuidOf(id), RequestUUID: id, Direction: "outbound", CallStatus: statuses[how], HangupSource: "Callee" });
    },
    hungUp: (id) => fake.made("DELETE", new RegExp(`/(Call/${uuidOf(id)}|Request/${id})/$`)).length > 0,
    keysSent: (id) => fake.made("POST", new RegExp(`/Call/${uuidOf(id)}/DTMF/$`)).map((r) => r.body.digits).join(""),
    gone: (id) => {
      fake.calls.set(id, "ended");
      fake.calls.set(uuidOf(id), "ended");
    },
  };
}

const fliteSpeech = (text: string) => synthesizeAll(new FliteSynthesizer(), text, 8000);

describe.each([twilioKit(), telnyxKit(), plivoKit()])("carrier conformance: $id", (kit) => {
  let api: { baseUrl: string; close(): Promise<void> };
  let service: RunningService;
  let manager: CallManager;

  const config = (port: number, extra: Record<string, unknown> = {}) =>
    makeConfig({
      provider: kit.id,
      fromNumber: OURS,
      ...kit.keys(),
      publicUrl: `http://127.0.0.1:${port}/voice/webhook`,
      serve: { port, bind: "127.0.0.1" },
      outbound: { defaultMode: "conversation" },
      inboundPolicy: "allowlist",
      allowFrom: [CALLER],
      inboundGreeting: "Hello, you reached the test line.",
      dtmfInterDigitTimeoutMs: 500,
      ...extra,
    }, tempDir());

  beforeAll(async () => {
    api = await kit.start();
    const port = await freePort();
    webhookUrl = `http://127.0.0.1:${port}/voice/webhook`;
    service = await startService(config(port), createLogger("silent"), { apiBaseUrls: { [kit.id]: api.baseUrl } });
    manager = service.runtime.manager;
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await api?.close();
  });

  const said = (callId: string, line: string) =>
    waitFor(() => {
      const call = manager.getCall(callId);
      return call?.state === "listening" && call.transcript.some((l) => l.speaker === "bot" && l.text === line) ? true : undefined;
    }, `"${line}" played`, 15_000);

  async function outbound(message: string) {
    const { callId } = await manager.initiateCall({ to: CALLER, message });
    const id = manager.getCall(callId)!.providerCallId!;
    expect(manager.getCall(callId)!.state).not.toBe("answered");
    const stream = await kit.answer(id);
    await said(callId, message);
    return { callId, id, stream };
  }

  it("outbound: answered once audio flows; our message arrives as paced media with markers and is understood", async () => {
    const { callId, stream } = await outbound("Hello, this is a test call.");
    const media = stream.mediaAfter(0);
    expect(media.length).toBeGreaterThan(40);
    expect(media.at(-1)!.at - media[0]!.at).toBeGreaterThan((media.length - 1) * 20 * 0.8);
    expect(stream.received.some((r) => r.event === "mark")).toBe(true);
    expect(wordErrorRate("hello this is a test call", await transcribePcm(concatPcm(media.map((m) => m.pcm!)), 8000))).toBeLessThanOrEqual(0.35);
    expect(manager.getCall(callId)!.answeredAt).toBeDefined();
    await manager.endCall(callId);
    stream.close();
  }, 30_000);

  it("listens and takes barge-in: the caller's sentence answers continue_call; talking over us clears within 300 ms", async () => {
    const { callId, stream } = await outbound("Hi there.");
    const answer = manager.continueCall(callId, "What time should I call back?");
    await said(callId, "What time should I call back?");
    await stream.play(await fliteSpeech("Please call me back tomorrow morning."));
    await stream.silence(1200);
    expect(wordErrorRate("please call me back tomorrow morning", (await answer).transcript)).toBeLessThanOrEqual(0.35);

    const speaking = manager.speak(callId, "Our opening hours are from nine in the morning to five in the afternoon, Monday to Friday, and ten to two on Saturdays.");
    await waitFor(() => stream.mediaAfter(performance.now() - 200).length > 0 || undefined, "our audio flowing", 10_000);
    await new Promise((r) => setTimeout(r, 800));
    const onset = await stream.play(await fliteSpeech("Wait, stop please."));
    await speaking;
    const clear = stream.firstAfter("clear", onset);
    expect(clear, "a clear message").toBeDefined();
    expect(clear!.at - onset).toBeLessThan(300);
    expect(manager.getCall(callId)!.transcript.some((l) => l.kind === "interrupted")).toBe(true);
    await manager.endCall(callId);
    stream.close();
  }, 60_000);

  it("keys both ways: pressed keys form one answer of the expected count; our keys reach the far end", async () => {
    const { callId, id, stream } = await outbound("Hi.");
    const code = manager.continueCall(callId, "Enter your code.", { digits: 4 });
    await said(callId, "Enter your code.");
    for (const key of "2468") stream.dtmf(key);
    expect((await code).transcript).toBe("[DTMF 2468]");
    const since = performance.now();
    await manager.sendDtmf(callId, "42#");
    await waitFor(() => kit.keysSent(id, stream, since) === "42#" || undefined, "keys at the far end", 5000);
    await manager.endCall(callId);
    stream.close();
  }, 30_000);

  it("dtmfSequence: the keys go out once the call connects", async () => {
    const { callId } = await manager.initiateCall({ to: CALLER, message: "Connecting you now.", mode: "conversation", dtmfSequence: "1w9#" });
    const id = manager.getCall(callId)!.providerCallId!;
    const stream = await kit.answer(id);
    const since = performance.now() - 60_000;
    await said(callId, "Connecting you now.");
    // Tones carriers: w is a 0.5 s pause, not a key.
    await waitFor(() => ["1w9#", "19#"].includes(kit.keysSent(id, stream, since)) || undefined, "the sequence at the far end", 5000);
    await manager.endCall(callId);
    stream.close();
  }, 30_000);

  it("hang-up both ways: ours reaches the carrier (hangup-bot); the callee's is reported (hangup-user)", async () => {
    const ours = await outbound("Goodbye soon.");
    await manager.endCall(ours.callId);
    expect(manager.getCall(ours.callId)!.state).toBe("hangup-bot");
    expect(kit.hungUp(ours.id)).toBe(true);
    ours.stream.close();

    const theirs = await outbound("Still there?");
    await kit.report(theirs.id, "callee-hangup");
    await waitFor(() => manager.getCall(theirs.callId)!.state === "hangup-user" || undefined, "hangup-user");
    theirs.stream.close();
  }, 30_000);

  it("inbound: an allowed caller is answered and greeted; a stranger is refused", async () => {
    const { id, stream } = await kit.ringIn(CALLER);
    expect(stream).toBeDefined();
    const call = await waitFor(() => manager.listCalls().find((c) => c.providerCallId === id && c.state === "listening"), "greeted", 15_000);
    expect(call).toMatchObject({ direction: "inbound", from: CALLER });
    expect(manager.getCall(call.callId)!.transcript[0]).toMatchObject({ speaker: "bot", text: "Hello, you reached the test line." });
    await manager.endCall(call.callId);
    stream!.close();

    const stranger = await kit.ringIn(STRANGER);
    expect(stranger.stream).toBeUndefined();
    await waitFor(() => manager.listCalls().find((c) => c.providerCallId === stranger.id)?.endReason?.includes("allowFrom") || undefined, "refused");
  }, 30_000);

  it.each([["busy", "busy"], ["no-answer", "no-answer"], ["failed", "failed"]] as const)("an unanswered call the carrier reports %s ends %s", async (how, state) => {
    const { callId } = await manager.initiateCall({ to: CALLER, message: "hi" });
    await kit.report(manager.getCall(callId)!.providerCallId!, how);
    await waitFor(() => manager.getCall(callId)!.state === state || undefined, state);
  });

  it("restore: after a restart the carrier is asked; a call it no longer has ends and frees its slot", async () => {
    const port = await freePort();
    const cfg = config(port, { maxConcurrentCalls: 1 });
    const deps = { apiBaseUrls: { [kit.id]: api.baseUrl } };
    const first = await startService(cfg, createLogger("silent"), deps);
    const { callId } = await first.runtime.manager.initiateCall({ to: CALLER, message: "Hi" });
    const id = first.runtime.manager.getCall(callId)!.providerCallId!;
    await first.close();
    kit.gone(id);
    const second = await startService(cfg, createLogger("silent"), deps);
    try {
      expect(second.runtime.manager.getCall(callId)).toMatchObject({ state: "completed" });
      await expect(second.runtime.manager.initiateCall({ to: CALLER, message: "Hi" })).resolves.toMatchObject({ provider: kit.id });
    } finally {
      await second.close();
    }
  }, 30_000);
});
