import { describe, expect, it } from "vitest";
import { resolveConfig } from "../src/configure.js";
import { ariServers } from "../src/providers/asterisk/servers.js";
import { migrateLegacyConfig } from "../src/config/migrate.js";
import { VoiceCallError } from "../src/errors.js";
import { createSynthesizer, createTranscriber } from "../src/speech/index.js";

function issuesOf(raw: unknown, env = {}): Array<{ path: string; message: string }> {
  try {
    resolveConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(VoiceCallError);
    expect((err as VoiceCallError).code).toBe("INVALID_CONFIG");
    return (err as VoiceCallError).issues;
  }
  throw new Error("expected the config to be rejected");
}

describe("config", () => {
  it("fills the reference plugin's defaults", () => {
    const { config } = resolveConfig({});
    expect(config.provider).toBe("mock");
    expect(config.serve).toEqual({ port: 3334, bind: "127.0.0.1", path: "/voice/webhook" });
    expect(config.outbound).toEqual({ defaultMode: "notify", notifyHangupDelaySec: 3, amd: { enabled: false, onMachine: "continue", timeoutMs: 5000, beepWaitMs: 20_000, detector: "carrier" } });
    expect(config.inboundPolicy).toBe("disabled");
    expect(config.maxDurationSeconds).toBe(300);
    expect(config.streaming.streamPath).toBe("/voice/stream");
    expect(config.streaming.preStartTimeoutMs).toBeGreaterThan(0);
    expect(config.asterisk.dialTemplate).toBe("PJSIP/{to}");
    expect(config.asterisk.media.codec).toBe("ulaw");
  });

  it("reports every offending key path at once", () => {
    const issues = issuesOf({
      serve: { port: "3334", path: "voice" },
      fromNumber: "555 1234",
      outbound: { defaultMode: "shout" },
      maxDurationSeconds: -1,
      bogus: true,
    });
    const paths = issues.map((i) => i.path).sort();
    expect(paths).toEqual(["bogus", "fromNumber", "maxDurationSeconds", "outbound.defaultMode", "serve.path", "serve.port"]);
    expect(issues.find((i) => i.path === "fromNumber")?.message).toMatch(/E\.164/);
    expect(issues.find((i) => i.path === "bogus")?.message).toBe("unknown key");
  });

  it("names the error without a stack trace in its message", () => {
    try {
      resolveConfig({ serve: { port: 70000 } }, {}, "config /etc/voicecall.json");
      expect.unreachable();
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toContain("config /etc/voicecall.json");
      expect(message).toContain("serve.port");
      expect(message).not.toMatch(/\bat .*\.js:\d+/);
    }
  });

  it("requires a carrier's credentials only when it is used, naming the env var", () => {
    const issues = issuesOf({ provider: "twilio" });
    expect(issues.map((i) => i.path).sort()).toEqual(["fromNumber", "twilio.accountSid", "twilio.authToken"]);
    // Without publicUrl the config loads, and the start says what is missing.
    const { warnings } = resolveConfig({ provider: "twilio", fromNumber: "+15550001111", twilio: { accountSid: "AC1", authToken: "t" } });
    expect(warnings.join("\n")).toMatch(/publicUrl: not set; twilio cannot reach/);
    expect(issues.find((i) => i.path === "twilio.authToken")?.message).toContain("TWILIO_AUTH_TOKEN");
    // A routing rule that uses telnyx makes telnyx's keys required too.
    const routed = issuesOf({ routing: { rules: [{ prefix: "+49", provider: "telnyx" }] } });
    expect(routed.map((i) => i.path)).toContain("telnyx.apiKey");
  });

  it("takes secrets from the environment, file values first", () => {
    const { config } = resolveConfig(
      { provider: "twilio", fromNumber: "+15550001111", publicUrl: "https://voice.example.com/voice/webhook", twilio: { accountSid: "ACfile" } },
      { TWILIO_ACCOUNT_SID: "ACenv", TWILIO_AUTH_TOKEN: "tok", TELNYX_PUBLIC_KEY: "pk" },
    );
    expect(config.twilio).toEqual({ accountSid: "ACfile", authToken: "tok" });
    expect(config.telnyx?.publicKey).toBe("pk");
  });

  it("validates routing rules and numbers overrides", () => {
    const issues = issuesOf({
      routing: { rules: [{ provider: "mock" }, { pattern: "(", provider: "mock" }, { prefix: "+1", provider: "fax" }] },
      numbers: { "not-a-number": { inboundGreeting: "hi" } },
    });
    const paths = issues.map((i) => i.path);
    expect(paths).toContain("routing.rules[0]");
    expect(paths).toContain("routing.rules[1].pattern");
    expect(paths).toContain("routing.rules[2].provider");
    expect(paths.some((p) => p.startsWith("numbers"))).toBe(true);
  });

  it("needs allowFrom when the inbound policy is an allowlist", () => {
    expect(issuesOf({ inboundPolicy: "allowlist" }).map((i) => i.path)).toEqual(["allowFrom"]);
    expect(() => resolveConfig({ inboundPolicy: "allowlist", allowFrom: ["+15550001111"] })).not.toThrow();
    // On a PBX the callers are extensions; anything else is named.
    expect(() => resolveConfig({ inboundPolicy: "allowlist", allowFrom: ["6001"] })).not.toThrow();
    expect(issuesOf({ inboundPolicy: "allowlist", allowFrom: ["6001", "not a number"] }).map((i) => i.path)).toEqual(["allowFrom[1]"]);
  });
});

describe("the reference plugin's keys", () => {
  it("accepts twilio.region, tailscale.port, agentId, sessionScope main, realtime and per-number tts/agentId", () => {
    const { config, warnings } = resolveConfig({
      twilio: { accountSid: "AC1", authToken: "t", region: "ie1" },
      tailscale: { mode: "funnel", port: 8443 },
      agentId: "main",
      sessionScope: "main",
      realtime: { enabled: true, provider: "openai", consultPolicy: "substantive", providers: { openai: { voice: "cove" } }, agentContext: { enabled: true, maxChars: 6000 } },
      numbers: { "+15550009999": { agentId: "cards", responseTimeoutMs: 5000, tts: { providers: { openai: { speakerVoice: "alloy" } } } } },
    }, { OPENAI_API_KEY: "sk-test" });
    expect(config.twilio?.region).toBe("ie1");
    expect(config.tailscale.port).toBe(8443);
    expect(config.realtime.enabled).toBe(true);
    // Keys of the gateway's agents, standalone: said at start, naming each key, never a start failure.
    for (const key of ["agentId", "sessionScope", "numbers.+15550009999.agentId"]) {
      expect(warnings.some((w) => w.startsWith(`${key}:`)), key).toBe(true);
    }
    // A number's own voice is applied: nothing is said about it as a feature missing.
    expect(warnings.filter((w) => w.includes("not available yet") && w.startsWith("numbers.+15550009999.tts"))).toEqual([]);
  });

  it("says at start when a number's own voice names only engines that cannot run, where our engines speak", () => {
    const twilio = { provider: "twilio", fromNumber: "+15550001111", publicUrl: "https://voice.example.com/voice/webhook", twilio: { accountSid: "AC1", authToken: "t" } };
    const numbers = { "+15550009999": { tts: { providers: { openai: { speakerVoice: "alloy" } } } } };
    const notes = (raw: Record<string, unknown>, env = {}) => resolveConfig(raw, env).warnings.filter((w) => w.startsWith("numbers."));
    expect(notes({ ...twilio, numbers })).toEqual([
      "numbers.+15550009999.tts: openai cannot run as configured (a cloud engine needs its key, e.g. OPENAI_API_KEY), so this number speaks with flite",
    ]);
    // With the key it runs; with Twilio speaking itself, or only the Mock, our voices are not used at all.
    expect(notes({ ...twilio, numbers }, { OPENAI_API_KEY: "sk-test" })).toEqual([]);
    expect(notes({ ...twilio, numbers, streaming: { enabled: false } })).toEqual([]);
    expect(notes({ numbers })).toEqual([]);
  });

  it("checks a number's own voice like tts: an unknown engine or option is named under numbers.<n>.tts", () => {
    const paths = issuesOf({
      numbers: {
        "+15550008888": { tts: { provider: "nope" } },
        "+15550007777": { tts: { providers: { flite: { voice: "" }, festival: {} } } },
      },
    }).map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(["numbers.+15550008888.tts.provider", "numbers.+15550007777.tts.providers.flite.voice", "numbers.+15550007777.tts.providers.festival"]));
    expect(paths.filter((p) => p.startsWith("tts."))).toEqual([]);
  });

  it("realtime voice, when enabled: its provider's options checked (the key, or OPENAI_API_KEY), a known provider, the call's audio through us", () => {
    const issues = (raw: Record<string, unknown>) => issuesOf({ realtime: { enabled: true, ...raw } }).map((i) => `${i.path}: ${i.message}`);
    expect(issues({})).toEqual(["realtime.providers.openai.apiKey: required (or set OPENAI_API_KEY)"]);
    expect(issues({ provider: "gemini" })).toEqual(['realtime.provider: unknown realtime voice provider "gemini" (available: openai)']);
    expect(issues({ providers: { openai: { apiKey: "sk-x", baseUrl: "not a url" } } })).toEqual([expect.stringMatching(/^realtime\.providers\.openai\.baseUrl: /)]);
    expect(issuesOf({ realtime: { enabled: true, providers: { openai: { apiKey: "sk-x" } } }, streaming: { enabled: false } }).map((i) => i.path)).toEqual(["realtime.enabled"]);
    // Disabled, its options are not looked at.
    expect(() => resolveConfig({ realtime: { enabled: false, providers: { openai: { baseUrl: "not a url" } } } })).not.toThrow();
  });

  it("realtime.tools: named as a model calls them, never a built-in's name or one name twice, the url a URL; the token a secret (a reference resolves)", () => {
    const base = { enabled: true, providers: { openai: { apiKey: "sk-x" } } };
    const tools = (list: unknown[], env = {}) => issuesOf({ realtime: { ...base, tools: list } }, env).map((i) => `${i.path}: ${i.message}`);
    expect(tools([{ name: "openclaw_end_call" }])).toEqual([expect.stringMatching(/^realtime\.tools\[0\]\.name: .*built-in/)]);
    expect(tools([{ name: "has space" }, { name: "ok", url: "nowhere" }])).toEqual([expect.stringMatching(/^realtime\.tools\[0\]\.name: /), expect.stringMatching(/^realtime\.tools\[1\]\.url: /)]);
    expect(tools([{ name: "twice" }, { name: "twice" }])).toEqual(["realtime.tools: two tools with one name"]);
    const { config } = resolveConfig({ realtime: { ...base, tools: [{ name: "check_booking", url: "http://127.0.0.1:9/booking", token: "${BOOKING_TOKEN}" }] } }, { BOOKING_TOKEN: "tok-1" });
    expect(config.realtime.tools).toEqual([{ type: "function", name: "check_booking", description: "", parameters: { type: "object", properties: {} }, url: "http://127.0.0.1:9/booking", token: "tok-1", timeoutMs: 10_000 }]);
  });

  it("still checks those keys' values", () => {
    const paths = issuesOf({
      twilio: { region: "eu9" },
      tailscale: { mode: "funnel", port: 444 },
      realtime: { enabled: "yes", consultPolicy: "sometimes" },
      numbers: { "+15550009999": { tts: { voice: "x" } } },
    }).map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(["twilio.region", "tailscale.port", "realtime.enabled", "realtime.consultPolicy", "numbers.+15550009999.tts.voice"]));
  });

  it('takes inboundPolicy "pairing" as a policy of its own (no rewrite), with allowFrom allowed to start empty', () => {
    const { config, warnings } = resolveConfig({ inboundPolicy: "pairing" });
    expect(config.inboundPolicy).toBe("pairing");
    expect(warnings).toEqual([]);
  });

  it("takes the reference spelling of speech voices and TWILIO_FROM_NUMBER", () => {
    const { config } = resolveConfig(
      { tts: { provider: "openai", providers: { openai: { apiKey: "sk-1", speakerVoice: "coral" }, elevenlabs: { speakerVoiceId: "v1", modelId: "m" } } } },
      { TWILIO_FROM_NUMBER: "+15550004444" },
    );
    expect(config.fromNumber).toBe("+15550004444");
    const openai = createSynthesizer(config);
    expect((openai as unknown as { inner: { options: { voice: string } } }).inner.options.voice).toBe("coral");
  });
});

describe("caller id", () => {
  it("is an extension or name for the PBX and mock carriers, E.164 for cloud carriers", () => {
    expect(resolveConfig({ provider: "asterisk", fromNumber: "6001", asterisk: { ari: { password: "p" } } }).config.fromNumber).toBe("6001");
    const issues = issuesOf({ provider: "twilio", fromNumber: "6001", tailscale: { mode: "funnel" }, twilio: { accountSid: "AC1", authToken: "t" } });
    expect(issues).toEqual([{ path: "fromNumber", message: "must be an E.164 number such as +15550001234 when provider twilio is used" }]);
  });
});

describe("legacy keys", () => {
  it("migrates provider log, twilio.from and flat OpenAI streaming keys", () => {
    const { value, changes } = migrateLegacyConfig({
      provider: "log",
      twilio: { from: "+15550002222", accountSid: "AC1" },
      streaming: { enabled: true, sttProvider: "openai-realtime", openaiApiKey: "sk-x", sttModel: "gpt-4o-transcribe", vadThreshold: 0.4 },
    });
    expect(value).toEqual({
      provider: "mock",
      fromNumber: "+15550002222",
      twilio: { accountSid: "AC1" },
      streaming: { enabled: true, provider: "openai", providers: { openai: { apiKey: "sk-x", model: "gpt-4o-transcribe", vadThreshold: 0.4 } } },
    });
    expect(changes).toHaveLength(6);
  });

  it("applies migrations at start with a warning per key", () => {
    const { config, warnings } = resolveConfig({ provider: "log" });
    expect(config.provider).toBe("mock");
    expect(warnings).toEqual(['legacy config key: provider "log" -> "mock" (run "voicecall doctor --fix")']);
  });

  it("removes realtime.agentContext.includeSystemPrompt", () => {
    const { value, changes } = migrateLegacyConfig({ realtime: { agentContext: { enabled: true, includeSystemPrompt: true } } });
    expect(value).toEqual({ realtime: { agentContext: { enabled: true } } });
    expect(changes).toEqual(["realtime.agentContext.includeSystemPrompt removed (realtime context uses the agent's prompt)"]);
  });

  it("leaves a current config untouched", () => {
    const current = { provider: "mock", streaming: { provider: "openai", providers: { openai: { model: "m" } } } };
    expect(migrateLegacyConfig(current)).toEqual({ value: current, changes: [] });
  });
});

describe("speech provider selection", () => {
  it("names the speech option at fault, with the rest of the config's problems", () => {
    const issues = issuesOf({ streaming: { provider: "openai", providers: { openai: { model: "" } } }, tts: { provider: "nope" }, serve: { port: -1 } });
    const paths = issues.map((i) => i.path);
    expect(paths).toContain("serve.port");
    expect(paths).toContain("streaming.providers.openai.apiKey");
    expect(paths).toContain("streaming.providers.openai.model");
    expect(paths).toContain("tts.provider");
    expect(issues.find((i) => i.path === "streaming.providers.openai.apiKey")!.message).toMatch(/OPENAI_API_KEY/);
  });

  it("is offline without keys and cloud once a key is set, unless chosen by id", () => {
    const offline = resolveConfig({}).config;
    expect(createTranscriber(offline).id).toBe("pocketsphinx");
    expect(createSynthesizer(offline).id).toBe("flite");
    const cloud = resolveConfig({}, { OPENAI_API_KEY: "sk-1", ELEVENLABS_API_KEY: "el-1" }).config;
    expect(createTranscriber(cloud).id).toBe("openai");
    expect(createSynthesizer(cloud).id).toBe("openai");
    const chosen = resolveConfig({ streaming: { provider: "deepgram" }, tts: { provider: "elevenlabs" } }, { DEEPGRAM_API_KEY: "dg-1", ELEVENLABS_API_KEY: "el-1", OPENAI_API_KEY: "sk-1" }).config;
    expect(createTranscriber(chosen).id).toBe("deepgram");
    expect(createSynthesizer(chosen).id).toBe("elevenlabs");
  });
});

describe("Asterisk media", () => {
  it("refuses slin16 over RTP, saying why and what works", () => {
    const issues = issuesOf({ provider: "asterisk", asterisk: { ari: { password: "x" }, media: { codec: "slin16" } } });
    expect(issues).toEqual([{ path: "asterisk.media.codec", message: expect.stringMatching(/transport "websocket".*ignores slin16/) }]);
    expect(resolveConfig({ provider: "asterisk", asterisk: { ari: { password: "x" }, media: { codec: "slin16", transport: "websocket" } } }).config.asterisk.media.transport).toBe("websocket");
  });
});

describe("several Asterisks (asterisk.ari as a list)", () => {
  it("names each (ast1, ast2, … where none is given), wants each one's password, and refuses two with one name", () => {
    const two = resolveConfig({ provider: "asterisk", asterisk: { ari: [{ url: "http://10.0.0.11:8088", password: "a" }, { name: "east", url: "http://10.0.0.12:8088", password: "b" }] } }).config;
    expect(ariServers(two).map((s) => [s.name, s.url, s.username, s.app])).toEqual([
      ["ast1", "http://10.0.0.11:8088", "voicecall", "voicecall"],
      ["east", "http://10.0.0.12:8088", "voicecall", "voicecall"],
    ]);
    expect(issuesOf({ provider: "asterisk", asterisk: { ari: [{ password: "a" }, { url: "http://10.0.0.12:8088" }] } })).toEqual([{ path: "asterisk.ari.1.password", message: "required when provider asterisk is used" }]);
    expect(issuesOf({ provider: "asterisk", asterisk: { ari: [{ name: "x", password: "a" }, { name: "x", password: "b" }] } })).toEqual([{ path: "asterisk.ari", message: "each Asterisk needs its own name" }]);
    // A password from a reference, in any entry; never printed.
    const ref = resolveConfig({ provider: "asterisk", asterisk: { ari: [{ password: "a" }, { password: "$SECOND_ARI" }] } }, { SECOND_ARI: "s3cond" }).config;
    expect(ariServers(ref)[1]!.password).toBe("s3cond");
  });
});

describe("secrets given as references (the gateway's SecretRef forms)", () => {
  const twilio = (authToken: unknown) => ({ provider: "twilio", fromNumber: "+15550009999", publicUrl: "https://voice.example.com/voice/webhook", twilio: { accountSid: "AC123", authToken } });

  it("resolves env SecretRefs and ${NAME} / $NAME strings from the environment, at every secret path", () => {
    const env = { TW_TOKEN: "tw-secret", OA_KEY: "oa-secret", ARI_PW: "ari-secret" };
    const { config } = resolveConfig(
      {
        ...twilio({ source: "env", provider: "default", id: "TW_TOKEN" }),
        tts: { provider: "openai", providers: { openai: { apiKey: "${OA_KEY}" } } },
        asterisk: { ari: { password: "$ARI_PW" } },
        routing: { rules: [{ prefix: "1", provider: "asterisk" }] },
        control: { token: { source: "env", provider: "default", id: "TW_TOKEN" } },
      },
      { ...env, TW_TOKEN: "a-token-of-sixteen-chars" },
    );
    expect(config.twilio?.authToken).toBe("a-token-of-sixteen-chars");
    expect(config.control.token).toBe("a-token-of-sixteen-chars");
    expect(config.tts.providers.openai?.apiKey).toBe("oa-secret");
    expect(ariServers(config)[0]!.password).toBe("ari-secret");
  });

  it("names the key of a reference it cannot resolve, and never prints a value", () => {
    const issues = issuesOf(twilio({ source: "env", provider: "default", id: "NOT_SET_ANYWHERE" }), { OTHER: "s3cr3t-value" });
    expect(issues).toContainEqual({ path: "twilio.authToken", message: "refers to the environment variable NOT_SET_ANYWHERE, which is not set" });
    const file = issuesOf(twilio({ source: "file", provider: "filemain", id: "/twilio/token" }));
    expect(file).toContainEqual({ path: "twilio.authToken", message: expect.stringContaining("resolved by the OpenClaw gateway") });
    expect(JSON.stringify(issuesOf(twilio({ source: "vault", provider: "x", id: "y" })))).not.toContain("s3cr3t");
  });

  it("lets the gateway check a source config with references (it resolves them itself), and declares every secret path in the manifest", async () => {
    const { configSchema } = await import("../src/gateway/plugin.js");
    const { buildManifest } = await import("../src/gateway/manifest.js");
    expect(configSchema.safeParse(twilio({ source: "file", provider: "filemain", id: "/twilio/token" })).success).toBe(true);
    expect(configSchema.safeParse(twilio({ source: "nope" })).success).toBe(false);
    const manifest = buildManifest() as { configContracts: { secretInputs: { paths: Array<{ path: string }> } }; configSchema: any };
    const paths = manifest.configContracts.secretInputs.paths.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(["twilio.authToken", "plivo.authToken", "asterisk.ari.password", "streaming.providers.*.apiKey", "tts.providers.*.apiKey", "realtime.providers.*.apiKey"]));
    // The JSON Schema the gateway validates with takes a SecretRef where a secret goes.
    const authToken = manifest.configSchema.properties.twilio.properties.authToken;
    expect(JSON.stringify(authToken)).toContain('"source"');
  });
});
