/**
 * The plugin inside the real OpenClaw gateway (installed from npm, cached):
 * an agent turn whose model calls voice_call, operator scopes, the gateway's
 * `openclaw voicecall` CLI, the documented compatibility methods, and calls
 * through the PBX lab (out to a lab phone; in from one, answered by the
 * gateway's agent). Callers talking to the agent over Twilio, its sessions,
 * voices and recognisers: test/gateway-agent.test.ts. Skips, saying why, where the gateway cannot be
 * installed; the PBX cases skip where the lab cannot run.
 *
 * The PBX cases hold a lab only while they run: on a machine with Docker, a
 * container lab on a slot of its own, started after the gateway (whose
 * Asterisk carrier connects once it answers); without Docker, the chroot lab
 * on slot 0 for the whole file.
 */
import { createServer } from "node:net";
import { join } from "node:path";
import JSON5 from "json5";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/configure.js";
import { VoiceCallClient } from "../src/server/client.js";
import { LAB_DIAL_TEMPLATE } from "../src/lab/cli.js";
import { labInfo } from "../src/lab/config.js";
import { defaultLabBackend, Lab, labUnavailableReason } from "../src/lab/lab.js";
import { labAnswer, labCall } from "../src/lab/phone.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import type { CallRecord, CallView } from "../src/calls/types.js";
import { transcribePcm } from "../src/speech/pocketsphinx.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { FakeAgentModel } from "./fakes/agent-model.js";
import { Gateway, GATEWAY_NODE_VERSION, OPENCLAW_VERSION, ensureGateway, gatewayDoc } from "./fakes/openclaw.js";
import { tempDir } from "./helpers.js";

const gatewayUnavailable = await ensureGateway((line) => console.log(`[gateway] ${line}`));
if (gatewayUnavailable) console.warn(`skipping the gateway tests: ${gatewayUnavailable}`);
const labUnavailable = labUnavailableReason();
if (!gatewayUnavailable && labUnavailable) console.warn(`skipping the gateway's PBX cases: ${labUnavailable}`);
/** Slot 2 is this file's own (a container lab); 0 where only the chroot lab can run. */
const LAB_SLOT = labUnavailableReason("container") === undefined ? 2 : 0;
const LAB = labInfo(defaultLabBackend(LAB_SLOT), { slot: LAB_SLOT }, "");

async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** The JSON line a `--json` command printed (the gateway's CLI may print a banner first). */
function jsonLine(stdout: string): any {
  const line = stdout.trim().split("\n").reverse().find((l) => l.startsWith("{"));
  if (!line) throw new Error(`no JSON in: ${stdout}`);
  return JSON.parse(line);
}

describe.skipIf(gatewayUnavailable !== undefined)(`inside the real gateway (openclaw ${OPENCLAW_VERSION}, Node ${GATEWAY_NODE_VERSION})`, () => {
  let gateway: Gateway;
  let model: FakeAgentModel;
  let lab: Lab | undefined;
  let service: VoiceCallClient;
  const controlToken = "control-token-for-the-gateway-test";

  const agentTurn = async (toolArgs: Record<string, unknown>) => {
    model.nextToolCall = { name: "voice_call", arguments: toolArgs };
    const run = await gateway.cli(["agent", "--agent", "main", "--message", "Please make the call.", "--json"], 180_000);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const result = model.toolResults.at(-1);
    expect(result, `the model got the tool's result; tools offered: ${JSON.stringify(model.offeredTools.at(-1))}; roles: ${JSON.stringify(model.roles.slice(-3))}; stdout: ${run.stdout.slice(-1500)}`).toBeDefined();
    return JSON.parse(result!) as Record<string, any>;
  };

  beforeAll(async () => {
    model = await FakeAgentModel.start();
    if (!labUnavailable && LAB_SLOT === 0) lab = await Lab.start({ onProgress: (l) => console.log(`[lab] ${l}`), waitForLabMs: 600_000 });
    const servePort = await freeTcpPort();
    const pluginConfig: Record<string, unknown> = {
      provider: "mock",
      serve: { port: servePort },
      store: tempDir(),
      control: { token: controlToken },
      mock: { ringMs: 20, speakMsPerChar: 0, replyDelayMs: 20, replies: ["yes, that works"] },
      outbound: { notifyHangupDelaySec: 1 },
    };
    if (!labUnavailable) {
      // Extensions go to the PBX, everything else to the default carrier: chosen per call.
      pluginConfig.routing = { rules: [{ pattern: "[0-9]{3,5}", provider: "asterisk" }] };
      // Lab callers no agent drives are answered by the gateway's agent (no responseBaseUrl set).
      Object.assign(pluginConfig, { inboundPolicy: "open", inboundGreeting: "Hello.", responseModel: "fake/agent-model" });
      pluginConfig.asterisk = {
        ari: { url: LAB.ariUrl, username: LAB.ariUser, password: LAB.ariPassword, app: LAB.ariApp },
        dialTemplate: LAB_DIAL_TEMPLATE,
      };
    }
    gateway = await Gateway.start({
      home: tempDir("voicecall-gateway-"),
      port: await freeTcpPort(),
      token: "gateway-token-for-the-voicecall-test",
      modelBaseUrl: model.baseUrl,
      pluginConfig,
      // Trusted to pick responseModel for its completions (the gateway's default refuses a plugin that).
      pluginEntry: { llm: { allowModelOverride: true, allowedModels: ["fake/agent-model"] } },
      onProgress: (l) => console.log(`[gateway] ${l}`),
    });
    service = new VoiceCallClient({ url: `http://127.0.0.1:${servePort}`, token: controlToken });
  }, 900_000);

  afterAll(async () => {
    await gateway?.stop();
    await model?.close();
    await lab?.stop();
  });

  it("an agent turn whose model calls voice_call places a call (Mock, +1 number), and the model sees the tool directly", async () => {
    const result = await agentTurn({ action: "initiate_call", to: "+15550001234", message: "Hello from the agent.", mode: "notify" });
    expect(result).toMatchObject({ initiated: true, provider: "mock", callId: expect.any(String) });
    const offered = model.offeredTools.find((tools) => tools.includes("voice_call"));
    expect(offered, `tools offered: ${JSON.stringify(model.offeredTools.at(-1))}`).toBeDefined();
    const status = (await service.call("voicecall.status", { callId: result.callId })) as any;
    expect(status).toMatchObject({ found: true, call: { to: "+15550001234", provider: "mock", direction: "outbound" } });
    // One service in the process, whichever registration ran the tool.
    expect(gateway.log).not.toMatch(/already in use/);
    expect(gateway.log.match(/voice-call service listening/g)).toHaveLength(1);
  }, 240_000);

  it("operator.read lists calls but cannot place one; operator.write places one", async () => {
    const list = await gateway.rpc(["operator.read"], "voicecall.list");
    expect(list.ok, JSON.stringify(list.error)).toBe(true);
    expect(Array.isArray(list.payload.calls)).toBe(true);
    const status = await gateway.rpc(["operator.read"], "voicecall.status");
    expect(status).toMatchObject({ ok: true, payload: { calls: expect.any(Array) } });
    const refused = await gateway.rpc(["operator.read"], "voicecall.initiate", { to: "+15550001234", message: "hi" });
    expect(refused).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
    expect(refused.error!.message).toContain("operator.write");
    const placed = await gateway.rpc(["operator.write"], "voicecall.initiate", { to: "+15550001234", message: "hi" });
    expect(placed).toMatchObject({ ok: true, payload: { initiated: true, provider: "mock" } });
    const bad = await gateway.rpc(["operator.write"], "voicecall.initiate", { to: "+15550001234" });
    expect(bad.ok).toBe(false);
    expect(bad.error).toMatchObject({ code: "INVALID_PARAMS", details: { issues: [{ path: "message" }] } });
  });

  it("the documented compatibility methods: start with a dtmfSequence, continue.start + continue.result, status without callId", async () => {
    const started = await gateway.rpc(["operator.write"], "voicecall.start", { to: "+15550001234", mode: "conversation", message: "Hi there.", dtmfSequence: "12#" });
    expect(started.ok, JSON.stringify(started.error)).toBe(true);
    const callId = started.payload.callId as string;
    const op = await gateway.rpc(["operator.write"], "voicecall.continue.start", { callId, message: "Does Tuesday work?" });
    expect(op).toMatchObject({ ok: true, payload: { operationId: expect.any(String) } });
    let result: any;
    const deadline = Date.now() + 20_000;
    do {
      result = (await gateway.rpc(["operator.read"], "voicecall.continue.result", { operationId: op.payload.operationId })).payload;
      if (result.status !== "pending") break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < deadline);
    expect(result, JSON.stringify(result)).toMatchObject({ status: "completed", result: { success: true, transcript: "yes, that works" } });
    const active = await gateway.rpc(["operator.read"], "voicecall.status");
    expect(active.payload.calls.map((c: any) => c.callId)).toContain(callId);
    const view = (await service.call("voicecall.status", { callId })) as any;
    expect(view.call.transcript.map((t: any) => t.text)).toEqual(expect.arrayContaining(["Hi there.", "Does Tuesday work?", "yes, that works"]));
    const unknown = await gateway.rpc(["operator.read"], "voicecall.continue.result", { operationId: "nope" });
    expect(unknown).toMatchObject({ ok: false, error: { code: "NOT_FOUND" } });
  }, 60_000);

  it("`openclaw voicecall status --json` and `call ... --json` reach the plugin's own service with no other flags", async () => {
    const call = await gateway.cli(["voicecall", "call", "--to", "+15550001234", "--message", "From the gateway CLI.", "--json"]);
    expect(call.code, call.stderr.slice(-2000)).toBe(0);
    const placed = jsonLine(call.stdout);
    expect(placed).toMatchObject({ ok: true, result: { initiated: true, provider: "mock" } });
    const status = await gateway.cli(["voicecall", "status", "--json"]);
    expect(status.code, status.stderr.slice(-2000)).toBe(0);
    expect(jsonLine(status.stdout).result.calls.map((c: any) => c.callId)).toContain(placed.result.callId);
    // `openclaw voicecall setup` checks the plugin's own config and finds its running service.
    const setup = await gateway.cli(["voicecall", "setup", "--json"]);
    const findings = jsonLine(setup.stdout).result.findings as Array<{ check: string; status: string }>;
    expect(findings.find((f) => f.check === "config")).toMatchObject({ status: "ok" });
    expect(findings.find((f) => f.check === "service")).toMatchObject({ status: "ok" });
    // With the PBX configured: which engine serves each direction, and why, as the running service chose them.
    if (!labUnavailable) expect(findings.find((f) => f.check === "speech")).toMatchObject({ status: "ok", detail: expect.stringMatching(/^the running service: speech out: .+, .+; speech in: .+, .+$/) });
    // The PBX the config names, when it is not up now (its lab runs only for the PBX cases): named, and setup exits 1.
    const pbxDown = !labUnavailable && !lab;
    if (pbxDown) expect(findings.find((f) => f.check === "asterisk-ari")).toMatchObject({ status: "fail", detail: expect.stringContaining("unreachable") });
    expect(setup.code, setup.stderr.slice(-2000)).toBe(pbxDown ? 1 : 0);
  }, 240_000);

  it("the gateway finds the plugin's skill for its agents (`openclaw skills list`)", async () => {
    const listed = await gateway.cli(["skills", "list", "--json"]);
    expect(listed.code, listed.stderr.slice(-2000)).toBe(0);
    const skills = JSON.parse(listed.stdout.slice(listed.stdout.indexOf("{"))).skills as Array<{ name: string; eligible: boolean }>;
    expect(skills.find((s) => s.name === "voice-call")).toMatchObject({ eligible: true });
  }, 60_000);

  it("the voice-call configuration documented with the gateway loads unchanged", () => {
    const doc = gatewayDoc(join("plugins", "voice-call", "configuration.md"));
    const example = JSON5.parse(doc.match(/```json5\n([\s\S]*?)```/)![1]!) as any;
    const raw = example.plugins.entries["voice-call"].config;
    const { config, warnings } = resolveConfig(raw, {}, "documented example");
    expect(config).toMatchObject({ provider: "twilio", sessionScope: "per-phone", twilio: { accountSid: "ACxxxxxxxx" } });
    expect(config.numbers["+15550009999"]?.inboundGreeting).toBe("Silver Fox Cards, how can I help?");
    // The number's own voice names OpenAI, which has no key here: the start says what speaks instead.
    expect(warnings.join("\n")).toContain("numbers.+15550009999.tts: openai cannot run as configured");
  });

  describe.skipIf(labUnavailable !== undefined)("with the PBX lab", () => {
    beforeAll(async () => {
      if (LAB_SLOT === 0) return;
      lab = await Lab.start({ slot: LAB_SLOT, onProgress: (l) => console.log(`[lab] ${l}`), waitForLabMs: 600_000 });
      // The gateway's Asterisk carrier started before this lab and connects once it answers: its app then shows in ARI.
      const subscribed = async () => {
        const res = await fetch(`${lab!.info.ariUrl}/ari/applications`, { headers: lab!.ariHeaders });
        return res.ok && ((await res.json()) as Array<{ name: string }>).some((a) => a.name === LAB.ariApp);
      };
      const deadline = Date.now() + 30_000;
      while (!(await subscribed())) {
        if (Date.now() > deadline) throw new Error(`the gateway's Asterisk carrier did not connect to the lab within 30 s:\n${gateway.log.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }, 900_000);

    afterAll(async () => {
      if (LAB_SLOT !== 0) await lab?.stop();
    });

    it("an agent's call to an extension is routed to the PBX lab: the lab phone answers and hears the message", async () => {
      const message = "This is your reminder for tomorrow at nine.";
      const phone = labAnswer(lab!, { waitMs: 90_000, onProgress: (l) => console.log(`[phone] ${l}`) });
      const result = await agentTurn({ action: "initiate_call", to: "300", message, mode: "notify" });
      expect(result).toMatchObject({ initiated: true, provider: "asterisk" });
      const heard = await phone;
      expect(heard.code, heard.output.slice(-2000)).toBe(0);
      const words = await transcribePcm(heard.heard, 8000);
      expect(wordErrorRate(message, words ?? "")).toBeLessThanOrEqual(0.35);
      const status = (await service.call("voicecall.status", { callId: result.callId })) as any;
      expect(status.call).toMatchObject({ provider: "asterisk", to: "300" });
    }, 180_000);

    it("a lab phone's caller no agent drives is answered by the gateway's agent: an agent run on the caller's session, with voice_call bound to the call", async () => {
      const before = model.conversations.length;
      const requestsBefore = model.requests.length;
      const said = await synthesizeAll(new FliteSynthesizer(), "I would like to book a table.", 8000);
      const started = new Date().toISOString();
      const phone = await labCall(lab!, "150", { say: said, holdMs: 12_000 });
      expect(phone.code, phone.output.slice(-1500)).toBe(0);
      const calls = ((await service.call("voicecall.list", {})) as { calls: CallRecord[] }).calls;
      const call = calls.find((c) => c.direction === "inbound" && c.to === "150" && c.createdAt >= started);
      expect(call).toBeDefined();
      const view = ((await service.call("voicecall.status", { callId: call!.callId })) as { call: CallView }).call;
      const caller = view.transcript.find((t) => t.speaker === "caller" && t.kind === "speech");
      expect(caller?.text).toMatch(/table/);
      // The gateway asked the model with the caller's words, and what it said was spoken as the model's reply.
      const asked = model.conversations.slice(before).find((c) => c.some((m) => m.role === "user" && /table/.test(m.text)));
      const voiceLog = gateway.log.split("\n").filter((l) => l.includes("[voice-call]")).slice(-8).join("\n");
      expect(asked, `${JSON.stringify(model.conversations.slice(before)).slice(0, 800)}\n${voiceLog}`).toBeDefined();
      expect(view.transcript).toContainEqual(expect.objectContaining({ speaker: "bot", origin: "model", text: "Nothing to do." }));
      // An agent run, not a bare completion: the agent's tools, voice_call bound to this call, on the caller's session.
      const run = model.requests.slice(requestsBefore).find((r) => r.messages.some((m) => m.role === "user" && /table/.test(m.text)));
      expect(run?.tools.find((t) => t.name === "voice_call")?.description).toContain(call!.callId);
      expect(gateway.log).toMatch(new RegExp(`agent turn done.*"callId":"${call!.callId}".*"sessionKey":"agent:main:voice:`));
    }, 120_000);
  });
});
