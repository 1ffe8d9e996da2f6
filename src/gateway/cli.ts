/**
 * The `voicecall` commands. One definition serves the standalone binary and
 * `openclaw voicecall` inside the gateway: every call command talks to the
 * running service's control API, so both behave the same.
 */
import { writeFileSync, copyFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import { clientEnv, type Env } from "../config/env.js";
import { defaultStoreDir, readConfigFile, storeSettings } from "../config/load.js";
import { resolveConfig } from "../configure.js";
import { migrateLegacyConfig } from "../config/migrate.js";
import { CallMode, PROVIDER_IDS, type VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError, asVoiceCallError } from "../errors.js";
import { createLogger } from "../log.js";
import { startService, type RunningService } from "../server/service.js";
import { readSavedToken } from "../server/token.js";
import { VoiceCallClient } from "../server/client.js";
import { latencyReport } from "../calls/latency.js";
import { isTerminal } from "../calls/state.js";
import { readStore } from "../store/index.js";
import { redactUrl } from "../store/postgres.js";
import type { Lab } from "../lab/lab.js";
import { labHowTo, registerLabCommands, startLab } from "../lab/cli.js";
import type { MethodName } from "../server/methods.js";
import { fail, printable, report } from "./cli-output.js";
import { registerSetupCommands } from "./cli-setup.js";

export { printable };

export interface CliIo {
  env: Env;
  out: (line: string) => void;
  err: (line: string) => void;
  /** Resolves when the process is asked to stop (Ctrl-C, SIGTERM). */
  untilSignal: () => Promise<void>;
  /**
   * The config commands use without --config. Inside the gateway this is the
   * plugin's own resolved config, so commands reach its service (its port,
   * store and token) with no flags.
   */
  defaultConfig?: VoiceCallConfig;
}

interface GlobalOptions {
  url?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

/** --url, --token, --config, --json: on `voicecall` itself and on each subcommand (the gateway's CLI takes options positionally). */
function commonOptions(cmd: Command): Command {
  return cmd
    .option("--url <url>", "control API of the running service (env VOICECALL_URL)")
    .option("--token <token>", "bearer token for the control API (env VOICECALL_TOKEN)")
    .option("--config <file>", "config file (JSON or JSON5)")
    .option("--json", "machine-readable output");
}

export function registerVoicecallCommands(root: Command, io: CliIo): Command {
  commonOptions(root);

  /** The common options as given to the subcommand, else to `voicecall`. */
  const globals = (cmd: Command): GlobalOptions => {
    const out: Record<string, unknown> = {};
    for (let c: Command | null = cmd; c; c = c === root ? null : c.parent) {
      for (const [key, value] of Object.entries(c.opts())) if (value !== undefined && out[key] === undefined) out[key] = value;
    }
    return out as GlobalOptions;
  };
  const clientFor = (g: GlobalOptions): VoiceCallClient => makeClient(g, io);

  const rpc = (name: MethodName, params: (o: Record<string, string>) => Record<string, unknown>, human: (r: any) => string) =>
    async (options: Record<string, string>, cmd: Command) => {
      const g = globals(cmd);
      await report(io, g, async () => {
        return clientFor(g).call(name, params(options));
      }, human);
    };

  root
    .command("call")
    .alias("start")
    .description("place a call and speak a message")
    .requiredOption("--to <number>", "destination: E.164 number, extension or SIP URI")
    .requiredOption("--message <text>", "what to say when the call is answered")
    .addOption(new Option("--mode <mode>", "notify (speak, hang up) or conversation").choices(CallMode.options))
    .addOption(new Option("--provider <id>", "carrier for this call (overrides routing)").choices(PROVIDER_IDS))
    .option("--dtmf-sequence <digits>", "keys to press once the call connects, before the message (conversation mode)")
    .option("--record", "record this call (recording.* in the config otherwise decides)")
    .option("--amd", "tell a person from an answering machine before the message (outbound.amd otherwise decides)")
    .action(rpc("voicecall.initiate", (o) => ({ to: o.to, message: o.message, mode: o.mode, provider: o.provider, dtmfSequence: o.dtmfSequence, ...(o.record ? { record: true } : {}), ...(o.amd ? { amd: true } : {}) }), (r) => `call ${r.callId} initiated via ${r.provider} (${r.state})`));

  root
    .command("continue")
    .description("say something and wait for the caller's answer")
    .requiredOption("--call-id <id>", "call id")
    .requiredOption("--message <text>", "what to say")
    .addOption(new Option("--expect <kind>", "the answer expected, decoded with a grammar where the recogniser has one").choices(["digits", "yesno"]))
    .addOption(new Option("--digits <count>", "keys a keypad answer has (else keys complete at # or after a pause)").argParser(keyCount))
    .action(rpc("voicecall.continue", (o) => ({ callId: o.callId, message: o.message, expect: o.expect, digits: o.digits }), (r) => `caller: ${printable(r.transcript)}`));

  root
    .command("speak")
    .description("say something without waiting for an answer")
    .requiredOption("--call-id <id>", "call id")
    .requiredOption("--message <text>", "what to say")
    .action(rpc("voicecall.speak", (o) => ({ callId: o.callId, message: o.message }), () => "spoken"));

  root
    .command("dtmf")
    .description("send DTMF digits into the call")
    .requiredOption("--call-id <id>", "call id")
    .requiredOption("--digits <digits>", "0-9, A-D, *, #; w pauses")
    .action(rpc("voicecall.dtmf", (o) => ({ callId: o.callId, digits: o.digits }), () => "sent"));

  root
    .command("recording")
    .description("where a call's recording is, its length and channels")
    .requiredOption("--call-id <id>", "call id")
    .action(
      rpc("voicecall.recording", (o) => ({ callId: o.callId }), (r) =>
        r.found ? `${r.path} (${r.channels}, ${r.durationMs === undefined ? "still recording" : `${(r.durationMs / 1000).toFixed(1)} s`}${r.failed ? `; stopped early: ${r.failed}` : ""})` : `call ${r.callId} has no recording`,
      ),
    );

  root
    .command("transfer")
    .description("put the caller through to a person (blind: once they answer, we leave the call)")
    .requiredOption("--call-id <id>", "call id")
    .requiredOption("--to <number>", "who takes the call: a number, or on the PBX an extension or SIP URI")
    .option("--warm", "warm transfer: the caller holds while the person hears --message and accepts or declines")
    .option("--message <text>", "blind: said to the caller first; warm: what the person is told")
    .action(
      rpc(
        "voicecall.transfer",
        (o) => ({ callId: o.callId, to: o.to, ...(o.warm ? { mode: "warm" } : {}), ...(o.message ? { message: o.message } : {}) }),
        (r) => (r.transferred ? `transferred to ${r.to}` : `not transferred: ${r.outcome}${r.reason ? ` (${r.reason})` : ""}; the caller is still on the line`),
      ),
    );

  root
    .command("end")
    .description("hang up a call")
    .requiredOption("--call-id <id>", "call id")
    .action(rpc("voicecall.end", (o) => ({ callId: o.callId }), (r) => `ended (${r.state})`));

  root
    .command("status")
    .description(`a call's state and transcript; without --call-id, the calls in progress and the ${ENDED_SHOWN} newest ended ones`)
    .option("--call-id <id>", "call id")
    .option("--all", "without --call-id: every call the service holds (--json always lists them all)")
    .action(async (o: { callId?: string; all?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      await report(io, g, async () => {
        const client = clientFor(g);
        return o.callId ? client.call("voicecall.status", { callId: o.callId }) : client.call("voicecall.list", {});
      }, (r) => formatStatus(r, { all: o.all === true }));
    });

  root
    .command("tail")
    .description("print call events as they happen (each state change, each transcript line), until Ctrl-C")
    .action(async (_o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const controller = new AbortController();
      void io.untilSignal().then(() => controller.abort());
      // The service sends a call's record at every change (an answer time, a carrier id): a person reads its state changes.
      const shown = new Map<string, string>();
      try {
        for await (const event of clientFor(g).events(controller.signal)) {
          if (g.json) {
            io.out(JSON.stringify(event));
            continue;
          }
          const e = event as TailEvent;
          if (e.type === "call" && e.call) {
            const state = `${e.call.state}\u0000${e.call.endReason ?? ""}`;
            if (shown.get(e.call.callId) === state) continue;
            shown.set(e.call.callId, state);
          }
          io.out(formatEvent(e));
        }
      } catch (err) {
        fail(io, g, asVoiceCallError(err));
      }
    });

  root
    .command("serve")
    .description("run the voice-call service (webhooks + control API)")
    .addOption(new Option("--port <port>", "override serve.port").argParser(parsePort))
    .option("--lab", "start the local Asterisk lab and serve it (the Asterisk carrier, offline speech); npm start does this")
    .action(async (o: { port?: number; lab?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      let lab: Lab | undefined;
      try {
        let raw = g.config ? (readConfigFile(g.config) as Record<string, unknown>) : {};
        if (o.lab) {
          const started = await startLab(raw, io);
          if (started.reason) io.err(`voicecall: the PBX lab cannot run here (${started.reason}); serving the configured carrier instead`);
          lab = started.lab;
          raw = started.raw;
        }
        const { config, warnings } = resolveConfig(raw, io.env, g.config ? `config ${g.config}` : "config");
        if (o.port !== undefined) config.serve.port = o.port;
        for (const w of warnings) io.err(`warning: ${w}`);
        const logger = createLogger(config.log.level);
        keepServingOnFaults(logger);
        const service = await startService(config, logger);
        io.err(`voicecall: serving on ${service.url} (provider ${config.provider}, store ${service.runtime.storeDir})`);
        if (lab) for (const line of labHowTo(lab)) io.err(`voicecall: ${line}`);
        // The token itself is never printed: terminals are logged and shared.
        io.err(service.tokenGenerated
          ? `voicecall: generated a control token, saved in ${service.runtime.storeDir}/control-token (mode 0600); the CLI on this machine reads it there, other machines need it as VOICECALL_TOKEN`
          : "voicecall: control token from config, VOICECALL_TOKEN or the store folder");
        // The lab's own lines above say how to call there; a +1 number would go to its PBX and ring nobody.
        if (!lab) io.err(`voicecall: try  npx voicecall call --to +15550001234 --message "hello" --json`);
        await io.untilSignal();
        await drainService(service, config.cluster.drainMs, io);
        io.err("voicecall: stopping");
        await service.close();
      } catch (err) {
        fail(io, g, asVoiceCallError(err));
      } finally {
        await lab?.stop();
      }
    });

  registerLabCommands(root, io, (cmd) => clientFor(globals(cmd)));
  registerSetupCommands(root, io, {
    globals,
    client: (cmd) => clientFor(globals(cmd)),
    config: (cmd) => configOf(globals(cmd), io),
  });

  root
    .command("latency")
    .description("turn latency p50/p95/p99 from the call store: caller's last words to the start of our reply")
    .option("--store <dir>", "store folder or postgres:// address (default: the config's store)")
    .action(async (o: { store?: string }, cmd: Command) => {
      const g = globals(cmd);
      await report(io, g, async () => {
        const base = g.config ? loadConfig(g.config, io.env).config : (io.defaultConfig ?? loadConfig(undefined, io.env).config);
        const config = o.store ? { ...base, store: o.store } : base;
        const settings = storeSettings(config);
        const where = settings.kind === "jsonl" ? settings.dir : redactUrl(settings.url);
        return { store: where, ...latencyReport(await readStore(config)) };
      }, (r) =>
        r.turns === 0
          ? `no answered turns in ${r.store} yet`
          : `${r.turns} turns in ${r.calls} calls (${r.store}): p50 ${r.p50Ms} ms, p95 ${r.p95Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms`);
    });

  root
    .command("doctor")
    .description("check a config file; --fix rewrites legacy keys (a .bak copy is kept)")
    .option("--fix", "rewrite the config file with current keys")
    .action(async (o: { fix?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      await report(io, g, async () => doctor(g.config, io.env, o.fix === true), (r) => r.lines.join("\n"));
    });

  for (const cmd of root.commands) if (cmd.name() !== "lab") commonOptions(cmd);
  return root;
}

// ------------------------------------------------------------------ helpers

/**
 * Before a stop: calls in progress go on (new ones refused) for up to
 * `drainMs`, with their count shown every 5 s; a second signal stops at once.
 */
async function drainService(service: RunningService, drainMs: number, io: CliIo): Promise<void> {
  const active = service.runtime.manager.activeCalls;
  if (active === 0 || drainMs === 0) return;
  io.err(`voicecall: draining: ${active} call${active === 1 ? "" : "s"} in progress go on, new calls are refused (health answers 503); waiting up to ${Math.round(drainMs / 1000)} s (stop again to stop now)`);
  const drained = service.runtime.drain(drainMs, (left) => io.err(`voicecall: draining: ${left} call${left === 1 ? "" : "s"} still in progress`));
  const outcome = await Promise.race([drained, io.untilSignal().then(() => undefined)]);
  if (!outcome) io.err("voicecall: asked again: stopping now");
  else if (outcome.left === 0) io.err("voicecall: every call has ended");
  else io.err(outcome.handOver ? `voicecall: ${outcome.left} calls still up: handed to another instance (PBX calls; calls on cloud carriers end)` : `voicecall: ${outcome.left} calls still up: ending them`);
}

/**
 * The standalone service outlives a fault in one call's handling: an
 * exception or rejection nobody caught is logged and the service keeps
 * serving every other call (on Node 20 either would end the process). Inside
 * the gateway the gateway's own handlers apply.
 */
function keepServingOnFaults(logger: ReturnType<typeof createLogger>): void {
  const report = (kind: string) => (err: unknown) =>
    logger.error({ err: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack?.split("\n").slice(0, 4).join(" | ") : undefined }, `${kind}; the service keeps serving`);
  process.on("uncaughtException", report("uncaught exception"));
  process.on("unhandledRejection", report("unhandled rejection"));
}

function keyCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 64) throw new InvalidArgumentError(`expected a number of keys 1-64, got ${JSON.stringify(value)}`);
  return n;
}

/** Commander reports an InvalidArgumentError as a one-line usage error (no stack trace). */
function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(n) || n > 65535) throw new InvalidArgumentError(`expected a port number 0-65535, got ${JSON.stringify(value)}`);
  return n;
}

function loadConfig(file: string | undefined, env: Env): { config: VoiceCallConfig; warnings: string[] } {
  const raw = file ? readConfigFile(file) : {};
  return resolveConfig(raw, env, file ? `config ${file}` : "config");
}

/** The config a command works with: --config, else the gateway plugin's own (`gateway`), else defaults and the environment. */
function configOf(g: GlobalOptions, io: CliIo): { config: VoiceCallConfig; warnings: string[]; gateway?: boolean; defaults?: boolean } {
  if (g.config) return loadConfig(g.config, io.env);
  return io.defaultConfig ? { config: io.defaultConfig, warnings: [], gateway: true } : { ...resolveConfig({}, io.env), defaults: true };
}

function makeClient(g: GlobalOptions, io: CliIo): VoiceCallClient {
  const env = io.env;
  const fromEnv = clientEnv(env);
  const { config } = configOf(g, io);
  const host = config.serve.bind === "0.0.0.0" || config.serve.bind === "::" ? "127.0.0.1" : config.serve.bind;
  const url = g.url ?? fromEnv.url ?? `http://${host.includes(":") ? `[${host}]` : host}:${config.serve.port}`;
  const token = g.token ?? fromEnv.token ?? config.control.token ?? readSavedToken(defaultStoreDir(config));
  return new VoiceCallClient({ url, token });
}

async function doctor(file: string | undefined, env: Env, fix: boolean): Promise<{ ok: boolean; changes: string[]; fixed: boolean; lines: string[] }> {
  if (!file) throw new VoiceCallError("INVALID_PARAMS", "--config: doctor needs the config file to check", [{ path: "--config", message: "required" }]);
  const raw = readConfigFile(file);
  const { value, changes } = migrateLegacyConfig(raw);
  const lines = changes.map((c) => `legacy: ${c}`);
  let fixed = false;
  if (fix && changes.length > 0) {
    copyFileSync(file, `${file}.bak`);
    writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
    fixed = true;
    lines.push(`rewrote ${file} (previous version in ${file}.bak)`);
  }
  resolveConfig(value, env, `config ${file}`);
  lines.push(changes.length === 0 ? "config is valid; no legacy keys" : fixed ? "config is valid" : 'config is valid once legacy keys are rewritten: run "voicecall doctor --fix"');
  return { ok: true, changes, fixed, lines };
}

interface TailEvent {
  type: "call" | "transcript";
  call?: { callId: string; state: string; endReason?: string };
  entry?: { callId: string; speaker: string; kind: string; text: string };
}

function formatEvent(e: TailEvent): string {
  const time = new Date().toISOString().slice(11, 23);
  if (e.type === "call" && e.call) return `${time} ${e.call.callId} state=${e.call.state}${e.call.endReason ? ` (${printable(e.call.endReason)})` : ""}`;
  if (e.entry) return `${time} ${e.entry.callId} ${e.entry.speaker}${KIND_TAG[e.entry.kind] ?? ""}: ${printable(e.entry.text)}`;
  return `${time} ${JSON.stringify(e)}`;
}

/** Ended calls `voicecall status` lists without --all (the service keeps up to keepEndedCalls of them). */
const ENDED_SHOWN = 10;

/** Human output of voicecall.status, or of voicecall.list: every call in progress, and the newest ended ones unless `all`. */
export function formatStatus(r: any, options: { all?: boolean } = {}): string {
  if (Array.isArray(r.calls)) {
    if (r.calls.length === 0) return "no calls";
    const ended = r.calls.filter((c: any) => isTerminal(c.state)).sort((a: any, b: any) => String(a.createdAt).localeCompare(String(b.createdAt)));
    const hidden = options.all ? new Set() : new Set(ended.slice(0, Math.max(0, ended.length - ENDED_SHOWN)));
    const lines = r.calls.filter((c: any) => !hidden.has(c)).map((c: any) => `${c.callId}  ${c.state.padEnd(10)} ${c.direction} ${printable(c.to)}  ${c.createdAt}`);
    if (hidden.size > 0) lines.unshift(`(${hidden.size} earlier ended calls not shown: --all lists them)`);
    return lines.join("\n");
  }
  if (!r.found) return "not found";
  const c = r.call;
  const lines = [`${c.callId}  ${c.state}${c.endReason ? ` (${printable(c.endReason)})` : ""}  ${c.direction} via ${c.provider} to ${printable(c.to)}`];
  for (const t of c.transcript) lines.push(`  ${t.speaker}${KIND_TAG[t.kind] ?? ""}: ${printable(t.text)}`);
  return lines.join("\n");
}

/** How transcript kinds other than plain speech are marked in human output. */
const KIND_TAG: Record<string, string> = { dtmf: " [dtmf]", interrupted: " [interrupted; heard]", unrecognised: " [not transcribed]", transfer: " [transfer]", recording: " [recording]", amd: " [answered by]" };
