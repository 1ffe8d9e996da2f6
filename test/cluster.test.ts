/**
 * Two instances on one PostgreSQL store and one lab Asterisk: a real
 * PostgreSQL and the chroot lab (each skipped with the reason where it cannot
 * run). Instance A is the built service in its own process (so it can be
 * killed with -9); instance B runs here. A lab phone's call is handed to A;
 * A is killed mid-call; B takes the call over within the lease, the phone
 * hears what B says next, and the transcript has every line once; A started
 * again leaves B's call alone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Lab, labUnavailableReason } from "../src/lab/lab.js";
import { PhoneAudio } from "../src/lab/phone-audio.js";
import { LocalPostgres, postgresUnavailableReason } from "../src/lab/postgres.js";
import { callerScenario, runSipp } from "../src/lab/sipp.js";
import { createLogger } from "../src/log.js";
import type { AsteriskProvider } from "../src/providers/asterisk/provider.js";
import type { VoiceCallRuntime } from "../src/runtime.js";
import { VoiceCallClient } from "../src/server/client.js";
import { invoke } from "../src/server/methods.js";
import { startService, type RunningService } from "../src/server/service.js";
import { transcribePcm } from "../src/speech/pocketsphinx.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const CLI = join(import.meta.dirname, "..", "dist", "cli.js");
const unavailable = postgresUnavailableReason() ?? labUnavailableReason("chroot");
if (unavailable) console.warn(`skipping the two-instance tests: ${unavailable}`);
const LEASE_MS = 3000;
/** How long a stopping instance lets its calls go on before it hands them over. */
const DRAIN_MS = 2000;

/** A UDP port free now, in the range the PBX tests' phones do not use. */
async function udpPort(): Promise<number> {
  for (;;) {
    const port = 52_000 + Math.floor(Math.random() * 3000) * 2;
    const socket = createSocket("udp4");
    const free = await new Promise<boolean>((resolve) => {
      socket.once("error", () => resolve(false));
      socket.bind(port, "127.0.0.1", () => resolve(true));
    });
    await new Promise<void>((r) => socket.close(() => r()));
    if (free) return port;
  }
}

describe.skipIf(unavailable !== undefined)("two instances on one PostgreSQL store and one lab Asterisk", () => {
  let pg: LocalPostgres;
  let lab: Lab;
  let url: string;
  let service: RunningService;
  let b: VoiceCallRuntime;
  const TOKEN = "cluster-test-token-0123";
  const children: ChildProcess[] = [];

  const settings = (nodeId: string, dir: string) => ({
    provider: "asterisk",
    inboundPolicy: "open",
    inboundGreeting: "Hello from instance a",
    store: { url, dir },
    cluster: { nodeId, leaseMs: LEASE_MS, drainMs: DRAIN_MS },
    log: { level: "info" },
    asterisk: {
      ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: lab.info.ariApp },
      dialTemplate: "PJSIP/{to}@lab-uas",
    },
  });

  /** Instance A: the built service in a process of its own. */
  const startA = async (): Promise<{ child: ChildProcess; log: () => string; url: string }> => {
    const dir = tempDir();
    const config = join(dir, "voicecall.json");
    writeFileSync(config, JSON.stringify({ ...settings("a", join(dir, "files")), serve: { port: await freePort() }, control: { token: TOKEN } }));
    const child = spawn(process.execPath, [CLI, "--config", config, "serve"], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let log = "";
    child.stdout!.on("data", (d) => (log += d));
    child.stderr!.on("data", (d) => (log += d));
    await waitFor(() => log.includes("voicecall: try ") || child.exitCode !== null, "instance a to start", 30_000);
    if (child.exitCode !== null) throw new Error(`instance a did not start: ${log}`);
    return { child, log: () => log, url: /serving on (http:\/\/\S+)/.exec(log)![1]! };
  };

  const rows = (sql: string) => pg.sql("voicecall", sql);

  /** A lab phone dials `extension`; resolves once its call is on instance A and greeted. */
  const phoneCallsA = async (a: { log: () => string }, extension: string) => {
    // Ports no other test file's phones use (they may run meanwhile on other lab slots).
    const [earPort, sipPort, sippMedia] = [await udpPort(), await udpPort(), await udpPort()];
    const ear = await PhoneAudio.open(earPort);
    const phone = runSipp(lab, `cluster-phone-${extension}`, callerScenario({ extension, holdMs: "wait", mediaPort: earPort }), ["-s", extension, "-p", String(sipPort), "-mp", String(sippMedia), "-i", "127.0.0.1", `127.0.0.1:${lab.info.sipPort}`], 60);
    const [callId] = await waitFor(async () => {
      const live = await rows(`SELECT call_id FROM voicecall_calls WHERE live AND node_id = 'a' AND state = 'listening' AND record->>'to' = '${extension}'`);
      return live.length > 0 && live;
    }, "the phone's call on instance a, greeted", 20_000).catch((err: Error) => {
      throw new Error(`${err.message}; instance a said:\n${a.log().slice(-3000)}`);
    });
    return { ear, phone, callId: callId! };
  };

  beforeAll(async () => {
    pg = await LocalPostgres.start({ port: await freePort(), durable: false });
    url = await pg.createDatabase("voicecall");
    lab = await Lab.start({ backend: "chroot", slot: 0, onProgress: (l) => console.log(`[lab chroot] ${l}`), waitForLabMs: 600_000 });
  }, 900_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await service?.close();
    await lab?.stop();
    await pg?.stop();
  });

  it("A answers a lab phone and B answers for it (status, speak); A killed with -9 mid-call, B takes the call over, the phone hears B, every line is kept once; A restarted leaves it alone and hands B its end", async () => {
    let a = await startA();
    // A is the cluster's first by name: it holds the PBX's entry and hands callers out (to itself while B has no lease).
    await waitFor(() => a.log().includes("takes the PBX's new inbound calls"), "instance a to take the entry", 10_000);
    const { ear, phone, callId } = await phoneCallsA(a, "700");

    service = await startService(makeConfig({ ...settings("b", tempDir()), serve: { port: 0 }, control: { token: TOKEN }, log: { level: "silent" } }), createLogger("silent"));
    b = service.runtime;
    // B answers for A's call: its methods go to A (its address and lease in the store).
    await waitFor(async () => ((await invoke(b, "voicecall.status", { callId })) as { found: boolean }).found, "b to answer for a's call", 5000);
    expect(await invoke(b, "voicecall.status", { callId })).toMatchObject({ found: true, call: { callId, state: "listening" } });
    const relayed = "Said by a, asked through b.";
    expect(await invoke(b, "voicecall.speak", { callId, message: relayed })).toEqual({ success: true });

    a.child.kill("SIGKILL");
    const killedAt = Date.now();
    // Taken over: B has the call, and its audio (a bridge and media channel of B's own) is attached.
    const asterisk = b.providers.get("asterisk") as AsteriskProvider;
    await waitFor(() => {
      const call = b.manager.getCall(callId!);
      return call?.state === "listening" && asterisk.media(call.providerCallId!) !== undefined;
    }, "instance b to take the call over", LEASE_MS + 10_000);
    const tookMs = Date.now() - killedAt;
    console.log(`[cluster] instance b took the call over ${tookMs} ms after a was killed (lease ${LEASE_MS} ms)`);
    expect(tookMs).toBeLessThan(LEASE_MS + 8000);
    expect(await rows(`SELECT node_id FROM voicecall_calls WHERE call_id = '${callId}'`)).toEqual(["b"]);

    const sentence = "This is instance b on the line now.";
    const before = ear.audio().length;
    await b.manager.speak(callId!, sentence);
    const heard = await transcribePcm(ear.audio().subarray(before), 8000);
    console.log(`[cluster] the phone heard from instance b: "${heard}"`);
    expect(wordErrorRate(sentence, heard), heard).toBeLessThanOrEqual(0.25);

    // Every line from both instances, once, in order.
    const lines = await rows(`SELECT entry->>'speaker' || ': ' || (entry->>'text') FROM voicecall_transcript WHERE call_id = '${callId}' ORDER BY id`);
    expect(lines).toEqual(["bot: Hello from instance a", `bot: ${relayed}`, `bot: ${sentence}`]);

    // A started again: it restores nothing of B's, and B's call goes on.
    a = await startA();
    await new Promise((r) => setTimeout(r, 2000));
    expect(b.manager.getCall(callId!)?.state).toBe("listening");
    expect(await rows(`SELECT node_id FROM voicecall_calls WHERE call_id = '${callId}'`)).toEqual(["b"]);
    // Ended through A, which hands the request to B.
    expect(await new VoiceCallClient({ url: a.url, token: TOKEN }).call("voicecall.end", { callId: callId! })).toMatchObject({ success: true });
    const { code, output } = await phone.done;
    expect(code, output).toBe(0);
    ear.close();
    a.child.kill("SIGTERM");
    await waitFor(() => a.child.exitCode !== null, "instance a to stop (no calls: at once)", 10_000);
  }, 120_000);

  it("A stopped with SIGTERM mid-call drains: refuses new calls (health 503), then hands its PBX call to B, which the phone hears; every line once", async () => {
    const a = await startA();
    await waitFor(() => a.log().includes("takes the PBX's new inbound calls"), "instance a to take the entry", 10_000);
    const { ear, phone, callId } = await phoneCallsA(a, "701");

    a.child.kill("SIGTERM");
    await waitFor(() => a.log().includes("voicecall: draining"), "instance a to say it drains", 5000);
    const health = await fetch(`${a.url}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ ok: false, draining: true, activeCalls: 1 });
    // No room on a: the store picks b for the next caller, and b holds the PBX's entry now.
    expect(await rows("SELECT node_id FROM voicecall_nodes WHERE capacity > 0 AND lease_until > now()")).toEqual(["b"]);

    const stoppingAt = Date.now();
    const asterisk = b.providers.get("asterisk") as AsteriskProvider;
    await waitFor(() => {
      const call = b.manager.getCall(callId!);
      return call?.state === "listening" && asterisk.media(call.providerCallId!) !== undefined;
    }, "instance b to take the drained call over", DRAIN_MS + LEASE_MS + 10_000);
    console.log(`[cluster] instance b took the drained call over ${Date.now() - stoppingAt} ms after a said it drains (drain ${DRAIN_MS} ms)`);
    await waitFor(() => a.child.exitCode !== null, "instance a to exit", 15_000);
    expect(a.child.exitCode, a.log().slice(-2000)).toBe(0);
    expect(a.log()).toContain("handed to another instance");

    const sentence = "This is the second instance on the line now.";
    const before = ear.audio().length;
    await b.manager.speak(callId!, sentence);
    const heard = await transcribePcm(ear.audio().subarray(before), 8000);
    console.log(`[cluster] after the drain the phone heard from instance b: "${heard}"`);
    expect(wordErrorRate(sentence, heard), heard).toBeLessThanOrEqual(0.25);
    const lines = await rows(`SELECT entry->>'speaker' || ': ' || (entry->>'text') FROM voicecall_transcript WHERE call_id = '${callId}' ORDER BY id`);
    expect(lines).toEqual(["bot: Hello from instance a", `bot: ${sentence}`]);

    await b.manager.endCall(callId!);
    const { code, output } = await phone.done;
    expect(code, output).toBe(0);
    ear.close();
  }, 120_000);
});
