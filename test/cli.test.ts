/** Drives the built `voicecall` binary as a user would: a real service process and CLI calls. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir, waitFor } from "./helpers.js";

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
  const url = await waitFor(() => /serving on (http:\/\/\S+)/.exec(err)?.[1], "the service to listen", 10_000);
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
    // The mock carrier cannot say what became of the call: it is kept, never falsely ended.
    expect(after.state).toBe("listening");
  });
});
