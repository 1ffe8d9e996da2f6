/**
 * Callers talking to the gateway's agent, inside the real OpenClaw gateway
 * (installed from npm, cached) with a fake OpenAI-compatible model: Twilio
 * callers (webhooks signed as Twilio signs them, media streams in Twilio's
 * protocol) whose words reach the model as agent runs, on the caller's
 * session, with the voice_call tool bound to the call; the agent's first
 * sentence spoken while its run goes on; the agent hanging up through the
 * tool; the gateway's TTS (tts-local-cli running flite) and its Deepgram
 * transcription provider (pointed at the local vendor fake) on the call;
 * what core's Google Meet delegation sends. Skips, saying why, where the
 * gateway cannot be installed.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallView } from "../src/calls/types.js";
import { VoiceCallClient } from "../src/server/client.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { FakeAgentModel, type ModelRequest } from "./fakes/agent-model.js";
import { Gateway, GATEWAY_NODE_VERSION, OPENCLAW_VERSION, ensureGateway } from "./fakes/openclaw.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, callSid, loudMs, ringTwilio } from "./fakes/twilio.js";
import { FakeVendors, GOOD_KEY } from "./fakes/vendors.js";
import { freePort, tempDir, waitFor } from "./helpers.js";

const gatewayUnavailable = await ensureGateway((line) => console.log(`[gateway] ${line}`));
if (gatewayUnavailable) console.warn(`skipping the gateway agent tests: ${gatewayUnavailable}`);

const LINE = "+15550009999";
const SALES_LINE = "+15550007777";
const CALLER = "+15550001234";
const OTHER_CALLER = "+15550002222";

/** User messages that are words (the gateway adds its own context as user messages too). */
const said = (m: { role: string; text: string }) => m.role === "user" && !m.text.startsWith("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT");
/** The newest words of a model request (the caller's, for a turn). */
const lastUser = (r: ModelRequest) => r.messages.filter(said).at(-1)?.text ?? "";
/** A request that opens a turn (the caller's words are the newest message; no tool result after them). */
const opensTurn = (r: ModelRequest, words: RegExp) => {
  const at = r.messages.findLastIndex(said);
  return at >= 0 && words.test(r.messages[at]!.text) && !r.messages.slice(at).some((m) => m.role === "tool");
};
const systemOf = (r: ModelRequest) => r.messages.filter((m) => m.role === "system").map((m) => m.text).join("\n");

describe.skipIf(gatewayUnavailable !== undefined)(`callers talk to the gateway's agent (openclaw ${OPENCLAW_VERSION}, Node ${GATEWAY_NODE_VERSION})`, () => {
  let gateway: Gateway;
  let model: FakeAgentModel;
  let vendors: FakeVendors;
  let twilio: FakeTwilio;
  let service: VoiceCallClient;
  let webhookUrl: string;
  let serviceUrl: string;
  const ttsLog = join(tempDir("voicecall-tts-"), "spoken.txt");
  const controlToken = "control-token-for-the-agent-test";
  let sidSeq = 0x7000;
  /** Said in the caller's voice: the vendor fake hears speech by its energy and transcribes it from its script. */
  let speech: Int16Array;

  beforeAll(async () => {
    model = await FakeAgentModel.start();
    vendors = await FakeVendors.start();
    twilio = await FakeTwilio.start();
    speech = await synthesizeAll(new FliteSynthesizer(), "I would like to book a table for two.", 8000);
    const servePort = await freePort();
    webhookUrl = `http://127.0.0.1:${servePort}/voice/webhook`;
    // The gateway's local-CLI TTS runs flite through a script that notes each sentence it is asked for.
    const script = join(tempDir("voicecall-tts-"), "say.sh");
    writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${ttsLog}'\nexec flite -voice slt -t "$1" -o "$2"\n`, { mode: 0o755 });
    gateway = await Gateway.start({
      home: tempDir("voicecall-gateway-agent-"),
      port: await freePort(),
      token: "gateway-token-for-the-agent-test",
      modelBaseUrl: model.baseUrl,
      pluginConfig: {
        provider: "mock",
        publicUrl: webhookUrl,
        serve: { port: servePort, bind: "127.0.0.1" },
        store: tempDir(),
        control: { token: controlToken },
        mock: { ringMs: 20, speakMsPerChar: 0, replyDelayMs: 20, replies: ["yes"] },
        twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
        fromNumber: LINE,
        inboundPolicy: "open",
        inboundGreeting: "Hello, you reached the agent line.",
        numbers: { [LINE]: { provider: "twilio" }, [SALES_LINE]: { provider: "twilio", agentId: "sales" } },
        streaming: { provider: "deepgram", providers: { deepgram: { apiKey: GOOD_KEY, baseUrl: `http://127.0.0.1:${vendors.port}/v1` } } },
      },
      gatewayConfig: {
        agents: { defaults: { model: { primary: "fake/agent-model" } }, list: [{ id: "main", default: true }, { id: "sales" }] },
        tts: { provider: "tts-local-cli", providers: { "tts-local-cli": { command: script, args: ["{{Text}}", "{{OutputPath}}"], outputFormat: "wav" } } },
      },
      onProgress: (l) => console.log(`[gateway] ${l}`),
    });
    serviceUrl = `http://127.0.0.1:${servePort}`;
    service = new VoiceCallClient({ url: serviceUrl, token: controlToken });
  }, 900_000);

  afterAll(async () => {
    if (process.env.VOICECALL_DEBUG_LOG) writeFileSync(process.env.VOICECALL_DEBUG_LOG, gateway?.log ?? "");
    await gateway?.stop();
    await model?.close();
    await vendors?.close();
    await twilio?.close();
  });

  /** A Twilio caller from `from` to `to`: webhook, media stream, greeting heard. */
  const ringIn = (from: string, to = LINE) => ringTwilio(twilio, { webhookUrl, service, sid: callSid(++sidSeq), from, to });
  const view = async (callId: string) => ((await service.call("voicecall.status", { callId })) as { call: CallView }).call;
  const botLines = async (callId: string) => (await view(callId)).transcript.filter((t) => t.speaker === "bot").map((t) => t.text);

  it("a Twilio caller's words reach the model as an agent run on the caller's session, with voice_call bound to the call; the first sentence is spoken while the run goes on", async () => {
    vendors.script = ["I would like to book a table for two"];
    model.script = (r) => {
      if (!opensTurn(r, /book a table/)) return undefined;
      return { pieces: ["Of course, I can book that for you. ", "What time would you like to come?"], delayMs: 200, gapMs: 3000 };
    };
    const before = model.requests.length;
    const { stream, callId } = await ringIn(CALLER);
    const listening = Date.now();
    // The greeting, made by the gateway's TTS (flite's slt voice through tts-local-cli): as long as slt says it here.
    const greeting = loudMs(stream.mediaAfter(0));
    const slt = await synthesizeAll(new FliteSynthesizer({ voice: "slt" }), "Hello, you reached the agent line.", 8000);
    const expected = loudMs(Array.from({ length: Math.floor(slt.length / 160) }, (_, i) => ({ pcm: slt.subarray(i * 160, i * 160 + 160) })));
    expect(greeting).toBeGreaterThan(expected * 0.8);
    expect(greeting).toBeLessThan(expected * 1.25);
    await stream.play(speech);
    const spokeUntil = performance.now();
    await stream.silence(1500);
    await waitFor(async () => ((await botLines(callId)).includes("What time would you like to come?") ? true : undefined), "the whole answer said", 60_000);
    const request = model.requests.slice(before).find((r) => /book a table/.test(lastUser(r)));
    expect(request, JSON.stringify(model.requests.slice(before).map(lastUser))).toBeDefined();
    // An agent run: the agent's own tools are offered, among them voice_call bound to this call.
    const tool = request!.tools.find((t) => t.name === "voice_call");
    expect(tool?.description, JSON.stringify(request!.tools.map((t) => t.name))).toContain(callId);
    expect(JSON.stringify(tool?.parameters)).not.toContain("initiate_call");
    expect(request!.tools.length).toBeGreaterThan(1);
    expect(systemOf(request!)).toContain(`phone call ${callId}`);
    // On the caller's session.
    expect(gateway.log).toMatch(new RegExp(`agent turn done.*"callId":"${callId}".*"sessionKey":"agent:main:voice:15550001234"`));
    // The first sentence was said (and heard) before the model had written the second.
    const call = await view(callId);
    const first = call.transcript.find((t) => t.text === "Of course, I can book that for you.");
    const second = call.transcript.find((t) => t.text === "What time would you like to come?");
    expect(first?.origin).toBe("model");
    expect(Date.parse(second!.at) - Date.parse(first!.at)).toBeGreaterThan(2000);
    expect(Date.parse(first!.at)).toBeGreaterThan(listening);
    // The caller heard the answer: well over a second of speech after their own words ended.
    expect(loudMs(stream.mediaAfter(spokeUntil))).toBeGreaterThan(1000);
    stream.close();
    await service.call("voicecall.end", { callId });
  }, 120_000);

  it("calls speak with the gateway's TTS (tts-local-cli running flite) and listen with its Deepgram provider; the start log and /healthz say so", async () => {
    // The gateway's local-CLI engine was asked for the greeting and the agent's sentences of the call before.
    const asked = readFileSync(ttsLog, "utf8").split("\n");
    expect(asked).toEqual(expect.arrayContaining(["Hello, you reached the agent line.", "Of course, I can book that for you.", "What time would you like to come?"]));
    // The gateway's Deepgram provider (G.711 mu-law at 8 kHz, its default) reached the vendor fake; ours sends PCM.
    const listens = vendors.requests.filter((r) => r.path.startsWith("/v1/listen?"));
    expect(listens.length).toBeGreaterThan(0);
    expect(listens.every((r) => /encoding=mulaw/.test(r.path) && /sample_rate=8000/.test(r.path))).toBe(true);
    const health = (await (await fetch(`${serviceUrl}/healthz`)).json()) as { speech: Record<string, { engine: string; why: string }> };
    expect(health.speech.tts).toMatchObject({ engine: "gateway:tts-local-cli", why: expect.stringContaining("the gateway's tts") });
    expect(health.speech.stt).toMatchObject({ engine: "gateway:deepgram", why: expect.stringContaining("streaming.provider deepgram") });
    expect(gateway.log).toMatch(/speech engines.*gateway:tts-local-cli.*gateway:deepgram/);
  });

  it("a second call from the same number reaches a session holding the first call's words; another number's does not", async () => {
    vendors.script = ["what did I ask you last time"];
    model.script = (r) => (opensTurn(r, /last time/) ? { pieces: ["You asked about a table."] } : undefined);
    const before = model.requests.length;
    const again = await ringIn(CALLER);
    await again.stream.play(speech);
    await again.stream.silence(1500);
    await waitFor(async () => ((await botLines(again.callId)).includes("You asked about a table.") ? true : undefined), "answered", 60_000);
    const same = model.requests.slice(before).find((r) => /last time/.test(lastUser(r)))!;
    expect(same.messages.some((m) => m.role === "user" && /book a table/.test(m.text))).toBe(true);
    again.stream.close();
    await service.call("voicecall.end", { callId: again.callId });

    const mark = model.requests.length;
    const other = await ringIn(OTHER_CALLER);
    await other.stream.play(speech);
    await other.stream.silence(1500);
    await waitFor(async () => ((await botLines(other.callId)).includes("You asked about a table.") ? true : undefined), "answered", 60_000);
    const fresh = model.requests.slice(mark).find((r) => /last time/.test(lastUser(r)))!;
    expect(fresh.messages.some((m) => /book a table/.test(m.text))).toBe(false);
    expect(gateway.log).toMatch(new RegExp(`"callId":"${other.callId}".*"sessionKey":"agent:main:voice:15550002222"`));
    other.stream.close();
    await service.call("voicecall.end", { callId: other.callId });
  }, 150_000);

  it("the agent hangs up through its bound tool, once its goodbye has been said", async () => {
    vendors.script = ["thanks that is all goodbye"];
    model.script = (r) => (opensTurn(r, /goodbye/) ? { pieces: ["Goodbye, have a nice day. "], toolCall: { name: "voice_call", arguments: { action: "end_call" } } } : undefined);
    const before = model.requests.length;
    const { stream, callId } = await ringIn(CALLER);
    await stream.play(speech);
    await stream.silence(1500);
    const ended = await waitFor(async () => {
      const call = await view(callId);
      return call.state !== "listening" && call.state !== "speaking" && call.endedAt ? call : undefined;
    }, "the call ended", 60_000);
    expect(ended).toMatchObject({ state: "hangup-bot", endReason: "ended by the agent" });
    const lines = ended.transcript.map((t) => t.text);
    expect(lines).toContain("Goodbye, have a nice day.");
    // The run goes on after the call: the tool told the agent the call is over.
    const result = await waitFor(
      () => model.requests.slice(before).flatMap((r) => r.messages).find((m) => m.role === "tool" && m.text.includes("hangup-bot")),
      "the tool's result reached the model",
      30_000,
    );
    expect(JSON.parse(result.text)).toMatchObject({ success: true, state: "hangup-bot" });
    stream.close();
  }, 120_000);

  it("a call to a number with its own agentId is answered by that agent, on that agent's session", async () => {
    vendors.script = ["I have a question about prices"];
    model.script = (r) => (opensTurn(r, /prices/) ? { pieces: ["Sales here, happy to help."] } : undefined);
    const { stream, callId } = await ringIn(CALLER, SALES_LINE);
    await stream.play(speech);
    await stream.silence(1500);
    await waitFor(async () => ((await botLines(callId)).includes("Sales here, happy to help.") ? true : undefined), "answered", 60_000);
    expect(gateway.log).toMatch(new RegExp(`"callId":"${callId}","agentId":"sales","sessionKey":"agent:sales:voice:15550001234"`));
    stream.close();
    await service.call("voicecall.end", { callId });
  }, 120_000);

  it("what core's Google Meet delegation sends is accepted: voicecall.start with a trusted agentId and session, then voicecall.speak with allowTwimlFallback false", async () => {
    const started = await gateway.rpc(["operator.write"], "voicecall.start", {
      to: "+15550003333",
      message: "Joining the meeting for Alex.",
      mode: "conversation",
      dtmfSequence: "123456#",
      sessionKey: "agent:main:meet:standup",
      requesterSessionKey: "agent:main:main",
      agentId: "main",
    });
    expect(started.ok, JSON.stringify(started.error)).toBe(true);
    const callId = started.payload.callId as string;
    const spoke = await gateway.rpc(["operator.write"], "voicecall.speak", { callId, message: "Hello everyone, I am taking notes.", allowTwimlFallback: false });
    expect(spoke.ok, JSON.stringify(spoke.error)).toBe(true);
    const call = await view(callId);
    expect(call).toMatchObject({ agentId: "main", sessionKey: "agent:main:meet:standup" });
    await waitFor(async () => ((await botLines(callId)).includes("Hello everyone, I am taking notes.") ? true : undefined), "the intro said", 20_000);
    await service.call("voicecall.end", { callId });
  }, 60_000);
});
