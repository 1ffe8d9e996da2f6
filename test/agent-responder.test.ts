/**
 * The gateway agent's side of a call, without the gateway: which agent and
 * session a call's turns run on, what a run is given, how its text becomes
 * speech (sentences as they are written, nothing said twice), aborts, and
 * the fallback on a gateway without agent runs. The real gateway runs in
 * test/gateway-agent.test.ts.
 */
import { describe, expect, it, vi } from "vitest";
import type { CallerTurn } from "../src/calls/responder.js";
import type { CallRecord } from "../src/calls/types.js";
import { AgentResponder, callSessionKey, splitModel } from "../src/gateway/agent-responder.js";
import type { EmbeddedAgentParams, EmbeddedAgentResult, GatewayRuntime } from "../src/gateway/sdk.js";
import { SETTLE_MS, SentenceFeed } from "../src/gateway/sentence-feed.js";
import { makeConfig } from "./helpers.js";

const inbound = (over: Partial<CallRecord> = {}): CallRecord => ({
  callId: "Call-1",
  provider: "twilio",
  direction: "inbound",
  mode: "conversation",
  from: "+1 (555) 000-1234",
  to: "+15550009999",
  state: "listening",
  createdAt: new Date().toISOString(),
  turn: 1,
  ...over,
});

describe("the session a call's turns run on", () => {
  it("per-phone: the remote party's digits under the agent; per-call: the call id; main: the agent's main session (global when the gateway's scope is)", () => {
    expect(callSessionKey(inbound(), "per-phone", "main")).toBe("agent:main:voice:15550001234");
    expect(callSessionKey(inbound({ direction: "outbound", from: "+15550009999", to: "+15550004321" }), "per-phone", "sales")).toBe("agent:sales:voice:15550004321");
    expect(callSessionKey(inbound({ from: "Reception Desk" }), "per-phone", "main")).toBe("agent:main:voice:reception-desk");
    expect(callSessionKey(inbound(), "per-call", "main")).toBe("agent:main:voice:call:call-1");
    expect(callSessionKey(inbound(), "main", "ops")).toBe("agent:ops:main");
    expect(callSessionKey(inbound(), "main", "ops", { globalScope: true })).toBe("global");
  });

  it("a call's own session key wins: the agent's own keys as they are, others kept under the agent, global and unknown as the gateway's sentinels", () => {
    expect(callSessionKey(inbound({ sessionKey: "agent:main:meet:Standup" }), "per-phone", "main")).toBe("agent:main:meet:Standup");
    expect(callSessionKey(inbound({ sessionKey: "agent:other:main" }), "per-phone", "main")).toBe("agent:main:agent:other:main");
    expect(callSessionKey(inbound({ sessionKey: "crm:ticket-9" }), "per-call", "main")).toBe("agent:main:crm:ticket-9");
    expect(callSessionKey(inbound({ sessionKey: "global" }), "per-phone", "main")).toBe("global");
  });

  it("responseModel as provider/model for the run; a bare name is a model", () => {
    expect(splitModel("openai/gpt-4o-mini")).toEqual({ provider: "openai", model: "gpt-4o-mini" });
    expect(splitModel("fake/org/model")).toEqual({ provider: "fake", model: "org/model" });
    expect(splitModel("gpt-4o")).toEqual({ model: "gpt-4o" });
    expect(splitModel(undefined)).toEqual({});
  });
});

describe("SentenceFeed", () => {
  it("hands on each sentence once text follows it, the rest when the model stops writing, and never a sentence twice", () => {
    const said: string[] = [];
    const feed = new SentenceFeed((t) => said.push(t));
    feed.partial({ text: "Of course." });
    expect(said).toEqual([]);
    feed.partial({ text: "Of course. Let me" });
    expect(said).toEqual(["Of course."]);
    feed.partial({ delta: " check that for you." });
    feed.flush();
    expect(said).toEqual(["Of course.", "Let me check that for you."]);
    // A new message after a tool call; then the run's final answer repeats it.
    feed.messageStart();
    feed.partial({ text: "It is open until nine. See" });
    feed.whole("It is open until nine. See you then.");
    expect(said).toEqual(["Of course.", "Let me check that for you.", "It is open until nine.", "See you then."]);
    expect(feed.count).toBe(4);
  });

  it("says a message that ends like a sentence once nothing is added to it for SETTLE_MS; text that goes on within it is not cut", () => {
    vi.useFakeTimers();
    try {
      const said: string[] = [];
      const feed = new SentenceFeed((t) => said.push(t));
      feed.partial({ text: "Of course, I can book that." });
      vi.advanceTimersByTime(SETTLE_MS - 1);
      expect(said).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(said).toEqual(["Of course, I can book that."]);
      // A number's decimal point at the end of a partial: the rest comes within the settle time.
      feed.partial({ text: "Of course, I can book that. It costs 3." });
      vi.advanceTimersByTime(SETTLE_MS / 2);
      feed.partial({ text: "Of course, I can book that. It costs 3.50 a person" });
      vi.advanceTimersByTime(SETTLE_MS * 4);
      expect(said).toEqual(["Of course, I can book that."]);
      // Text that does not end a sentence waits for more; a closed feed says nothing later.
      feed.partial({ text: "Of course, I can book that. It costs 3.50 a person. Shall I" });
      expect(said).toEqual(["Of course, I can book that.", "It costs 3.50 a person."]);
      feed.partial({ text: "Of course, I can book that. It costs 3.50 a person. Shall I book it?" });
      feed.close();
      vi.advanceTimersByTime(SETTLE_MS * 4);
      expect(said).toEqual(["Of course, I can book that.", "It costs 3.50 a person."]);
    } finally {
      vi.useRealTimers();
    }
  });
});

/** A gateway runtime whose agent run is `run`; records what it was given. */
function fakeRuntime(run: (params: EmbeddedAgentParams) => Promise<EmbeddedAgentResult>) {
  const calls: EmbeddedAgentParams[] = [];
  const admitted: Array<{ storePath: string; sessionKey: string }> = [];
  const runtime: GatewayRuntime = {
    config: { current: () => ({ session: { store: "/state/sessions" } }) },
    agent: {
      runEmbeddedAgent: (params) => {
        calls.push(params);
        return run(params);
      },
      resolveAgentDir: (_cfg, id) => `/agents/${id}`,
      resolveAgentWorkspaceDir: (_cfg, id) => `/workspaces/${id}`,
      session: {
        resolveStorePath: (store, { agentId }) => `${store}/${agentId}`,
        getSessionEntry: ({ sessionKey }) => (sessionKey === "agent:main:voice:15550001234" ? { sessionId: "existing-session" } : undefined),
        runWithWorkAdmission: async (target, work) => {
          admitted.push(target);
          return work(new AbortController().signal);
        },
      },
    },
  };
  return { runtime, calls, admitted };
}

const routing = { normalizeAgentId: (id: string | undefined) => (id ?? "main").toLowerCase(), parseAgentSessionKey: () => null };
const agentScope = { resolveDefaultAgentId: () => "main" };

function turnOf(call: CallRecord, say: (t: string) => void, signal = new AbortController().signal): CallerTurn {
  return { call, transcript: [{ callId: call.callId, at: "", speaker: "caller", kind: "speech", text: "Is the shop open today?", turn: 1 }], words: "Is the shop open today?", model: undefined, systemPrompt: undefined, timeoutMs: 15_000, say, signal };
}

describe("AgentResponder", () => {
  it("runs the call's agent on its session under the work-admission lock, as a caller who is not the owner, with the tool bound to the call", async () => {
    const { runtime, calls, admitted } = fakeRuntime(async (p) => {
      p.onPartialReply?.({ text: "Yes, we are open." });
      p.onPartialReply?.({ text: "Yes, we are open. Until six" });
      return { payloads: [{ text: "Yes, we are open. Until six tonight." }, { text: "thinking...", isReasoning: true }] };
    });
    const config = makeConfig({ numbers: { "+15550009999": { agentId: "Shop" } } });
    const responder = new AgentResponder({ config, runtime: () => runtime, sdk: { routing, agentScope } });
    const said: string[] = [];
    await responder.respond(turnOf(inbound(), (t) => said.push(t)));
    expect(said).toEqual(["Yes, we are open.", "Until six tonight."]);
    expect(admitted).toEqual([{ storePath: "/state/sessions/shop", sessionKey: "agent:shop:voice:15550001234" }]);
    const run = calls[0]!;
    expect(run).toMatchObject({
      agentId: "shop",
      sessionKey: "agent:shop:voice:15550001234",
      workspaceDir: "/workspaces/shop",
      prompt: "Is the shop open today?",
      lane: "voice",
      senderIsOwner: false,
      senderE164: "+1 (555) 000-1234",
      toolBindings: { "voice-call": { callId: "Call-1" } },
      timeoutMs: 15_000,
    });
    expect(run.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(run.extraSystemPrompt).toContain("phone call Call-1");
    expect(run.provider).toBeUndefined();
  });

  it("the call's trusted agentId over the number's; an existing session keeps its id; responseModel picks the run's model", async () => {
    const { runtime, calls } = fakeRuntime(async () => ({ payloads: [{ text: "Hello." }] }));
    const config = makeConfig({ agentId: "fallback", numbers: { "+15550009999": { agentId: "shop" } } });
    const responder = new AgentResponder({ config, runtime: () => runtime, sdk: { routing, agentScope } });
    await responder.respond({ ...turnOf(inbound({ agentId: "main" }), () => undefined), model: "fake/agent-model" });
    expect(calls[0]).toMatchObject({ agentId: "main", sessionId: "existing-session", provider: "fake", model: "agent-model" });
  });

  it("says nothing of a run the caller's newer words aborted; a failing run names its agent and session", async () => {
    const controller = new AbortController();
    const { runtime } = fakeRuntime(async (p) => {
      controller.abort();
      p.onPartialReply?.({ text: "Too late. Really" });
      return { payloads: [{ text: "Too late." }] };
    });
    const responder = new AgentResponder({ config: makeConfig(), runtime: () => runtime, sdk: { routing, agentScope } });
    const said: string[] = [];
    await responder.respond(turnOf(inbound(), (t) => said.push(t), controller.signal));
    expect(said).toEqual([]);

    const failing = fakeRuntime(async () => {
      throw new Error("model unreachable");
    });
    const broken = new AgentResponder({ config: makeConfig(), runtime: () => failing.runtime, sdk: { routing, agentScope } });
    await expect(broken.respond(turnOf(inbound(), () => undefined))).rejects.toThrow(/agent main \(session agent:main:voice:15550001234\): model unreachable/);
  });

  it("a gateway without agent runs answers through the fallback responder", async () => {
    const said: string[] = [];
    const fallback = { answers: () => true, respond: async (t: CallerTurn) => t.say("From the model runtime.") };
    const responder = new AgentResponder({ config: makeConfig(), runtime: () => ({}), fallback });
    await responder.respond(turnOf(inbound(), (t) => said.push(t)));
    expect(said).toEqual(["From the model runtime."]);
  });
});
