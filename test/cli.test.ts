/** Drives the built `voicecall` binary as a user would: a real service process and CLI calls. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FakeTailscale } from "./fakes/tailscale.js";
import { tempDir, waitFor } from "./helpers.js";
import { formatStatus } from "../src/gateway/cli.js";

const CLI = join(import.meta.dirname, "..", "dist", "cli.js");
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

function writeConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, "voicecall.json5");
  const config = { store: join(dir, "store"), serve: { port: 0 }, log: { level: "warn" }, mock: { ringMs: 10, replyDelayMs: 10, speakMsPerChar: 0, replies: ["sure thing", "goodbye"] }, ...extra };
  writeFileSync(path, `// test config\n${JSON.stringify(config, null, 2)}\n`);
  return path;
}

async function serve(config: string): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, "--config", config, "serve"], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  child.stdout!.resume();
  // The start banner ends with the "try" line; reading stderr earlier can miss lines written in a later chunk.
  await waitFor(() => err.includes("voicecall: try "), "the service to listen", 10_000);
  const url = /serving on (http:\/\/\S+)/.exec(err)?.[1] ?? "";
  return { child, url, stderr: () => err };
}

function cli(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string; json: any } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", env: { ...process.env, VOICECALL_TOKEN: "", VOICECALL_URL: "", ...env } });
  let json: any;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

describe("voicecall CLI against a running service", () => {
  it("places a call, shows its status and transcript, and ends it", async () => {
    const dir = tempDir();
    const config = writeConfig(dir);
    const { url } = await serve(config);
    const base = ["--config", config, "--url", url];
    const placed = cli([...base, "call", "--to", "+15550001234", "--message", "hello", "--mode", "conversation", "--json"]);
    expect(placed.code).toBe(0);
    expect(placed.json).toMatchObject({ ok: true, result: { initiated: true, provider: "mock", callId: expect.any(String) } });
    const callId = placed.json.result.callId as string;
    await waitFor(() => cli([...base, "status", "--call-id", callId, "--json"]).json.result.call.transcript.length === 2, "the reply");
    const status = cli([...base, "status", "--call-id", callId, "--json"]).json.result.call;
    expect(status.state).toBe("listening");
    expect(status.transcript.map((t: any) => `${t.speaker}: ${t.text}`)).toEqual(["bot: hello", "caller: sure thing"]);
    const human = cli([...base, "status", "--call-id", callId]);
    expect(human.stdout).toContain("caller: sure thing");
    const cont = cli([...base, "continue", "--call-id", callId, "--message", "anything else?"]);
    expect(cont.stdout.trim()).toBe("caller: goodbye");
    expect(cli([...base, "end", "--call-id", callId, "--json"]).json).toEqual({ ok: true, result: { success: true, state: "hangup-bot" } });
    // The one answered turn ("sure thing" -> "anything else?") in the latency report, read from the store.
    const latency = cli(["--config", config, "latency", "--json"]);
    expect(latency.json).toMatchObject({ ok: true, result: { calls: 1, turns: 1 } });
    expect(latency.json.result.p50Ms).toBeGreaterThanOrEqual(0);
    expect(cli(["--config", config, "latency"]).stdout).toMatch(/^1 turns in 1 calls .*p50 \d+ ms, p95 \d+ ms, p99 \d+ ms/);
  });

  it("tail prints each state change of a call once, and its transcript lines", async () => {
    const dir = tempDir();
    const config = writeConfig(dir);
    const { url } = await serve(config);
    const base = ["--config", config, "--url", url];
    const tail = spawn(process.execPath, [CLI, ...base, "tail"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, VOICECALL_TOKEN: "", VOICECALL_URL: "" } });
    children.push(tail);
    let out = "";
    tail.stdout!.on("data", (d) => (out += d));
    // Connected once the stream's first bytes (its opening comment) are in: give it a moment.
    await new Promise((r) => setTimeout(r, 500));
    const callId = cli([...base, "call", "--to", "+15550001234", "--message", "hello", "--mode", "conversation", "--json"]).json.result.callId as string;
    await waitFor(() => out.includes("caller: sure thing"), "the reply in the tail", 10_000);
    cli([...base, "end", "--call-id", callId]);
    await waitFor(() => out.includes("state=hangup-bot"), "the end in the tail", 10_000);
    const states = out.split("\n").filter((l) => l.includes(` ${callId} state=`)).map((l) => l.split(" state=")[1]);
    expect(states[0]).toBe("initiated");
    expect(states.at(-1)).toMatch(/^hangup-bot/);
    // The record comes at every change (an answer time, a carrier id): a state is printed once per change.
    expect(states.filter((s, i) => i > 0 && s === states[i - 1])).toEqual([]);
    expect(out).toContain(`${callId} bot: hello`);
  });

  it("names the bad flag or field, with a non-zero exit and no stack", async () => {
    const dir = tempDir();
    const config = writeConfig(dir);
    const { url } = await serve(config);
    const base = ["--config", config, "--url", url];
    const noMessage = cli([...base, "call", "--to", "+15550001234"]);
    expect(noMessage.code).not.toBe(0);
    expect(noMessage.stderr).toContain("--message");
    const badMode = cli([...base, "call", "--to", "+15550001234", "--message", "x", "--mode", "shout"]);
    expect(badMode.code).not.toBe(0);
    expect(badMode.stderr).toMatch(/--mode.*shout|shout.*--mode/);
    const badTo = cli([...base, "call", "--to", "not a number", "--message", "x", "--json"]);
    expect(badTo.code).toBe(1);
    expect(badTo.json.error).toMatchObject({ code: "INVALID_PARAMS", issues: [{ path: "to" }] });
    const unknown = cli([...base, "status", "--call-id", "nope"]);
    expect(unknown.stdout.trim()).toBe("not found");
    const wrongToken = cli([...base, "--token", "x".repeat(20), "status", "--json"]);
    expect(wrongToken.json.error.code).toBe("UNAUTHORIZED");
    const down = cli(["--url", "http://127.0.0.1:9", "--token", "t", "status"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("cannot reach the voice-call service");
    for (const r of [noMessage, badMode, badTo, down]) expect(r.stderr + r.stdout).not.toMatch(/\n\s+at .+:\d+:\d+/);
  });

  it("refuses a bad config at start, listing every key path", () => {
    const dir = tempDir();
    const path = join(dir, "bad.json");
    writeFileSync(path, JSON.stringify({ provider: "twilio", serve: { port: "x" }, outbound: { defaultMode: "loud" } }));
    const r = cli(["--config", path, "serve"]);
    expect(r.code).toBe(1);
    for (const key of ["serve.port", "outbound.defaultMode", "twilio.accountSid", "twilio.authToken", "fromNumber"]) expect(r.stderr).toContain(key);
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    const missing = cli(["--config", join(dir, "nope.json"), "serve"]);
    expect(missing.stderr).toContain("file not found");
  });

  it("surface faults: a bad --port, a short VOICECALL_TOKEN, a generated token, the token file's mode, escapes in transcripts", async () => {
    const dir = tempDir();
    const config = writeConfig(dir);
    const badPort = cli(["--config", config, "serve", "--port", "abc"]);
    expect(badPort.code).not.toBe(0);
    expect(badPort.stderr).toContain("--port");
    expect(badPort.stderr).toContain('expected a port number 0-65535, got "abc"');
    expect(badPort.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);

    // A short token set in the environment is reported under its variable, not as a key of the file.
    const shortToken = cli(["--config", config, "serve"], { VOICECALL_TOKEN: "short" });
    expect(shortToken.code).toBe(1);
    expect(shortToken.stderr).toMatch(/- VOICECALL_TOKEN: must be at least 16 characters \(the environment variable sets control\.token\)/);

    // A token file another user could read is tightened; a generated token is never printed.
    const store = join(dir, "store");
    mkdirSync(store, { recursive: true });
    writeFileSync(join(store, "control-token"), "short\n", { mode: 0o644 });
    chmodSync(join(store, "control-token"), 0o644);
    const running = await serve(config);
    const token = readFileSync(join(store, "control-token"), "utf8").trim();
    expect(token.length).toBeGreaterThanOrEqual(16);
    expect(statSync(join(store, "control-token")).mode & 0o777).toBe(0o600);
    expect(running.stderr()).toContain("generated a control token");
    expect(running.stderr()).not.toContain(token);

    // What a caller says reaches the terminal with its control characters shown, not obeyed.
    const base = ["--config", config, "--url", running.url];
    const callId = cli([...base, "call", "--to", "+15550001234", "--message", "evil \u001b]0;pwned\u0007 \u001b[2J text", "--mode", "conversation", "--json"]).json.result.callId;
    await waitFor(() => cli([...base, "status", "--call-id", callId, "--json"]).json.result.call.transcript.length >= 1, "the message");
    const human = cli([...base, "status", "--call-id", callId]).stdout;
    expect(human).not.toContain("\u001b");
    expect(human).toContain("evil \\x1b]0;pwned\\x07 \\x1b[2J text");
  });

  it("doctor reports and rewrites legacy keys", () => {
    const dir = tempDir();
    const path = join(dir, "legacy.json");
    writeFileSync(path, JSON.stringify({ provider: "log", streaming: { openaiApiKey: "sk-test", sttModel: "m" } }));
    const check = cli(["--config", path, "doctor", "--json"]);
    expect(check.json.result.changes).toHaveLength(3);
    expect(JSON.parse(readFileSync(path, "utf8")).provider).toBe("log");
    const fix = cli(["--config", path, "doctor", "--fix"]);
    expect(fix.code).toBe(0);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ provider: "mock", streaming: { providers: { openai: { apiKey: "sk-test", model: "m" } } } });
    expect(JSON.parse(readFileSync(`${path}.bak`, "utf8")).provider).toBe("log");
    expect(cli(["--config", path, "doctor", "--json"]).json.result.changes).toEqual([]);
  });

  it("run by an npm script, stops when npm is gone (npm does not pass SIGTERM on); run otherwise, an orphan keeps serving", async () => {
    /** Starts a service (its own store) from a shell that exits 3 s later (as npm would when killed), leaving it an orphan; its pid. */
    const orphan = (env: NodeJS.ProcessEnv) => {
      const config = writeConfig(tempDir());
      const out = spawnSync("sh", ["-c", `"${process.execPath}" "${CLI}" --config "${config}" serve >/dev/null 2>&1 & echo $!; sleep 3`], { encoding: "utf8", env });
      return Number(out.stdout.trim());
    };
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const { npm_lifecycle_event: _, ...plain } = process.env;
    const underNpm = orphan({ ...plain, npm_lifecycle_event: "start" });
    const standalone = orphan(plain);
    try {
      await waitFor(() => !alive(underNpm), "the service started by npm to stop", 8000);
      expect(alive(standalone)).toBe(true);
    } finally {
      for (const pid of [underNpm, standalone]) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }, 30_000);

  it("drains on SIGTERM: calls in progress go on, new ones are refused and health answers 503; the last call's end stops it", async () => {
    const dir = tempDir();
    const config = writeConfig(dir, { cluster: { drainMs: 60_000 } });
    const { child, url, stderr } = await serve(config);
    const base = ["--config", config, "--url", url];
    const callId = cli([...base, "call", "--to", "+15550001234", "--message", "hello", "--mode", "conversation", "--json"]).json.result.callId as string;
    child.kill("SIGTERM");
    await waitFor(() => stderr().includes("voicecall: draining: 1 call in progress"), "the service to say it drains");
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ ok: false, draining: true, activeCalls: 1 });
    const refused = cli([...base, "call", "--to", "+15550001234", "--message", "hello", "--json"]);
    expect(refused.code).not.toBe(0);
    expect(refused.json).toMatchObject({ ok: false, error: { code: "UNAVAILABLE", message: expect.stringContaining("draining") } });
    // The call in progress still answers.
    expect(cli([...base, "speak", "--call-id", callId, "--message", "still here", "--json"]).code).toBe(0);
    expect(cli([...base, "end", "--call-id", callId, "--json"]).code).toBe(0);
    const code = await new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once("exit", (c) => r(c))));
    expect(code).toBe(0);
    expect(stderr()).toContain("voicecall: every call has ended");
  });

  it("keeps the call record and every transcript line across kill -9", async () => {
    const dir = tempDir();
    const config = writeConfig(dir, { mock: { ringMs: 10, replyDelayMs: 10, speakMsPerChar: 0, replies: ["first answer", "second answer"] } });
    const first = await serve(config);
    const base = ["--config", config, "--url", first.url];
    const callId = cli([...base, "call", "--to", "+15550001234", "--message", "question one", "--mode", "conversation", "--json"]).json.result.callId;
    await waitFor(() => cli([...base, "status", "--call-id", callId, "--json"]).json.result.call.transcript.length === 2, "first answer");
    expect(cli([...base, "continue", "--call-id", callId, "--message", "question two", "--json"]).json.result.transcript).toBe("second answer");
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));

    const second = await serve(config);
    const after = cli(["--config", config, "--url", second.url, "status", "--call-id", callId, "--json"]).json.result.call;
    expect(after.transcript.map((t: any) => t.text)).toEqual(["question one", "first answer", "question two", "second answer"]);
    // The restarted mock carrier knows its calls died with the killed process: the call ends, saying so.
    expect(after.state).toBe("completed");
    expect(after.endReason).toMatch(/end with the process/);
  });
});

describe("voicecall setup, smoke and expose", () => {
  it("setup says the config is ready, or lists each problem with exit 1", async () => {
    const dir = tempDir();
    const config = writeConfig(dir);
    const { url } = await serve(config);
    const ready = cli(["--config", config, "--url", url, "setup"]);
    expect(ready.code, ready.stderr).toBe(0);
    expect(ready.stdout).toMatch(/^ok {4}config +config is valid \(provider mock\)$/m);
    expect(ready.stdout).toMatch(/^ok {4}service +.*is running \(0 calls on record\)$/m);
    expect(ready.stdout.trim().split("\n").at(-1)).toBe("setup: ready for calls");
    expect(ready.stdout).not.toContain("no --config given");
    // Without --config it checks the defaults, and says so (the running service may have another carrier).
    const unconfigured = cli(["--url", url, "setup"], { HOME: dir });
    expect(unconfigured.stdout).toMatch(/^warn +config +no --config given: these checks are of the defaults and the environment \(provider mock\)/m);

    const broken = join(dir, "broken.json5");
    writeFileSync(broken, JSON.stringify({ provider: "twilio" }));
    const bad = cli(["--config", broken, "setup", "--json"]);
    expect(bad.code).toBe(1);
    expect(bad.json.ok).toBe(false);
    expect(bad.json.result.findings.map((f: any) => `${f.status} ${f.detail}`)).toEqual(expect.arrayContaining([
      "fail twilio.accountSid: required when provider twilio is used (or set TWILIO_ACCOUNT_SID)",
      "fail fromNumber: required when provider twilio is used",
    ]));
    expect(bad.stderr).toBe("");
  });

  it("smoke is a dry run without --yes; with it, places a call and follows it to the end", async () => {
    const dir = tempDir();
    // smoke follows the call by asking for its state every 250 ms: the phone rings long enough to be seen ringing.
    const config = writeConfig(dir, { toNumber: "+15550001234", mock: { ringMs: 800, replyDelayMs: 10, speakMsPerChar: 0, replies: ["sure thing", "goodbye"] } });
    const { url } = await serve(config);
    const base = ["--config", config, "--url", url];
    const dry = cli([...base, "smoke"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^dry run: would call \+15550001234 and say "This is a short test call/);
    expect(cli([...base, "status", "--json"]).json.result.calls).toEqual([]);

    const run = cli([...base, "smoke", "--yes"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^smoke: passed: call \S+ via mock answered and ended \(hangup-bot\)/);
    expect(run.stderr).toMatch(/s {2}ringing[\s\S]*s {2}hangup-bot/);

    const busy = writeConfig(tempDir(), { mock: { outcome: "busy", ringMs: 10 } });
    const { url: busyUrl } = await serve(busy);
    const failed = cli(["--config", busy, "--url", busyUrl, "smoke", "--to", "+15550002222", "--yes", "--json"]);
    expect(failed.code).toBe(1);
    expect(failed.json).toMatchObject({ ok: false, result: { answered: false, states: expect.arrayContaining([expect.objectContaining({ state: "busy" })]) } });
    const noNumber = cli(["--config", busy, "--url", busyUrl, "smoke"]);
    expect(noNumber.code).toBe(1);
    expect(noNumber.stderr).toContain("INVALID_PARAMS: --to: who to call (or set toNumber in the config)");
  });

  it("expose routes the webhook and stream through tailscale, checks Funnel's ports, and removes the routes", () => {
    const dir = tempDir();
    const tailscale = new FakeTailscale(dir);
    const config = writeConfig(dir, { serve: { port: 4555 } });
    const env = { PATH: `${tailscale.dir}:${process.env.PATH}` };
    const up = cli(["--config", config, "expose", "--mode", "funnel", "--port", "8443"], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain("webhook: https://box.tail1234.ts.net:8443/voice/webhook\nmedia stream: wss://box.tail1234.ts.net:8443/voice/stream");
    expect(up.stdout).toContain('publicUrl: "https://box.tail1234.ts.net:8443/voice/webhook"');
    expect(tailscale.calls().filter((c) => c[0] === "funnel").map((c) => c.slice(3).join(" "))).toEqual([
      "--https=8443 --set-path=/voice/webhook http://127.0.0.1:4555/voice/webhook",
      "--https=8443 --set-path=/voice/stream http://127.0.0.1:4555/voice/stream",
    ]);
    const wrongPort = cli(["--config", config, "expose", "--mode", "funnel", "--port", "444"], env);
    expect(wrongPort.code).toBe(1);
    expect(wrongPort.stderr).toContain("--port: Tailscale Funnel accepts only 443, 8443 or 10000, not 444");
    const off = cli(["--config", config, "expose", "--mode", "off", "--port", "8443"], env);
    expect(off.stdout.trim()).toBe("removed the Tailscale routes for /voice/webhook and /voice/stream");
    const missing = cli(["--config", config, "expose", "--mode", "funnel"], { PATH: "/nonexistent" });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("UNAVAILABLE: the tailscale CLI (tailscale) is not installed");
  });
});

describe("voicecall status without --call-id", () => {
  const call = (n: number, state: string) => ({ callId: `call-${n}`, state, direction: "inbound", to: "100", createdAt: new Date(Date.UTC(2026, 11, 1, 0, n)).toISOString() });

  it("lists every call in progress and the 10 newest ended ones, saying how many it left out; --all lists all", () => {
    const calls = [call(0, "listening"), ...Array.from({ length: 14 }, (_, i) => call(i + 1, "completed")), call(15, "speaking")];
    const lines = formatStatus({ calls }).split("\n");
    expect(lines[0]).toBe("(4 earlier ended calls not shown: --all lists them)");
    expect(lines.slice(1).map((l) => l.split(" ")[0])).toEqual(["call-0", ...Array.from({ length: 10 }, (_, i) => `call-${i + 5}`), "call-15"]);
    expect(formatStatus({ calls }, { all: true }).split("\n")).toHaveLength(16);
    expect(formatStatus({ calls: calls.slice(0, 5) })).not.toMatch(/not shown/);
  });
});
