import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import entry, { type GatewayRequest, type PluginApi, type PluginTool, type ToolFactoryContext } from "../src/gateway/plugin.js";
import { buildManifest } from "../src/gateway/manifest.js";
import { tempDir } from "./helpers.js";

interface Registered {
  /** The tool as a run outside any call sees it. */
  tools: PluginTool[];
  /** The tool as a run with this context sees it. */
  toolFor: (ctx: ToolFactoryContext) => PluginTool | null | undefined;
  methods: Map<string, (opts: GatewayRequest) => Promise<void> | void>;
  scopes: Map<string, string | undefined>;
  cli: Array<{ registrar: (ctx: { program: Command }) => void | Promise<void>; opts?: { commands?: string[] } }>;
  services: Array<Parameters<PluginApi["registerService"]>[0]>;
  logs: string[];
}

function load(pluginConfig: Record<string, unknown>, registrationMode?: string, plugin: typeof entry = entry): Registered {
  const r: Registered = { tools: [], toolFor: () => undefined, methods: new Map(), scopes: new Map(), cli: [], services: [], logs: [] };
  const log = (level: string) => (m: string) => r.logs.push(`${level}: ${m}`);
  plugin.register({
    pluginConfig,
    registrationMode,
    logger: { info: log("info"), warn: log("warn"), error: log("error"), debug: log("debug") },
    registerTool: (t) => {
      r.toolFor = typeof t === "function" ? t : () => t;
      const tool = r.toolFor({});
      if (tool) r.tools.push(tool);
    },
    registerGatewayMethod: (name, handler, opts) => {
      r.methods.set(name, handler);
      r.scopes.set(name, opts?.scope);
    },
    registerCli: (registrar, opts) => r.cli.push({ registrar, opts }),
    registerService: (s) => r.services.push(s),
  });
  return r;
}

async function callMethod(r: Registered, name: string, params: Record<string, unknown>) {
  return new Promise<{ ok: boolean; payload: any; error: any }>((resolve) => {
    void r.methods.get(name)!({ params, respond: (ok, payload, error) => resolve({ ok, payload, error }) });
  });
}

const loaded: Registered[] = [];
afterEach(async () => {
  for (const r of loaded.splice(0)) for (const s of r.services) await s.stop?.();
});

const goodConfig = () => ({
  serve: { port: 0 },
  store: tempDir(),
  log: { level: "silent" },
  mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] },
});

describe("OpenClaw plugin entry", () => {
  it("registers the tool, every voicecall method, the CLI and the service", () => {
    const r = load(goodConfig());
    loaded.push(r);
    expect(entry.id).toBe("voice-call");
    expect(r.tools.map((t) => t.name)).toEqual(["voice_call"]);
    const schema = JSON.stringify(r.tools[0]!.parameters);
    for (const action of ["initiate_call", "continue_call", "speak_to_user", "send_dtmf", "end_call", "transfer_call", "get_status"]) expect(schema).toContain(`"${action}"`);
    expect([...r.methods.keys()].sort()).toEqual([
      "voicecall.continue",
      "voicecall.continue.result",
      "voicecall.continue.start",
      "voicecall.dtmf",
      "voicecall.end",
      "voicecall.initiate",
      "voicecall.list",
      "voicecall.recording",
      "voicecall.speak",
      "voicecall.start",
      "voicecall.status",
      "voicecall.transfer",
    ]);
    // Reads need operator.read only; everything that changes a call needs operator.write (never admin).
    for (const [name, scope] of r.scopes) {
      const read = ["voicecall.status", "voicecall.list", "voicecall.recording", "voicecall.continue.result"].includes(name);
      expect(scope, name).toBe(read ? "operator.read" : "operator.write");
    }
    expect(r.cli[0]!.opts).toEqual({ commands: ["voicecall"] });
    expect(r.services.map((s) => s.id)).toEqual(["voicecall"]);
  });

  it("offers the model one flat object: action as an enum plus each action's fields, directly (not behind tool search)", () => {
    const r = load(goodConfig());
    loaded.push(r);
    const tool = r.tools[0]!;
    expect(tool.catalogMode).toBe("direct-only");
    const schema = tool.parameters as { type: string; properties: Record<string, any>; required: string[]; oneOf?: unknown };
    expect(schema.type).toBe("object");
    expect(schema.oneOf).toBeUndefined();
    expect(schema.required).toEqual(["action"]);
    expect(schema.properties.action.enum).toEqual(["initiate_call", "continue_call", "speak_to_user", "send_dtmf", "end_call", "transfer_call", "get_status"]);
    for (const field of ["to", "message", "mode", "dtmfSequence", "callId", "digits", "expect"]) expect(schema.properties, field).toHaveProperty(field);
    expect(schema.properties.digits.description).toContain("send_dtmf");
    // Session keys are the gateway's to set, never the model's.
    expect(schema.properties).not.toHaveProperty("sessionKey");
    // Trusted context and core callers' compatibility fields are never the model's to set.
    for (const field of ["agentId", "requesterSessionKey", "allowTwimlFallback", "sid"]) expect(schema.properties).not.toHaveProperty(field);
    expect(tool.getExecutionTimeoutMs?.({ action: "continue_call" })).toBeGreaterThan(180_000);
  });

  it("runs one service per process: a second copy of the module registered for discovery uses the first copy's service", async () => {
    const full = load(goodConfig(), "full");
    loaded.push(full);
    await full.services[0]!.start();
    // The gateway loads the plugin again as a separate module copy for discovery.
    vi.resetModules();
    const copy = (await import("../src/gateway/plugin.js")).default;
    expect(copy).not.toBe(entry);
    const discovery = load(goodConfig(), "discovery", copy);
    await discovery.services[0]!.start(); // starts nothing in discovery mode
    const placed = (await discovery.tools[0]!.execute("t1", { action: "initiate_call", to: "+15550001234", message: "hi" })) as any;
    expect(placed.details).toMatchObject({ initiated: true });
    const seen = await callMethod(full, "voicecall.status", { callId: placed.details.callId });
    expect(seen).toMatchObject({ ok: true, payload: { found: true } });
    // An error thrown by one copy keeps its code when the other copy reports it.
    const missing = (await discovery.tools[0]!.execute("t2", { action: "get_status", callId: "nope" })) as any;
    expect(missing.details).toEqual({ found: false });
    const ended = await callMethod(discovery, "voicecall.speak", { callId: "nope", message: "x" });
    expect(ended.error).toMatchObject({ code: "NOT_FOUND" });
    // Stopping through either registration stops the one service, once.
    await discovery.services[0]!.stop?.();
    await full.services[0]!.stop?.();
  });

  it("adds `voicecall` with its subcommands to the gateway's CLI", async () => {
    const r = load(goodConfig());
    loaded.push(r);
    const program = new Command("openclaw");
    await r.cli[0]!.registrar({ program });
    const voicecall = program.commands.find((c) => c.name() === "voicecall")!;
    expect(voicecall.commands.map((c) => c.name()).sort()).toEqual(["call", "continue", "doctor", "dtmf", "end", "expose", "lab", "latency", "recording", "serve", "setup", "smoke", "speak", "status", "tail", "transfer"]);
    expect(voicecall.commands.find((c) => c.name() === "call")!.aliases()).toContain("start");
  });

  it("takes --json, --url, --token and --config after each subcommand, as the gateway's positional CLI passes them", async () => {
    const r = load(goodConfig());
    loaded.push(r);
    const program = new Command("openclaw").enablePositionalOptions().exitOverride();
    await r.cli[0]!.registrar({ program });
    const out: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
    try {
      // Nothing listens on port 9: the command must get that far (options accepted) and report it as JSON.
      await program.parseAsync(["voicecall", "status", "--json", "--url", "http://127.0.0.1:9", "--token", "t".repeat(20)], { from: "user" });
    } finally {
      process.stdout.write = write;
      process.exitCode = 0;
    }
    const reply = JSON.parse(out.join("").trim().split("\n").at(-1)!);
    expect(reply).toMatchObject({ ok: false, error: { code: "UNAVAILABLE" } });
    expect(reply.error.message).toContain("http://127.0.0.1:9");
  });

  it("drives a call through the tool and the gateway methods", async () => {
    const r = load(goodConfig());
    loaded.push(r);
    await r.services[0]!.start();
    const tool = r.tools[0]!;
    const placed = (await tool.execute("t1", { action: "initiate_call", to: "+15550001234", message: "hi", mode: "conversation" })) as any;
    expect(placed.details).toMatchObject({ initiated: true, callId: expect.any(String) });
    const callId = placed.details.callId;
    const viaMethod = await callMethod(r, "voicecall.continue", { callId, message: "anything else?" });
    expect(viaMethod).toMatchObject({ ok: true, payload: { success: true, transcript: "yes" } });
    const got = (await tool.execute("t2", { action: "get_status", callId })) as any;
    expect(got.details.call.transcript.map((t: any) => t.text)).toContain("anything else?");
    const bad = (await tool.execute("t3", { action: "send_dtmf", callId })) as any;
    expect(bad.details.error).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "digits" }] });
    const badAction = (await tool.execute("t4", { action: "fax" })) as any;
    expect(badAction.details.error.issues[0].path).toBe("action");
    const badMethod = await callMethod(r, "voicecall.initiate", { to: "+15550001234" });
    expect(badMethod.ok).toBe(false);
    expect(badMethod.error).toMatchObject({ code: "INVALID_PARAMS", details: { issues: [{ path: "message" }] } });
  });

  it("a call placed from a run belongs to its agent and session; a run on a call gets the tool for that call only", async () => {
    const r = load(goodConfig());
    loaded.push(r);
    await r.services[0]!.start();
    const chat = r.toolFor({ agentId: "ops", sessionKey: "agent:ops:main" })!;
    const placed = (await chat.execute("t1", { action: "initiate_call", to: "+15550001234", message: "hi", mode: "conversation" })) as any;
    const callId = placed.details.callId as string;
    const status = (await chat.execute("t2", { action: "get_status", callId })) as any;
    expect(status.details.call).toMatchObject({ agentId: "ops", sessionKey: "agent:ops:main" });

    const onCall = r.toolFor({ agentId: "ops", toolBindings: { "voice-call": { callId } } })!;
    expect(onCall.description).toContain(callId);
    const actions = (onCall.parameters as any).properties.action.enum as string[];
    expect(actions.sort()).toEqual(["end_call", "get_status", "send_dtmf", "speak_to_user", "transfer_call"]);
    const placing = (await onCall.execute("t3", { action: "initiate_call", to: "+15550001234", message: "hi" })) as any;
    expect(placing.details.error.issues[0].path).toBe("action");
    const elsewhere = (await onCall.execute("t4", { action: "end_call", callId: "another-call" })) as any;
    expect(elsewhere.details.error).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "callId" }] });
    const mine = (await onCall.execute("t5", { action: "get_status" })) as any;
    expect(mine.details).toMatchObject({ found: true, call: { callId } });
    const ended = (await onCall.execute("t6", { action: "end_call" })) as any;
    expect(ended.details).toMatchObject({ success: true, state: "hangup-bot" });
    const view = (await chat.execute("t7", { action: "get_status", callId })) as any;
    expect(view.details.call.endReason).toBe("ended by the agent");
  });

  it("realtime.enabled names any of the gateway's providers; where the gateway offers none, the service starts and says calls use its voices", async () => {
    // google is a provider of the gateway, not of the standalone service: accepted here, chosen at start.
    const r = load({ ...goodConfig(), log: { level: "info" }, realtime: { enabled: true, provider: "google", providers: { google: { model: "gemini-live" } } } });
    loaded.push(r);
    expect(r.logs.filter((l) => l.startsWith("error"))).toEqual([]);
    await r.services[0]!.start();
    expect(r.logs.find((l) => l.includes("no realtime voice provider of the gateway can be used"))).toMatch(/^warn: .*this gateway offers no realtime voice providers to plugins/);
    const placed = (await r.tools[0]!.execute("t1", { action: "initiate_call", to: "+15550001234", message: "hi", mode: "notify" })) as any;
    expect(placed.details).toMatchObject({ initiated: true });
  });

  it("reports a bad config by key path in the log and on every call", async () => {
    const r = load({ serve: { port: "nope" }, provider: "fax" });
    loaded.push(r);
    expect(r.logs.join("\n")).toMatch(/serve\.port[\s\S]*provider|provider[\s\S]*serve\.port/);
    const reply = await callMethod(r, "voicecall.status", { callId: "x" });
    expect(reply.ok).toBe(false);
    expect(reply.error.code).toBe("INVALID_CONFIG");
    expect(reply.error.details.issues.map((i: any) => i.path).sort()).toEqual(["provider", "serve.port"]);
  });

  it("offers the gateway a config schema with safeParse and JSON Schema", () => {
    expect(entry.configSchema.safeParse({ provider: "mock" }).success).toBe(true);
    const bad = entry.configSchema.safeParse({ serve: { bind: 5 } });
    expect(bad.success).toBe(false);
    expect(bad.success ? [] : bad.error.issues[0]!.path).toEqual(["serve", "bind"]);
    expect((entry.configSchema.jsonSchema as any).properties.provider.enum).toContain("asterisk");
  });

  it("ships an openclaw.plugin.json in step with the schema (npm run manifest)", () => {
    const shipped = JSON.parse(readFileSync(join(import.meta.dirname, "..", "openclaw.plugin.json"), "utf8"));
    expect(shipped).toEqual(buildManifest());
  });

  it("declares its skill, its CLI alias and a doctor contract whose files ship in the package", async () => {
    const root = join(import.meta.dirname, "..");
    const manifest = buildManifest() as any;
    expect(manifest.commandAliases).toContainEqual({ name: "voicecall", kind: "cli" });
    expect(manifest.doctorContract).toEqual({ configRepair: true });
    const skill = readFileSync(join(root, manifest.skills[0], "voice-call", "SKILL.md"), "utf8");
    expect(skill).toMatch(/^---\nname: voice-call\n/);
    const files: string[] = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).files;
    expect(files).toEqual(expect.arrayContaining(["skills", "doctor-contract-api.js", "openclaw.plugin.json"]));
    // The file the gateway loads (it re-exports dist/, built by npm test's tsc step).
    const contract = await import(join(root, "doctor-contract-api.js"));
    const cfg = { plugins: { entries: { "voice-call": { enabled: true, config: { provider: "log", twilio: { from: "+15550001111" } } } } }, gateway: { port: 1 } };
    expect(contract.legacyConfigRules[0].match(cfg.plugins.entries["voice-call"].config)).toBe(true);
    const fixed = contract.normalizeCompatibilityConfig({ cfg });
    expect(fixed.config).toEqual({ plugins: { entries: { "voice-call": { enabled: true, config: { provider: "mock", fromNumber: "+15550001111", twilio: {} } } } }, gateway: { port: 1 } });
    expect(fixed.changes).toEqual(['plugins.entries.voice-call.config: provider "log" -> "mock"', "plugins.entries.voice-call.config: twilio.from -> fromNumber"]);
    expect(cfg.plugins.entries["voice-call"].config.provider).toBe("log"); // the input is not changed
    // A current config is left alone.
    expect(contract.legacyConfigRules[0].match({ provider: "mock" })).toBe(false);
    expect(contract.normalizeCompatibilityConfig({ cfg: fixed.config })).toEqual({ config: fixed.config, changes: [] });
  });
});
