import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CallManager, UNATTENDED_MESSAGE } from "../src/calls/manager.js";
import { Responder, spokenText, type CallerTurn, type TurnResponder } from "../src/calls/responder.js";
import { JsonlStore } from "../src/store/jsonl.js";
import { createLogger } from "../src/log.js";
import { createProviders } from "../src/providers/index.js";
import type { MockProvider } from "../src/providers/mock/provider.js";
import { FakeVendors, GOOD_KEY } from "./fakes/vendors.js";
import { makeConfig, tempDir, waitFor } from "./helpers.js";

describe("what of a model's answer is spoken", () => {
  it.each([
    ['{"spoken": "We open at nine."}', "We open at nine."],
    ['<think>The user wants hours. I should be brief.</think>\n{"spoken":"We open at nine."}', "We open at nine."],
    ['```json\n{"spoken": "We open **at nine**."}\n```', "We open at nine."],
    ["Reasoning: they asked about hours.\nWe open at nine.", "We open at nine."],
    ["(thinking about it)\nWe open at nine.", "We open at nine."],
    ["<think>only reasoning, never closed", undefined],
    ['{"spoken": "  "}', undefined],
  ])("%j -> %j", (content, spoken) => {
    expect(spokenText(content)).toBe(spoken);
  });
});

describe("auto-responses for inbound calls no agent drives", () => {
  let vendors: FakeVendors;
  const managers: CallManager[] = [];
  beforeAll(async () => {
    vendors = await FakeVendors.start();
  });
  afterAll(async () => {
    await vendors.close();
  });
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.stop();
    vendors.chatDelayMs = 0;
  });

  async function start(raw: Record<string, unknown>) {
    const config = makeConfig({ inboundPolicy: "open", inboundGreeting: "Hello, shop here.", mock: { replies: [], speakMsPerChar: 0 }, responseBaseUrl: vendors.httpUrl, ...raw });
    const providers = createProviders(config, { logger: createLogger("silent") });
    const { store, loaded } = JsonlStore.open(tempDir());
    const responder = new Responder({ baseUrl: config.responseBaseUrl, apiKey: config.responseApiKey, timeoutMs: 3000 });
    const manager = new CallManager({ config, providers, store, loaded, logger: createLogger("silent"), responder });
    await manager.start();
    managers.push(manager);
    const mock = providers.get("mock") as MockProvider;
    const pid = mock.simulateInbound("+15550009999", "+15550000001");
    const call = await waitFor(() => manager.listCalls().find((c) => c.providerCallId === pid), "inbound call");
    await waitFor(() => manager.getCall(call.callId)!.state === "listening", "greeting played");
    return { manager, mock, pid, callId: call.callId };
  }

  it("speaks the model's reply to what the caller said, with the call so far as context", async () => {
    vendors.requests.length = 0;
    const { manager, mock, pid, callId } = await start({ responseModel: "openai/gpt-4o-mini", responseSystemPrompt: "You answer for a bakery.", responseApiKey: GOOD_KEY });
    mock.simulateSpeech(pid, "when do you open");
    await waitFor(() => mock.spokenTo(pid).length === 2, "the reply");
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here.", "You said: when do you open"]);
    const request = vendors.requests.find((r) => r.path === "/v1/chat/completions")!.body as { model: string; messages: Array<{ role: string; content: string }> };
    expect(request.model).toBe("gpt-4o-mini");
    expect(request.messages[0]!.content).toContain("You answer for a bakery.");
    expect(request.messages[0]!.content).toContain('{"spoken"');
    expect(request.messages.slice(1)).toEqual([
      { role: "assistant", content: "Hello, shop here." },
      { role: "user", content: "when do you open" },
    ]);
    // The reply opened the next turn: the call listens again once it has played.
    await waitFor(() => manager.getCall(callId)!.state === "listening" && manager.getCall(callId)!.turn === 2, "the next turn");
  });

  it("never plays a reply made for words the caller has since added to", async () => {
    const { mock, pid } = await start({ responseModel: "local-model" });
    vendors.chatDelayMs = 300;
    mock.simulateSpeech(pid, "I want a cake");
    await new Promise((r) => setTimeout(r, 100));
    mock.simulateSpeech(pid, "for twelve people");
    await waitFor(() => mock.spokenTo(pid).length >= 2, "a reply", 3000);
    await new Promise((r) => setTimeout(r, 400));
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here.", "You said: for twelve people"]);
  });

  it("a sound without words while the reply is made (a cough) does not drop it", async () => {
    const { mock, pid } = await start({ responseModel: "local-model" });
    vendors.chatDelayMs = 300;
    mock.simulateSpeech(pid, "I want a cake");
    await new Promise((r) => setTimeout(r, 100));
    mock.simulateSpeechStart(pid);
    await new Promise((r) => setTimeout(r, 100));
    mock.simulateSpeechEnd(pid);
    await waitFor(() => mock.spokenTo(pid).length >= 2, "the reply", 3000);
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here.", "You said: I want a cake"]);
  });

  it("never starts a reply while the caller is still talking; their new words replace it", async () => {
    const { mock, pid } = await start({ responseModel: "local-model" });
    vendors.chatDelayMs = 50;
    mock.simulateSpeech(pid, "I want a cake");
    mock.simulateSpeechStart(pid); // they go on talking
    await new Promise((r) => setTimeout(r, 400));
    // The reply for "I want a cake" is ready, but held: nothing said yet.
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here."]);
    mock.simulateSpeechEnd(pid);
    mock.simulateSpeech(pid, "for twelve people");
    await waitFor(() => mock.spokenTo(pid).length >= 2, "a reply", 3000);
    await new Promise((r) => setTimeout(r, 400));
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here.", "You said: for twelve people"]);
  });

  it("a warm transfer without a message briefs the person with the model's summary of the call; without a model, with the caller's own words", async () => {
    const withModel = await start({ responseModel: "openai/gpt-4o-mini", responseApiKey: GOOD_KEY });
    withModel.mock.simulateSpeech(withModel.pid, "I need to change my delivery address");
    await waitFor(() => withModel.mock.spokenTo(withModel.pid).length === 2, "the reply");
    const warm = await withModel.manager.transferCall(withModel.callId, { to: "+15550001111", mode: "warm" });
    expect(warm).toMatchObject({ transferred: true, mode: "warm", outcome: "connected" });
    // The fake model answers "You said: <the question>": the briefing is its answer to the summary question.
    expect(withModel.mock.briefingsOf(withModel.pid)).toEqual([expect.stringMatching(/^You said: .*transferred to a person.*who is calling and what the caller wants/)]);

    // No model to ask: an outbound call the agent drives, briefed with who it is and the caller's last words.
    const { manager, mock } = await start({});
    const { callId } = await manager.initiateCall({ to: "+15550002222", message: "Hello, this is the shop.", mode: "conversation" });
    const pid = await waitFor(() => (manager.getCall(callId)!.state === "listening" ? manager.getCall(callId)!.providerCallId : undefined), "the outbound call listening");
    mock.simulateSpeech(pid, "I need to change my delivery address");
    await waitFor(() => manager.getCall(callId)!.transcript.some((t) => t.speaker === "caller"), "the caller's words");
    await manager.transferCall(callId, { to: "+15550001111", mode: "warm" });
    expect(mock.briefingsOf(pid)).toEqual(["You have a call with +15550002222 being transferred to you. They said: I need to change my delivery address."]);
  });

  it("tells the caller plainly when there is no model, and hangs up", async () => {
    const { manager, mock, pid, callId } = await start({});
    mock.simulateSpeech(pid, "hello?");
    await waitFor(() => manager.getCall(callId)!.state === "hangup-bot", "hang-up");
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here.", UNATTENDED_MESSAGE]);
  });
});

describe("a responder whose completions come from another runtime (the gateway's)", () => {
  it("asks it with the contract and the call so far, no model named when none is set, and speaks only the spoken part", async () => {
    const asked: Array<{ model: string | undefined; system: string; messages: Array<{ role: string; content: string }> }> = [];
    const responder = new Responder({
      baseUrl: "http://127.0.0.1:9/v1", // never used
      timeoutMs: 2000,
      chat: async (r) => {
        asked.push(r);
        return '<think>they want hours</think>{"spoken": "We open at nine."}';
      },
    });
    expect(responder.hasDefaultModel).toBe(true);
    const transcript = [
      { callId: "c", at: "t", speaker: "bot" as const, kind: "speech" as const, text: "Hello.", turn: 1 },
      { callId: "c", at: "t", speaker: "caller" as const, kind: "speech" as const, text: "When do you open?", turn: 1 },
    ];
    expect(await responder.reply({ model: undefined, transcript })).toBe("We open at nine.");
    expect(asked[0]).toMatchObject({ model: undefined, messages: [{ role: "assistant", content: "Hello." }, { role: "user", content: "When do you open?" }] });
    expect(asked[0]!.system).toContain('{"spoken"');
  });

  it("reports a refusal of the runtime as PROVIDER_ERROR with its words, and a silent runtime as UNAVAILABLE", async () => {
    const refusing = new Responder({ baseUrl: "http://127.0.0.1:9/v1", timeoutMs: 2000, chat: async () => Promise.reject(new Error("no such model")) });
    await expect(refusing.reply({ model: "x/y", transcript: [] })).rejects.toMatchObject({ code: "PROVIDER_ERROR", message: "response model x/y: no such model" });
    const silent = new Responder({
      baseUrl: "http://127.0.0.1:9/v1",
      timeoutMs: 50,
      chat: ({ signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")))),
    });
    await expect(silent.reply({ model: undefined, transcript: [] })).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });
});

describe("answers said piece by piece (a responder that streams, like the gateway's agent)", () => {
  const managers: CallManager[] = [];
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.stop();
  });

  async function start(responder: TurnResponder) {
    const config = makeConfig({ inboundPolicy: "open", inboundGreeting: "Hello, shop here.", mock: { replies: [], speakMsPerChar: 0 } });
    const providers = createProviders(config, { logger: createLogger("silent") });
    const { store, loaded } = JsonlStore.open(tempDir());
    const manager = new CallManager({ config, providers, store, loaded, logger: createLogger("silent"), responder });
    await manager.start();
    managers.push(manager);
    const mock = providers.get("mock") as MockProvider;
    const listens: string[] = [];
    const listen = mock.listen.bind(mock);
    mock.listen = async (id, token, options) => {
      listens.push(token);
      return listen(id, token, options);
    };
    const pid = mock.simulateInbound("+15550009999", "+15550000001");
    const call = await waitFor(() => manager.listCalls().find((c) => c.providerCallId === pid), "inbound call");
    await waitFor(() => manager.getCall(call.callId)!.state === "listening", "greeting played");
    return { manager, mock, pid, callId: call.callId, listens };
  }

  it("speaks the first piece while the answer is still being made, and the turn listens again after the last", async () => {
    let finish!: () => void;
    const turns: CallerTurn[] = [];
    const { manager, mock, pid, callId, listens } = await start({
      answers: () => true,
      respond: async (turn) => {
        turns.push(turn);
        turn.say("We open at nine.");
        await new Promise<void>((r) => (finish = r));
        turn.say("<think>they may want the weekend too</think>And at ten on Saturdays.");
      },
    });
    mock.simulateSpeech(pid, "when do you open");
    await waitFor(() => mock.spokenTo(pid).length === 2, "the first piece, before the answer is complete");
    expect(turns[0]).toMatchObject({ words: "when do you open", call: { callId, direction: "inbound" } });
    finish();
    await waitFor(() => mock.spokenTo(pid).length === 3, "the second piece");
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here.", "We open at nine.", "And at ten on Saturdays."]);
    // One turn for the whole answer (opened by its first piece), listened to again once the last had played.
    await waitFor(() => listens.length >= 3, "the turn listening again");
    const view = manager.getCall(callId)!;
    expect(view.turn).toBe(2);
    expect(listens.slice(-2)).toEqual([listens.at(-1), listens.at(-1)]);
    expect(view.transcript.filter((t) => t.origin === "model").map((t) => t.text)).toEqual(["We open at nine.", "And at ten on Saturdays."]);
  });

  it("aborts the answer being made when the caller says more, and answers their newer words instead", async () => {
    const seen: Array<{ words: string; aborted: () => boolean }> = [];
    const { mock, pid } = await start({
      answers: () => true,
      respond: async (turn) => {
        seen.push({ words: turn.words, aborted: () => turn.signal.aborted });
        if (turn.words === "I want a cake") {
          await new Promise((r) => turn.signal.addEventListener("abort", r, { once: true }));
          turn.say("A cake, sure."); // too late: dropped
          return;
        }
        turn.say(`About ${turn.words}.`);
      },
    });
    mock.simulateSpeech(pid, "I want a cake");
    await waitFor(() => seen.length === 1, "the first answer started");
    mock.simulateSpeech(pid, "for twelve people");
    await waitFor(() => mock.spokenTo(pid).length >= 2, "an answer");
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.map((s) => [s.words, s.aborted()])).toEqual([["I want a cake", true], ["for twelve people", false]]);
    expect(mock.spokenTo(pid)).toEqual(["Hello, shop here.", "About for twelve people."]);
  });
});
