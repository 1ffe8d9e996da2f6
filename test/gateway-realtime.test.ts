/**
 * Realtime voice inside the real OpenClaw gateway (installed from npm,
 * cached): `realtime.enabled` with the gateway's own OpenAI realtime voice
 * provider (its bridge, pointed at the local GA protocol server through its
 * `azureEndpoint`), a Twilio caller (signed webhook, media stream). The
 * model's greeting and answers are heard at the phone, the caller's words
 * reach it as audio, both sides are in the transcript; a caller cutting in
 * stops the model at the phone and the bridge truncates the item at what
 * played (our playback state); the model's consult is an agent run of the
 * gateway's agent with only read-only tools; the model hangs up after its
 * farewell. Skips, saying why, where the gateway cannot be installed.
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallView } from "../src/calls/types.js";
import { VoiceCallClient } from "../src/server/client.js";
import { SAFE_READ_ONLY_TOOLS } from "../src/gateway/agent-responder.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { FakeAgentModel } from "./fakes/agent-model.js";
import { Gateway, GATEWAY_NODE_VERSION, OPENCLAW_VERSION, ensureGateway } from "./fakes/openclaw.js";
import { FakeRealtimeVoice } from "./fakes/realtime.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, callSid, isLoud, loudMs, ringTwilio } from "./fakes/twilio.js";
import { GOOD_KEY } from "./fakes/vendors.js";
import { freePort, tempDir, waitFor } from "./helpers.js";

const gatewayUnavailable = await ensureGateway((line) => console.log(`[gateway] ${line}`));
if (gatewayUnavailable) console.warn(`skipping the gateway realtime tests: ${gatewayUnavailable}`);

const LINE = "+15550009999";
const GREETING = "Hello, you reached the model line.";
const LONG = "Here is a long answer. It has many sentences in it. It goes on for quite a while. And then there is some more to say.";

describe.skipIf(gatewayUnavailable !== undefined)(`realtime voice through the gateway's own provider (openclaw ${OPENCLAW_VERSION}, Node ${GATEWAY_NODE_VERSION})`, () => {
  let gateway: Gateway;
  let agentModel: FakeAgentModel;
  let model: FakeRealtimeVoice;
  let twilio: FakeTwilio;
  let service: VoiceCallClient;
  let webhookUrl: string;
  let speech: Int16Array;
  let sidSeq = 0x7100;

  beforeAll(async () => {
    agentModel = await FakeAgentModel.start();
    model = await FakeRealtimeVoice.start();
    twilio = await FakeTwilio.start();
    speech = await synthesizeAll(new FliteSynthesizer(), "I would like to book a table.", 8000);
    const servePort = await freePort();
    webhookUrl = `http://127.0.0.1:${servePort}/voice/webhook`;
    const controlToken = "control-token-for-the-realtime-test";
    gateway = await Gateway.start({
      home: tempDir("voicecall-gateway-realtime-"),
      port: await freePort(),
      token: "gateway-token-for-the-realtime-test",
      modelBaseUrl: agentModel.baseUrl,
      pluginConfig: {
        provider: "twilio",
        publicUrl: webhookUrl,
        serve: { port: servePort, bind: "127.0.0.1" },
        store: tempDir(),
        control: { token: controlToken },
        twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
        fromNumber: LINE,
        inboundPolicy: "open",
        inboundGreeting: GREETING,
        realtime: {
          enabled: true,
          provider: "openai",
          instructions: "You take table bookings.",
          // The gateway's OpenAI provider opens <azureEndpoint>/v1/realtime?model=... with the key as a bearer.
          providers: { openai: { apiKey: GOOD_KEY, azureEndpoint: `http://127.0.0.1:${model.port}` } },
        },
      },
      onProgress: (l) => console.log(`[gateway] ${l}`),
    });
    service = new VoiceCallClient({ url: `http://127.0.0.1:${servePort}`, token: controlToken });
  }, 900_000);

  afterAll(async () => {
    if (process.env.VOICECALL_DEBUG_LOG) writeFileSync(process.env.VOICECALL_DEBUG_LOG, gateway?.log ?? "");
    await gateway?.stop();
    await agentModel?.close();
    await model?.close();
    await twilio?.close();
  });

  const view = async (callId: string) => ((await service.call("voicecall.status", { callId })) as { call: CallView }).call;
  /** A caller rings in; the model says the greeting (word for word what it was asked to). */
  const ringIn = async () => {
    model.answer = (cause) => ("instructions" in cause && cause.instructions ? { say: cause.instructions.slice(cause.instructions.lastIndexOf(": ") + 2) } : undefined);
    return ringTwilio(twilio, { webhookUrl, service, sid: callSid(++sidSeq), from: "+15550001234", to: LINE });
  };

  it("the gateway's provider holds the conversation: its greeting and answer heard at the phone, the caller's words reach it as audio, both sides in the transcript", async () => {
    expect(gateway.log).toMatch(/gateway-realtime:openai/);
    const { stream, callId } = await ringIn();
    const session = model.sessions.at(-1)!;
    // The gateway's bridge opened the session (its URL), with our instructions, tools and the line's G.711.
    expect(session.url).toMatch(/^\/v1\/realtime\?model=/);
    expect(session.updates[0]).toMatchObject({ instructions: expect.stringContaining("You take table bookings."), audio: { input: { format: { type: "audio/pcmu" } } } });
    expect(session.updates[0]!.tools.map((t: { name: string }) => t.name)).toEqual(["openclaw_end_call", "openclaw_agent_consult"]);
    await waitFor(() => (loudMs(stream.mediaAfter(0)) > session.spoken[0]!.audioMs * 0.5 ? true : undefined), "the greeting at the phone", 15_000);

    model.script = ["I would like to book a table"];
    model.answer = (cause) => ("heard" in cause ? { say: "Of course. For how many people?" } : undefined);
    await stream.play(speech);
    const lastWord = performance.now();
    const quiet = stream.silence(4000);
    await waitFor(async () => ((await view(callId)).transcript.some((l) => l.speaker === "bot" && l.text === "Of course. For how many people?") ? true : undefined), "the model's answer recorded", 15_000);
    await quiet;
    expect(loudMs(stream.mediaAfter(lastWord))).toBeGreaterThan(session.spoken[1]!.audioMs * 0.5);
    expect(session.audioInBytes).toBeGreaterThan(speech.length * 0.9);
    expect((await view(callId)).transcript.map((l) => [l.speaker, l.text])).toEqual([
      ["bot", GREETING],
      ["caller", "I would like to book a table"],
      ["bot", "Of course. For how many people?"],
    ]);
    await service.call("voicecall.end", { callId });
    stream.close();
  }, 60_000);

  it("a caller cutting in stops the model at the phone; the bridge truncates the item at what played", async () => {
    const { stream, callId } = await ringIn();
    model.script = ["tell me everything", "wait"];
    model.answer = (cause) => ("heard" in cause && cause.heard !== "wait" ? { say: LONG } : undefined);
    await stream.play(speech);
    const asked = performance.now();
    const quiet = stream.silence(1500);
    await waitFor(() => stream.mediaAfter(asked).find((m) => isLoud(m.pcm))?.at, "the answer at the phone", 15_000);
    await quiet;
    const onset = performance.now();
    await stream.play(speech);
    const session = model.sessions.at(-1)!;
    const truncate = await waitFor(() => session.truncates[0], "the truncate", 5000);
    expect(truncate.item_id).toBe(session.spoken.at(-1)!.itemId);
    await stream.silence(600);
    const playedAtPhone = stream.mediaAfter(asked).length * 20;
    expect(Math.abs(truncate.audio_end_ms - playedAtPhone)).toBeLessThanOrEqual(150);
    expect(stream.mediaAfter(onset + 300).filter((m) => isLoud(m.pcm))).toHaveLength(0);
    await service.call("voicecall.end", { callId });
    stream.close();
  }, 60_000);

  it("the model's consult is a run of the gateway's agent with read-only tools; the model hangs up after its farewell", async () => {
    const { stream, callId } = await ringIn();
    agentModel.script = (r) => (r.messages.some((m) => m.role === "user" && /restaurant open/.test(m.text)) ? { pieces: ["We open at nine."] } : undefined);
    model.script = ["when do you open", "thanks that is all"];
    const farewell = "Goodbye, have a nice day.";
    model.answer = (cause) => {
      if ("heard" in cause && cause.heard === "when do you open") return { toolCall: { name: "openclaw_agent_consult", arguments: { question: "When does the restaurant open?" } } };
      if ("toolOutput" in cause) return { say: JSON.parse(cause.toolOutput).answer };
      if ("heard" in cause) return { say: farewell, toolCall: { name: "openclaw_end_call", arguments: {} } };
      return undefined;
    };
    const before = agentModel.requests.length;
    await stream.play(speech);
    const quiet = stream.silence(1500);
    await waitFor(async () => ((await view(callId)).transcript.some((l) => l.text === "We open at nine.") ? true : undefined), "the agent's answer said by the model", 30_000);
    await quiet;
    const consult = agentModel.requests.slice(before).find((r) => r.messages.some((m) => /restaurant open/.test(m.text)));
    expect(consult, JSON.stringify(agentModel.requests.slice(before).map((r) => r.messages.at(-1)))).toBeDefined();
    // toolPolicy unset: safe-read-only. The run offers none of the agent's other tools: not voice_call, which a
    // caller's own turn is always offered directly; only read-only ones, and the gateway's tool-search bridge over them.
    const offered = consult!.tools.map((t) => t.name);
    expect(offered).not.toContain("voice_call");
    expect(offered.filter((n) => !(SAFE_READ_ONLY_TOOLS as readonly string[]).includes(n) && !["tool_search", "tool_describe", "tool_call"].includes(n))).toEqual([]);
    expect(model.sessions.at(-1)!.toolOutputs.map((o) => JSON.parse(o.output))).toContainEqual({ answer: "We open at nine." });

    await stream.play(speech);
    const asked = performance.now();
    const hangup = stream.silence(6000);
    const ended = await waitFor(async () => {
      const call = await view(callId);
      return call.endedAt ? call : undefined;
    }, "the call ended by the model", 20_000);
    expect(ended).toMatchObject({ state: "hangup-bot", endReason: "ended by the model" });
    expect(loudMs(stream.mediaAfter(asked))).toBeGreaterThan(model.sessions.at(-1)!.spoken.at(-1)!.audioMs * 0.6);
    stream.close();
    await hangup.catch(() => undefined);
  }, 90_000);
});
