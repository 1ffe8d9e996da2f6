/**
 * Realtime voice on a call: `realtime.enabled` with our OpenAI GA client on
 * the local protocol server, a Twilio caller (signed webhook, media stream
 * in Twilio's protocol). The greeting is the model's, the caller's words
 * reach the model as audio and its answer is heard at the phone; both sides
 * are in the transcript; the model consults the
 * responseModel, one consult per question; the model hangs up after its
 * farewell has played; keys pressed keep the call up. A caller cutting in,
 * on Twilio, Telnyx and Plivo alike: the carrier suite (test/suites/carriers.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningService } from "../src/server/service.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { FakeRealtimeVoice } from "./fakes/realtime.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, MediaStreamClient, callSid, loudMs, streamOf } from "./fakes/twilio.js";
import { FakeVendors, GOOD_KEY } from "./fakes/vendors.js";
import { saidAndListening, startCloudService, tempDir, waitFor } from "./helpers.js";

const GREETING = "Hello, you reached the model line.";

describe("realtime voice on a Twilio call (OpenAI GA protocol server, media streams)", () => {
  let twilio: FakeTwilio;
  let model: FakeRealtimeVoice;
  /** The responseModel's chat endpoint: what the model's consults reach. */
  let chat: FakeVendors;
  let service: RunningService;
  let webhookUrl: string;
  let speech: Int16Array;
  let sidSeq = 0x5100;
  const manager = () => service.runtime.manager;

  beforeAll(async () => {
    twilio = await FakeTwilio.start();
    model = await FakeRealtimeVoice.start();
    chat = await FakeVendors.start();
    speech = await synthesizeAll(new FliteSynthesizer(), "I would like to book a table.", 8000);
    ({ service, webhookUrl } = await startCloudService(
      "twilio",
      twilio.baseUrl,
      {
        fromNumber: "+15550009999",
        twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
        inboundPolicy: "open",
        inboundGreeting: GREETING,
        responseModel: "consult-model",
        responseBaseUrl: chat.httpUrl,
        realtime: { enabled: true, instructions: "You take table bookings.", providers: { openai: { apiKey: GOOD_KEY, baseUrl: model.baseUrl } } },
      },
      tempDir(),
    ));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await model?.close();
    await chat?.close();
    await twilio?.close();
  });

  /** A caller rings in; the model greets them (word for word what speak() asked); resolves once it has played. */
  const ringIn = async () => {
    model.answer = (cause) => ("instructions" in cause && cause.instructions ? { say: cause.instructions.slice(cause.instructions.lastIndexOf(": ") + 2) } : undefined);
    const sid = callSid(++sidSeq);
    const reply = await twilio.webhook(webhookUrl, twilio.voiceParams(sid, "inbound", "+15550001234", "+15550009999"));
    const target = streamOf(reply.body);
    expect(target, reply.body).toBeDefined();
    const stream = await MediaStreamClient.connect(target!.url, { callSid: sid, token: target!.token });
    const call = await waitFor(() => manager().listCalls().find((c) => c.providerCallId === sid), "the call");
    await saidAndListening(manager(), call.callId, GREETING);
    return { stream, callId: call.callId };
  };

  it("the model greets the caller, hears their words as audio and answers at the phone; both sides are in the transcript", async () => {
    const { stream, callId } = await ringIn();
    const session = model.sessions.at(-1)!;
    expect(session.updates[0]).toMatchObject({ instructions: expect.stringContaining("You take table bookings."), audio: { input: { format: { type: "audio/pcmu" } } } });
    expect(session.updates[0]!.tools.map((t: { name: string }) => t.name)).toEqual(["openclaw_end_call", "openclaw_agent_consult"]);
    // The greeting was heard at the phone, as long as the model's audio of it.
    expect(loudMs(stream.mediaAfter(0))).toBeGreaterThan(session.spoken[0]!.audioMs * 0.5);

    model.script = ["I would like to book a table"];
    model.answer = (cause) => ("heard" in cause ? { say: "Of course. For how many people?" } : undefined);
    await stream.play(speech);
    const lastWord = performance.now();
    const quiet = stream.silence(4000);
    await waitFor(() => manager().getCall(callId)!.transcript.find((l) => l.speaker === "bot" && l.text === "Of course. For how many people?"), "the model's answer recorded", 15_000);
    await quiet;
    expect(loudMs(stream.mediaAfter(lastWord))).toBeGreaterThan(model.sessions.at(-1)!.spoken[1]!.audioMs * 0.5);
    const lines = manager().getCall(callId)!.transcript.map((l) => [l.speaker, l.text, l.origin]);
    expect(lines).toEqual([
      ["bot", GREETING, "service"],
      ["caller", "I would like to book a table", undefined],
      ["bot", "Of course. For how many people?", "model"],
    ]);
    // The model answered: the service did not (its responseModel was never asked), and the call is up.
    expect(chat.requests.filter((r) => r.path.startsWith("/v1/chat"))).toEqual([]);
    expect(manager().getCall(callId)!.state).toBe("listening");
    await manager().endCall(callId);
    stream.close();
  }, 60_000);

  it("the model consults the responseModel, each question its own consult, with the call so far; the answer comes back to the model to say", async () => {
    const { stream, callId } = await ringIn();
    chat.chatReply = (messages) => JSON.stringify({ spoken: /open/.test(messages.at(-1)?.content ?? "") ? "We open at nine." : "We close at five." });
    model.script = ["when do you open", "and when do you close"];
    const questions: Record<string, string> = { "when do you open": "When does the restaurant open?", "and when do you close": "When does the restaurant close?" };
    model.answer = (cause) =>
      "heard" in cause ? { toolCall: { name: "openclaw_agent_consult", arguments: { question: questions[cause.heard] } } } : "toolOutput" in cause ? { say: JSON.parse(cause.toolOutput).answer } : undefined;
    const before = chat.requests.length;
    for (const words of ["We open at nine.", "We close at five."]) {
      await stream.play(speech);
      const quiet = stream.silence(1500);
      await waitFor(() => manager().getCall(callId)!.transcript.find((l) => l.origin === "model" && l.text === words), `"${words}" said by the model`, 15_000);
      await quiet;
    }
    const asked = chat.requests.slice(before).filter((r) => r.path.startsWith("/v1/chat")).map((r) => (r.body as { messages: Array<{ role: string; content: string }> }).messages);
    expect(asked.map((m) => m.at(-1)!.content)).toEqual(["When does the restaurant open?", "When does the restaurant close?"]);
    // With the call so far: the caller's words are in the second consult's messages.
    expect(asked[1]!.some((m) => m.content.includes("when do you open"))).toBe(true);
    expect(model.sessions.at(-1)!.toolOutputs.map((o) => JSON.parse(o.output))).toEqual([{ answer: "We open at nine." }, { answer: "We close at five." }]);
    await manager().endCall(callId);
    stream.close();
  }, 60_000);

  it("the model's session opens while Twilio connects the stream: the webhook answers at once, the greeting plays once the session is ready", async () => {
    model.readyDelayMs = 1500;
    try {
      model.answer = (cause) => ("instructions" in cause && cause.instructions ? { say: cause.instructions.slice(cause.instructions.lastIndexOf(": ") + 2) } : undefined);
      const sid = callSid(++sidSeq);
      const rang = performance.now();
      const reply = await twilio.webhook(webhookUrl, twilio.voiceParams(sid, "inbound", "+15550001234", "+15550009999"));
      const answeredAfter = performance.now() - rang;
      // Answered well before the model's socket could open (its handshake takes 1.5 s): stream and session are set up at once.
      expect(answeredAfter).toBeLessThan(1000);
      const target = streamOf(reply.body)!;
      const stream = await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token });
      const call = await waitFor(() => manager().listCalls().find((c) => c.providerCallId === sid), "the call");
      await saidAndListening(manager(), call.callId, GREETING);
      expect(model.sessions.at(-1)!.spoken[0]!.firstDeltaAt! - rang).toBeGreaterThan(1500);
      await manager().endCall(call.callId);
      stream.close();
    } finally {
      model.readyDelayMs = 0;
    }
  }, 30_000);

  it("a model that refuses the key ends the call, saying why", async () => {
    const refused = await startCloudService(
      "twilio",
      twilio.baseUrl,
      {
        fromNumber: "+15550009999",
        twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
        inboundPolicy: "open",
        realtime: { enabled: true, providers: { openai: { apiKey: "sk-not-this-one", baseUrl: model.baseUrl } } },
      },
      tempDir(),
    );
    try {
      const sid = callSid(++sidSeq);
      const reply = await twilio.webhook(refused.webhookUrl, twilio.voiceParams(sid, "inbound", "+15550001234", "+15550009999"));
      expect(streamOf(reply.body)).toBeDefined();
      const ended = await waitFor(() => refused.service.runtime.manager.listCalls().find((c) => c.providerCallId === sid && c.endedAt), "the call ended", 10_000);
      expect(ended).toMatchObject({ state: "error", endReason: expect.stringContaining("media setup failed: OpenAI realtime refused the API key (HTTP 401)") });
      expect(ended.endReason).not.toContain("sk-not-this-one");
    } finally {
      await refused.service.close();
    }
  }, 30_000);

  it("keys pressed during the call keep it up; the model hangs up after its farewell has played", async () => {
    const { stream, callId } = await ringIn();
    stream.dtmf("5");
    await waitFor(() => manager().getCall(callId)!.transcript.find((l) => l.kind === "dtmf"), "the key recorded", 10_000).catch(() => undefined);
    expect(manager().getCall(callId)!.state).toBe("listening");
    model.script = ["thanks that is all"];
    const farewell = "Goodbye, have a nice day.";
    model.answer = (cause) => ("heard" in cause ? { say: farewell, toolCall: { name: "openclaw_end_call", arguments: {} } } : undefined);
    await stream.play(speech);
    const asked = performance.now();
    const quiet = stream.silence(6000);
    const ended = await waitFor(() => {
      const call = manager().getCall(callId)!;
      return call.endedAt ? call : undefined;
    }, "the call ended by the model", 15_000);
    expect(ended).toMatchObject({ state: "hangup-bot", endReason: "ended by the model" });
    // The farewell was heard in full before the hang-up.
    const farewellMs = model.sessions.at(-1)!.spoken.at(-1)!.audioMs;
    expect(loudMs(stream.mediaAfter(asked))).toBeGreaterThan(farewellMs * 0.6);
    expect(ended.transcript.some((l) => l.speaker === "bot" && l.text === farewell)).toBe(true);
    stream.close();
    await quiet.catch(() => undefined);
  }, 60_000);
});
