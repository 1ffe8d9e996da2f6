/**
 * A stand-in for the `tailscale` CLI: an executable that records each
 * invocation and answers `status --json`, `serve` and `funnel` the way the
 * real CLI does, from a state file the test changes (logged in or not,
 * Funnel allowed or not).
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface FakeTailscaleState {
  backendState: string;
  dnsName: string;
  /** Set: funnel/serve commands fail with this text on stderr. */
  refuse?: string;
}

export class FakeTailscale {
  readonly bin: string;
  /** The folder holding `tailscale`, to put first on PATH. */
  readonly dir: string;
  private readonly stateFile: string;
  private readonly logFile: string;

  constructor(root: string, state: Partial<FakeTailscaleState> = {}) {
    this.dir = join(root, "bin");
    mkdirSync(this.dir, { recursive: true });
    this.bin = join(this.dir, "tailscale");
    this.stateFile = join(root, "tailscale-state.json");
    this.logFile = join(root, "tailscale-calls.jsonl");
    writeFileSync(this.logFile, "");
    this.set({ backendState: "Running", dnsName: "box.tail1234.ts.net.", ...state });
    writeFileSync(
      this.bin,
      `#!${process.execPath}
const fs = require("node:fs");
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(this.logFile)}, JSON.stringify(args) + "\\n");
const state = JSON.parse(fs.readFileSync(${JSON.stringify(this.stateFile)}, "utf8"));
if (args[0] === "status") {
  process.stdout.write(JSON.stringify({ BackendState: state.backendState, Self: { DNSName: state.dnsName, HostName: "box" } }));
} else if (args[0] === "serve" || args[0] === "funnel") {
  if (state.refuse) { process.stderr.write(state.refuse + "\\n"); process.exit(1); }
  if (args.at(-1) !== "off") process.stdout.write("Available on the internet:\\n\\nhttps://" + state.dnsName.replace(/\\.$/, "") + "/\\n");
} else {
  process.stderr.write("unknown command " + args[0] + "\\n"); process.exit(2);
}
`,
    );
    chmodSync(this.bin, 0o755);
  }

  set(state: Partial<FakeTailscaleState>): void {
    let current: Partial<FakeTailscaleState> = {};
    try {
      current = JSON.parse(readFileSync(this.stateFile, "utf8"));
    } catch {
      // first write
    }
    writeFileSync(this.stateFile, JSON.stringify({ ...current, ...state }));
  }

  /** Every invocation so far, as argument lists. */
  calls(): string[][] {
    return readFileSync(this.logFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as string[]);
  }
}
