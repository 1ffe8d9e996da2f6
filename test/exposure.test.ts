/**
 * How carriers reach the service: Tailscale routes through the CLI (a
 * stand-in executable records what it was asked), ngrok through its package,
 * the public-address rule `voicecall setup` applies, and setup's findings
 * against a local Twilio API.
 */
import { afterEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/configure.js";
import { createLogger } from "../src/log.js";
import { exposurePlan, type NgrokForward } from "../src/server/exposure.js";
import { checkPublicUrl, nonPublicRange } from "../src/server/public-address.js";
import { startService, type RunningService } from "../src/server/service.js";
import { runSetup } from "../src/setup.js";
import { FakeTailscale } from "./fakes/tailscale.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, callSid } from "./fakes/twilio.js";
import { errorOf, freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const twilioKeys = { provider: "twilio", fromNumber: "+15550009999", twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN } };

const running: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.close();
});

async function twilioService(raw: Record<string, unknown>, deps: Parameters<typeof startService>[2] = {}): Promise<{ service: RunningService; fake: FakeTwilio; port: number }> {
  const fake = await FakeTwilio.start();
  running.push(fake);
  const port = await freePort();
  const service = await startService(makeConfig({ ...twilioKeys, serve: { port, bind: "127.0.0.1" }, ...raw }), createLogger("silent"), { apiBaseUrls: { twilio: fake.baseUrl }, ...deps });
  running.push(service);
  return { service, fake, port };
}

/** A call's refusal once the first attempt to open the route has failed (before that it says "not up yet"). */
async function refusalOnceTried(service: RunningService) {
  for (let i = 0; ; i += 1) {
    const refused = await errorOf(service.runtime.manager.initiateCall({ to: "+15550001234", message: "hi" }));
    if (!refused.message.endsWith("not up yet") || i === 100) return refused;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("exposure plan from the config", () => {
  const plan = (raw: Record<string, unknown>) => exposurePlan(resolveConfig(raw, {}).config);

  it("publicUrl wins; tunnel.provider and tailscale.mode name the same routes", () => {
    expect(plan({ publicUrl: "https://voice.example.com/voice/webhook", tunnel: { provider: "ngrok" } })).toBeUndefined();
    expect(plan({ tunnel: { provider: "tailscale-funnel" }, tailscale: { port: 8443 } })).toEqual({ kind: "tailscale", mode: "funnel", httpsPort: 8443, path: "/voice/webhook" });
    expect(plan({ tailscale: { mode: "serve" } })).toEqual({ kind: "tailscale", mode: "serve", httpsPort: 443, path: "/voice/webhook" });
    expect(plan({ tunnel: { provider: "ngrok", ngrokDomain: "voice.ngrok.app" } }, )).toMatchObject({ kind: "ngrok", domain: "voice.ngrok.app" });
    expect(plan({})).toBeUndefined();
  });

  it("refuses a tunnel and a Tailscale mode that disagree, naming the key", () => {
    const err = (() => {
      try {
        resolveConfig({ tunnel: { provider: "ngrok" }, tailscale: { mode: "funnel" } }, {});
      } catch (e) {
        return e as { issues: Array<{ path: string }> };
      }
    })();
    expect(err?.issues.map((i) => i.path)).toEqual(["tailscale.mode"]);
  });

  it("warns that publicUrl overrides a tunnel, and that the ngrok signature bypass does nothing", () => {
    const { warnings } = resolveConfig({ publicUrl: "https://v.example.com/voice/webhook", tunnel: { provider: "ngrok", allowNgrokFreeTierLoopbackBypass: true } }, {});
    expect(warnings.join("\n")).toMatch(/publicUrl is set, so tunnel\.provider/);
    expect(warnings.join("\n")).toMatch(/signatures are always verified/);
  });
});

describe("Tailscale Funnel through the CLI", () => {
  it("routes the webhook and stream at start, signs webhooks for the public URL, and removes the routes at stop", async () => {
    const tailscale = new FakeTailscale(tempDir());
    const { service, fake, port } = await twilioService({ tailscale: { mode: "funnel", port: 8443 } }, { exposure: { tailscaleBin: tailscale.bin } });
    const url = await service.exposure!.ready();
    expect(url).toBe("https://box.tail1234.ts.net:8443/voice/webhook");
    expect(service.runtime.endpoints.stream()).toBe("wss://box.tail1234.ts.net:8443/voice/stream");
    const routes = tailscale.calls().filter((c) => c[0] === "funnel");
    expect(routes).toEqual([
      ["funnel", "--bg", "--yes", "--https=8443", "--set-path=/voice/webhook", `http://127.0.0.1:${port}/voice/webhook`],
      ["funnel", "--bg", "--yes", "--https=8443", "--set-path=/voice/stream", `http://127.0.0.1:${port}/voice/stream`],
    ]);

    // Twilio calls the Funnel URL; the request arrives on the local port and is checked against the public URL.
    const { callId } = await service.runtime.manager.initiateCall({ to: "+15550001234", message: "hi" });
    const created = fake.made("POST", /Calls\.json$/).at(-1)!;
    expect(created.form.Url).toBe(`${url}?type=voice`);
    const sid = service.runtime.manager.getCall(callId)!.providerCallId!;
    const local = `http://127.0.0.1:${port}/voice/webhook?type=voice`;
    const signedForPublic = await fake.webhook(local, fake.voiceParams(sid, "outbound-api"), { signUrl: `${url}?type=voice` });
    expect(signedForPublic.status).toBe(200);
    expect(signedForPublic.body).toContain("wss://box.tail1234.ts.net:8443/voice/stream");
    const signedForLocal = await fake.webhook(local, fake.voiceParams(callSid(999), "outbound-api"));
    expect(signedForLocal.status).toBe(401);

    await service.close();
    running.splice(running.indexOf(service), 1);
    const removed = tailscale.calls().filter((c) => c.at(-1) === "off");
    expect(removed).toEqual([
      ["funnel", "--https=8443", "--set-path=/voice/webhook", "off"],
      ["funnel", "--https=8443", "--set-path=/voice/stream", "off"],
    ]);
  }, 30_000);

  it("while tailscale is logged out, calls fail saying so; once it connects the route comes up on retry", async () => {
    const tailscale = new FakeTailscale(tempDir(), { backendState: "NeedsLogin" });
    const { service } = await twilioService({ tunnel: { provider: "tailscale-funnel" } }, { exposure: { tailscaleBin: tailscale.bin } });
    const refused = await refusalOnceTried(service);
    expect(refused.message).toMatch(/tailscale funnel on port 443 is not up: tailscale is not connected \(state NeedsLogin\): run "tailscale up"/);
    tailscale.set({ backendState: "Running" });
    expect(await service.exposure!.ready()).toBe("https://box.tail1234.ts.net/voice/webhook");
    await service.runtime.manager.initiateCall({ to: "+15550001234", message: "hi" });
  }, 30_000);

  it("a Funnel the tailnet does not allow is reported with the CLI's own words", async () => {
    const tailscale = new FakeTailscale(tempDir(), { refuse: "Funnel not available; HTTPS must be enabled." });
    const { service } = await twilioService({ tailscale: { mode: "funnel" } }, { exposure: { tailscaleBin: tailscale.bin } });
    const refused = await refusalOnceTried(service);
    expect(refused.message).toContain("tailscale funnel failed: Funnel not available; HTTPS must be enabled.");
  }, 30_000);
});

describe("ngrok through its package", () => {
  it("uses the tunnel's URL for webhooks and closes the tunnel at stop", async () => {
    let closed = false;
    const asked: unknown[] = [];
    const forward: NgrokForward = async (options) => {
      asked.push(options);
      return { url: () => "https://a1b2.ngrok.app", close: async () => void (closed = true) };
    };
    const { service, fake, port } = await twilioService({ tunnel: { provider: "ngrok", ngrokAuthToken: "ngrok-token-xyz" } }, { exposure: { ngrokForward: forward } });
    expect(await service.exposure!.ready()).toBe("https://a1b2.ngrok.app/voice/webhook");
    expect(asked).toEqual([{ addr: `http://127.0.0.1:${port}`, authtoken: "ngrok-token-xyz", domain: undefined }]);
    await service.runtime.manager.initiateCall({ to: "+15550001234", message: "hi" });
    expect(fake.made("POST", /Calls\.json$/).at(-1)!.form.StatusCallback).toBe("https://a1b2.ngrok.app/voice/webhook?type=status");
    await service.close();
    running.splice(running.indexOf(service), 1);
    expect(closed).toBe(true);
  });

  it("the real package failing to connect is a clear reason on calls, never showing the authtoken", async () => {
    const lines: string[] = [];
    const fake = await FakeTwilio.start();
    running.push(fake);
    const port = await freePort();
    const logger = createLogger("info", { write: (l: string) => void lines.push(l) });
    const service = await startService(
      makeConfig({ ...twilioKeys, serve: { port, bind: "127.0.0.1" }, tunnel: { provider: "ngrok", ngrokAuthToken: "secret-ngrok-token-123" } }),
      logger,
      { apiBaseUrls: { twilio: fake.baseUrl }, exposure: { ngrokForward: async (o) => (await import("@ngrok/ngrok")).forward({ ...o, server_addr: "127.0.0.1:1" } as never) } },
    );
    running.push(service);
    await waitFor(() => lines.some((l) => l.includes("cannot open the ngrok tunnel")), "the failure logged", 10_000);
    const refused = await errorOf(service.runtime.manager.initiateCall({ to: "+15550001234", message: "hi" }));
    expect(refused.message).toMatch(/ngrok tunnel is not up: ngrok could not open a tunnel: /);
    expect(refused.message + lines.join("")).not.toContain("secret-ngrok-token-123");
  }, 20_000);

  it("without an authtoken the reason names the key", async () => {
    const { service } = await twilioService({ tunnel: { provider: "ngrok" } }, { exposure: { ngrokForward: async () => { throw new Error("not reached"); } } });
    await new Promise((r) => setTimeout(r, 50));
    const refused = await errorOf(service.runtime.manager.initiateCall({ to: "+15550001234", message: "hi" }));
    expect(refused.message).toContain("tunnel.ngrokAuthToken is not set (or NGROK_AUTHTOKEN)");
  });
});

describe("public addresses", () => {
  it("names the range of every address carriers cannot reach", () => {
    expect(nonPublicRange("127.0.0.1")).toBe("loopback 127.0.0.0/8");
    expect(nonPublicRange("10.20.30.40")).toBe("private 10.0.0.0/8");
    expect(nonPublicRange("172.31.255.1")).toBe("private 172.16.0.0/12");
    expect(nonPublicRange("172.32.0.1")).toBeUndefined();
    expect(nonPublicRange("192.168.1.1")).toBe("private 192.168.0.0/16");
    expect(nonPublicRange("169.254.169.254")).toBe("link-local 169.254.0.0/16");
    expect(nonPublicRange("100.101.102.103")).toBe("carrier-grade NAT / tailnet 100.64.0.0/10");
    expect(nonPublicRange("0.0.0.0")).toBe("unspecified 0.0.0.0/8");
    expect(nonPublicRange("::1")).toBe("loopback ::1/128");
    expect(nonPublicRange("::ffff:127.0.0.1")).toBe("loopback 127.0.0.0/8");
    expect(nonPublicRange("fd00::1")).toBe("unique-local fc00::/7");
    expect(nonPublicRange("fe80::1")).toBe("link-local fe80::/10");
    expect(nonPublicRange("8.8.8.8")).toBeUndefined();
    expect(nonPublicRange("2606:4700::1111")).toBeUndefined();
  });

  it("refuses a host when any of its addresses is private, and one that does not resolve", async () => {
    const resolve = async (host: string) => ({ "voice.example.com": ["203.0.113.7", "10.0.0.5"], "ok.example.com": ["8.8.4.4"] })[host] ?? Promise.reject(Object.assign(new Error("nx"), { code: "ENOTFOUND" }));
    expect(await checkPublicUrl("https://voice.example.com/voice/webhook", resolve)).toEqual({ ok: false, reason: "voice.example.com resolves to 10.0.0.5 (private 10.0.0.0/8): carriers cannot reach it" });
    expect(await checkPublicUrl("https://ok.example.com/voice/webhook", resolve)).toEqual({ ok: true, addresses: ["8.8.4.4"] });
    expect(await checkPublicUrl("https://nowhere.invalid/x", resolve)).toEqual({ ok: false, reason: "nowhere.invalid does not resolve (ENOTFOUND)" });
    expect(await checkPublicUrl("https://[::1]:8443/x", resolve)).toMatchObject({ ok: false, reason: expect.stringContaining("loopback") });
    // The machine's own resolver: localhost is loopback.
    expect(await checkPublicUrl("https://localhost/voice/webhook")).toMatchObject({ ok: false, reason: expect.stringMatching(/^localhost resolves to .* \(loopback/) });
  });
});

describe("voicecall setup's findings", () => {
  const resolve = async () => ["203.0.113.7"];

  it("a complete Twilio config: credentials, caller id and public URL check out", async () => {
    const fake = await FakeTwilio.start();
    running.push(fake);
    const config = makeConfig({ ...twilioKeys, publicUrl: "https://voice.example.com/voice/webhook" });
    const report = await runSetup(config, [], { apiBaseUrls: { twilio: fake.baseUrl }, resolve });
    expect(report.findings.filter((f) => f.status !== "warn")).toEqual([
      { check: "config", status: "ok", detail: "config is valid (provider twilio)" },
      { check: "twilio-account", status: "ok", detail: `credentials accepted; account ${ACCOUNT_SID} is active (Full)` },
      { check: "twilio-from-number", status: "ok", detail: "fromNumber +15550009999 is a number on this account" },
      { check: "webhook-exposure", status: "ok", detail: "publicUrl https://voice.example.com/voice/webhook resolves to public addresses (203.0.113.7)" },
      // Which engines this config's calls would speak and listen with, built to prove they run here.
      { check: "speech", status: "ok", detail: "speech out: flite, the offline default (no cloud engine has its key); speech in: pocketsphinx, the offline default (no cloud engine has its key)" },
    ]);
    expect(report.ok).toBe(true);
    expect(report.findings.find((f) => f.check === "service")).toMatchObject({ status: "warn" });
  });

  it("says what to fix: refused credentials (token never shown), a caller id the account lacks, a loopback or http publicUrl", async () => {
    const fake = await FakeTwilio.start();
    running.push(fake);
    const wrong = makeConfig({ ...twilioKeys, twilio: { accountSid: ACCOUNT_SID, authToken: "wrong-token-abcdef" }, publicUrl: "https://127.0.0.1/voice/webhook" });
    const bad = await runSetup(wrong, [], { apiBaseUrls: { twilio: fake.baseUrl }, resolve });
    expect(bad.ok).toBe(false);
    const byCheck = Object.fromEntries(bad.findings.map((f) => [f.check, f]));
    expect(byCheck["twilio-account"]).toMatchObject({ status: "fail", detail: "Twilio refused the credentials (HTTP 401)", fix: expect.stringContaining("twilio.authToken") });
    expect(byCheck["webhook-exposure"]).toMatchObject({ status: "fail", detail: expect.stringContaining("127.0.0.1 (loopback 127.0.0.0/8)") });
    expect(JSON.stringify(bad)).not.toContain("wrong-token-abcdef");

    fake.owned = [];
    fake.account.type = "Trial";
    const notOurs = await runSetup(makeConfig({ ...twilioKeys, publicUrl: "http://voice.example.com/voice/webhook" }), [], { apiBaseUrls: { twilio: fake.baseUrl }, resolve });
    const found = Object.fromEntries(notOurs.findings.map((f) => [`${f.check}:${f.status}`, f.detail]));
    expect(found["twilio-from-number:fail"]).toBe("fromNumber +15550009999 is neither a number on this account nor a verified caller id");
    expect(found["twilio-account:warn"]).toMatch(/trial accounts call only verified numbers/);
    expect(found["webhook-exposure:fail"]).toMatch(/is not https/);
    fake.verified = ["+15550009999"];
    const verified = await runSetup(makeConfig({ ...twilioKeys, publicUrl: "https://voice.example.com/voice/webhook" }), [], { apiBaseUrls: { twilio: fake.baseUrl }, resolve });
    expect(verified.findings.find((f) => f.check === "twilio-from-number")).toMatchObject({ status: "ok", detail: "fromNumber +15550009999 is a verified caller id" });
  });

  it("exposure through Tailscale: Serve is refused (tailnet only), Funnel needs a logged-in tailscale; no route means no exposure", async () => {
    const fake = await FakeTwilio.start();
    running.push(fake);
    const tailscale = new FakeTailscale(tempDir());
    const finding = async (raw: Record<string, unknown>) =>
      (await runSetup(makeConfig({ ...twilioKeys, ...raw }), [], { apiBaseUrls: { twilio: fake.baseUrl }, tailscaleBin: tailscale.bin })).findings.find((f) => f.check === "webhook-exposure");
    expect(await finding({ tailscale: { mode: "serve" } })).toMatchObject({ status: "fail", fix: expect.stringContaining('mode: "funnel"') });
    expect(await finding({ tailscale: { mode: "funnel", port: 10000 } })).toMatchObject({ status: "ok", detail: expect.stringContaining("https://box.tail1234.ts.net:10000/voice/webhook") });
    tailscale.set({ backendState: "Stopped" });
    expect(await finding({ tailscale: { mode: "funnel" } })).toMatchObject({ status: "fail", detail: expect.stringContaining("tailscale is not connected") });
    expect(await finding({})).toMatchObject({ status: "fail", detail: "twilio cannot reach this service: no publicUrl and no tunnel" });
    // The routes were only looked at, never set.
    expect(tailscale.calls().every((c) => c[0] === "status")).toBe(true);
  });
});
