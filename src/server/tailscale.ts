/**
 * Tailscale Serve (tailnet only) and Funnel (public internet) through the
 * `tailscale` CLI: routes one external HTTPS path to a local URL, reads the
 * machine's tailnet name, removes the route again. Routes are set with
 * `--bg`, so tailscaled keeps them; the caller removes what it set.
 */
import { execFile } from "node:child_process";
import { VoiceCallError } from "../errors.js";

export type TailscaleMode = "serve" | "funnel";

export interface TailscaleRoute {
  mode: TailscaleMode;
  /** External HTTPS port (Funnel: 443, 8443 or 10000). */
  httpsPort: number;
  /** External path, e.g. /voice/webhook. */
  path: string;
  /** Local URL requests on `path` go to. */
  target: string;
}

/** How long one CLI call may take (a Funnel that needs approval in the admin console would otherwise wait forever). */
const CLI_TIMEOUT_MS = 20_000;

export class TailscaleCli {
  constructor(private readonly bin = "tailscale") {}

  /** The machine's name on the tailnet, e.g. box.tail1234.ts.net; refuses when tailscaled is not logged in. */
  async dnsName(): Promise<string> {
    const text = await this.run(["status", "--json"]);
    let status: { BackendState?: unknown; Self?: { DNSName?: unknown } };
    try {
      status = JSON.parse(text);
    } catch {
      throw new VoiceCallError("UNAVAILABLE", "tailscale status --json did not print JSON; is this the tailscale CLI?");
    }
    if (status.BackendState !== "Running") {
      throw new VoiceCallError("UNAVAILABLE", `tailscale is not connected (state ${String(status.BackendState)}): run "tailscale up" and log in`);
    }
    const name = typeof status.Self?.DNSName === "string" ? status.Self.DNSName.replace(/\.$/, "") : "";
    if (!name) throw new VoiceCallError("UNAVAILABLE", "tailscale reports no DNS name for this machine: enable MagicDNS and HTTPS certificates for the tailnet");
    return name;
  }

  /** Routes `route.path` on the tailnet name to `route.target`; returns the public base (https://name[:port]). */
  async add(route: TailscaleRoute): Promise<string> {
    const name = await this.dnsName();
    await this.run([route.mode, "--bg", "--yes", `--https=${route.httpsPort}`, `--set-path=${route.path}`, route.target]);
    return route.httpsPort === 443 ? `https://${name}` : `https://${name}:${route.httpsPort}`;
  }

  /** Removes a route set by `add` (a route already gone is not an error). */
  async remove(route: Omit<TailscaleRoute, "target">): Promise<void> {
    await this.run([route.mode, `--https=${route.httpsPort}`, `--set-path=${route.path}`, "off"]).catch((err: VoiceCallError) => {
      if (!/not found|no serve config|does not exist|nothing to/i.test(err.message)) throw err;
    });
  }

  private run(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(this.bin, args, { timeout: CLI_TIMEOUT_MS, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") {
          return reject(new VoiceCallError("UNAVAILABLE", `the tailscale CLI (${this.bin}) is not installed: install Tailscale, or set publicUrl instead`));
        }
        const said = `${stderr}`.trim().split("\n").slice(0, 4).join(" ") || `${stdout}`.trim().split("\n")[0] || err.message;
        const why = err.killed ? `did not finish in ${CLI_TIMEOUT_MS / 1000} s (Funnel may need approval in the tailnet's admin console)` : `failed: ${said}`;
        reject(new VoiceCallError("UNAVAILABLE", `tailscale ${args[0]} ${why}`));
      });
    });
  }
}
