/**
 * Kamailio in front of lab Asterisks, for tests and `voicecall lab load`:
 * Debian's `kamailio` with the project's config (kamailio/kamailio.cfg,
 * dispatcher module, call-load algorithm, OPTIONS probing), rendered into a
 * temporary folder with a dispatcher list naming the Asterisks, listening on
 * a loopback port, run in the foreground and removed on stop.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { renderTemplate } from "./config.js";

const run = promisify(execFile);

export const KAMAILIO_DIR = resolve(fileURLToPath(new URL("../../kamailio", import.meta.url)));

/** Why Kamailio cannot run here, or undefined when it can. */
export function kamailioUnavailableReason(): string | undefined {
  for (const tool of ["kamailio", "kamcmd"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed (Debian: apt-get install kamailio)`;
  }
  return undefined;
}

/** One Asterisk behind Kamailio: its SIP address on loopback, and its name in the call-load count. */
export interface KamailioDestination {
  uri: string;
  name: string;
}

/** What Kamailio thinks of a destination: "AP" active and probed, "IP" inactive (down), "TP" trying. */
export interface DestinationState {
  uri: string;
  flags: string;
}

export class LocalKamailio {
  private output = "";

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  /** Renders the config for `destinations` (set 1) and starts Kamailio on 127.0.0.1:`port`; resolves once it answers OPTIONS. */
  static async start(options: { port: number; destinations: KamailioDestination[] }): Promise<LocalKamailio> {
    const reason = kamailioUnavailableReason();
    if (reason) throw new Error(reason);
    const dir = mkdtempSync(join(tmpdir(), "voicecall-kamailio-"));
    const list = options.destinations.map((d) => `1 ${d.uri} 8 0 duid=${d.name}`).join("\n");
    writeFileSync(join(dir, "dispatcher.list"), `${list}\n`);
    const vars = { SIP_BIND: "127.0.0.1", SIP_PORT: String(options.port), DISPATCHER_LIST: join(dir, "dispatcher.list"), CTL_SOCKET: join(dir, "ctl.sock") };
    writeFileSync(join(dir, "kamailio.cfg"), renderTemplate(readFileSync(join(KAMAILIO_DIR, "kamailio.cfg"), "utf8"), vars));
    const child = spawn("kamailio", ["-f", join(dir, "kamailio.cfg"), "-DD", "-E", "-m", "64", "-M", "8", "-Y", dir], { stdio: ["ignore", "pipe", "pipe"] });
    const kamailio = new LocalKamailio(options.port, dir, child);
    child.stdout!.setEncoding("utf8").on("data", (d: string) => kamailio.keep(d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => kamailio.keep(d));
    try {
      const deadline = Date.now() + 15_000;
      while (!(await kamailio.answersOptions())) {
        if (child.exitCode !== null) throw new Error(`kamailio exited (${child.exitCode}) during start:\n${kamailio.log.slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`kamailio did not answer OPTIONS on 127.0.0.1:${options.port} within 15 s:\n${kamailio.log.slice(-3000)}`);
      }
    } catch (err) {
      await kamailio.stop();
      throw err;
    }
    return kamailio;
  }

  get log(): string {
    return this.output;
  }

  /** Each destination and its state, as `kamcmd dispatcher.list` reports it. */
  async destinations(): Promise<DestinationState[]> {
    const { stdout } = await run("kamcmd", ["-s", `unix:${join(this.dir, "ctl.sock")}`, "dispatcher.list"], { timeout: 5000 });
    const out: DestinationState[] = [];
    for (const m of stdout.matchAll(/URI:\s*(\S+)\s*\n\s*FLAGS:\s*(\S+)/g)) out.push({ uri: m[1]!, flags: m[2]! });
    return out;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise<void>((r) => this.child.once("exit", () => r()));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private keep(text: string): void {
    this.output = (this.output + text).slice(-50_000);
  }

  /** One OPTIONS to Kamailio itself; true on its 200 within 500 ms. */
  private async answersOptions(): Promise<boolean> {
    const socket = createSocket("udp4");
    try {
      await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
      const { port } = socket.address();
      const branch = `z9hG4bK${Math.random().toString(36).slice(2)}`;
      const request = [
        `OPTIONS sip:127.0.0.1:${this.port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=${branch}`,
        "Max-Forwards: 70",
        `From: <sip:probe@127.0.0.1>;tag=${branch.slice(7)}`,
        `To: <sip:127.0.0.1:${this.port}>`,
        `Call-ID: ${branch}@127.0.0.1`,
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "",
        "",
      ].join("\r\n");
      return await new Promise<boolean>((resolveProbe) => {
        const timer = setTimeout(() => resolveProbe(false), 500);
        socket.on("message", (msg) => {
          if (/^SIP\/2\.0 200/.test(msg.toString("latin1"))) {
            clearTimeout(timer);
            resolveProbe(true);
          }
        });
        socket.send(request, this.port, "127.0.0.1");
      });
    } finally {
      socket.close();
    }
  }
}
