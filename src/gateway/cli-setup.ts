/**
 * Getting a deployment ready for real calls: `voicecall setup` (what is
 * missing, and how to fix it), `voicecall smoke` (one short test call) and
 * `voicecall expose` (a Tailscale Serve/Funnel route to the webhook).
 */
import { Command, InvalidArgumentError, Option } from "commander";
import type { Env } from "../config/env.js";
import { PROVIDER_IDS, type VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError, asVoiceCallError } from "../errors.js";
import type { VoiceCallClient } from "../server/client.js";
import { localHost, routeThroughTailscale } from "../server/exposure.js";
import { TailscaleCli } from "../server/tailscale.js";
import { runSetup, runSmoke, type SetupFinding, type SetupReport } from "../setup.js";
import { fail, printable, report, type OutputIo, type OutputOptions } from "./cli-output.js";

export interface SetupCommandContext {
  globals: (cmd: Command) => OutputOptions;
  client: (cmd: Command) => VoiceCallClient;
  /** `defaults`: no config file was given (nor the gateway's): the defaults and the environment. */
  config: (cmd: Command) => { config: VoiceCallConfig; warnings: string[]; gateway?: boolean; defaults?: boolean };
}

const SMOKE_MESSAGE = "This is a short test call from your voice assistant. Goodbye.";

export function registerSetupCommands(root: Command, io: OutputIo & { env: Env }, ctx: SetupCommandContext): void {
  root
    .command("setup")
    .description("check the config, carrier credentials and webhook exposure, and say what to fix")
    .action(async (_o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const result = await setupReport(cmd, ctx);
      if (g.json) io.out(JSON.stringify({ ok: result.ok, result }));
      else io.out(formatSetup(result));
      if (!result.ok) process.exitCode = 1;
    });

  root
    .command("smoke")
    .description("place a short test call (a dry run unless --yes) and follow it until it ends")
    .option("--to <number>", "who to call (default: toNumber from the config)")
    .option("--message <text>", "what to say", SMOKE_MESSAGE)
    .addOption(new Option("--provider <id>", "carrier for the call (overrides routing)").choices(PROVIDER_IDS))
    .addOption(new Option("--timeout <seconds>", "hang up and fail after this long").default(90).argParser(positiveSeconds))
    .option("--yes", "place the call (without it, only say what would happen)")
    .action(async (o: { to?: string; message: string; provider?: string; timeout: number; yes?: boolean }, cmd: Command) => {
      const g = ctx.globals(cmd);
      try {
        const to = o.to ?? ctx.config(cmd).config.toNumber;
        if (!to) throw new VoiceCallError("INVALID_PARAMS", "--to: who to call (or set toNumber in the config)", [{ path: "--to", message: "required" }]);
        const setup = await setupReport(cmd, ctx);
        if (!g.json) io.err(formatSetup(setup));
        if (!setup.ok) throw new VoiceCallError("UNAVAILABLE", "setup found problems; fix them first (voicecall setup)");
        if (!o.yes) {
          const plan = { dryRun: true, to, message: o.message, provider: o.provider };
          io.out(g.json ? JSON.stringify({ ok: true, result: plan }) : `dry run: would call ${printable(to)} and say "${printable(o.message)}"; pass --yes to place the call`);
          return;
        }
        const result = await runSmoke(ctx.client(cmd), {
          to,
          message: o.message,
          provider: o.provider,
          timeoutMs: o.timeout * 1000,
          onState: (state, atMs) => {
            if (!g.json) io.err(`  ${(atMs / 1000).toFixed(1).padStart(5)} s  ${state}`);
          },
        });
        if (g.json) io.out(JSON.stringify({ ok: result.ok, result }));
        else io.out(result.ok
          ? `smoke: passed: call ${result.callId} via ${result.provider} answered and ended (${result.states.at(-1)?.state})`
          : `smoke: failed: call ${result.callId} via ${result.provider} ${result.answered ? "was answered but" : "was not answered;"} ended ${result.states.at(-1)?.state ?? "unknown"}${result.endReason ? ` (${printable(result.endReason)})` : ""}`);
        if (!result.ok) process.exitCode = 1;
      } catch (err) {
        fail(io, g, asVoiceCallError(err));
      }
    });

  root
    .command("expose")
    .description("route the webhook and media stream through Tailscale Funnel (internet) or Serve (tailnet), or remove the route")
    .addOption(new Option("--mode <mode>", "funnel, serve or off").choices(["funnel", "serve", "off"]).makeOptionMandatory())
    .addOption(new Option("--port <port>", "external HTTPS port (Funnel: 443, 8443 or 10000; default tailscale.port)").argParser(httpsPort))
    .option("--path <path>", "external webhook path (default tailscale.path)")
    .action(async (o: { mode: "funnel" | "serve" | "off"; port?: number; path?: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      await report(io, g, async () => {
        const { config } = ctx.config(cmd);
        const httpsPort = o.port ?? config.tailscale.port;
        const path = o.path ?? config.tailscale.path;
        if (!path.startsWith("/")) throw new VoiceCallError("INVALID_PARAMS", "--path: must start with /", [{ path: "--path", message: "must start with /" }]);
        if (o.mode === "funnel" && ![443, 8443, 10000].includes(httpsPort)) {
          throw new VoiceCallError("INVALID_PARAMS", `--port: Tailscale Funnel accepts only 443, 8443 or 10000, not ${httpsPort}`, [{ path: "--port", message: "443, 8443 or 10000" }]);
        }
        const cli = new TailscaleCli();
        if (o.mode === "off") {
          for (const p of [path, config.streaming.streamPath]) await cli.remove({ mode: "serve", httpsPort, path: p });
          return { mode: o.mode, removed: [path, config.streaming.streamPath] };
        }
        const opened = await routeThroughTailscale(
          { kind: "tailscale", mode: o.mode, httpsPort, path },
          {
            local: { host: localHost(config.serve.bind), port: config.serve.port },
            webhookPath: config.serve.path,
            streamPath: config.streaming.streamPath,
          },
        );
        const webhookUrl = opened.base + path;
        const streamUrl = opened.base.replace(/^https:/, "wss:") + config.streaming.streamPath;
        return { mode: o.mode, webhookUrl, streamUrl, configHint: o.mode === "funnel" ? `publicUrl: "${webhookUrl}"` : undefined };
      }, (r) => {
        if (r.mode === "off") return `removed the Tailscale routes for ${r.removed?.join(" and ")}`;
        const lines = [`webhook: ${r.webhookUrl}`, `media stream: ${r.streamUrl}`];
        if (r.mode === "serve") lines.push("Serve is reachable only inside the tailnet: carriers need --mode funnel");
        else lines.push(`carriers reach this service there. Put ${r.configHint} in the config (or tailscale: { mode: "funnel" } to open the route at each start); the route stays until: voicecall expose --mode off`);
        return lines.join("\n");
      });
    });
}

async function setupReport(cmd: Command, ctx: SetupCommandContext): Promise<SetupReport> {
  let loaded: ReturnType<SetupCommandContext["config"]>;
  try {
    loaded = ctx.config(cmd);
  } catch (err) {
    const e = asVoiceCallError(err);
    const findings: SetupFinding[] = e.issues.length > 0
      ? e.issues.map((i) => ({ check: "config", status: "fail" as const, detail: `${i.path}: ${i.message}` }))
      : [{ check: "config", status: "fail", detail: e.message }];
    return { ok: false, findings };
  }
  // Checked without the user's config, a mock default would read as ready while the service runs another carrier.
  const warnings = loaded.defaults ? [...loaded.warnings, `no --config given: these checks are of the defaults and the environment (provider ${loaded.config.provider}); pass --config with your config file to check it`] : loaded.warnings;
  return runSetup(loaded.config, warnings, { client: ctx.client(cmd), gateway: loaded.gateway });
}

const MARK = { ok: "ok  ", warn: "warn", fail: "FAIL" } as const;

export function formatSetup(report: SetupReport): string {
  const width = Math.max(...report.findings.map((f) => f.check.length));
  const lines = report.findings.flatMap((f) => {
    const head = `${MARK[f.status]}  ${f.check.padEnd(width)}  ${printable(f.detail)}`;
    return f.fix ? [head, `${" ".repeat(width + 8)}fix: ${printable(f.fix)}`] : [head];
  });
  const failed = report.findings.filter((f) => f.status === "fail").length;
  lines.push(failed === 0 ? "setup: ready for calls" : `setup: ${failed} problem${failed === 1 ? "" : "s"} to fix`);
  return lines.join("\n");
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 3600) throw new InvalidArgumentError(`expected seconds between 1 and 3600, got ${JSON.stringify(value)}`);
  return n;
}

function httpsPort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError(`expected a port number 1-65535, got ${JSON.stringify(value)}`);
  return n;
}
