/**
 * The PBX lab: a real Asterisk 22 in a debootstrap'd Debian sid root, for
 * machines without Docker. Builds the root once (cached, progress shown),
 * renders the project's asterisk/etc config into it, starts Asterisk on
 * loopback ports, waits for ARI, and stops it cleanly. Needs root.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { acquireLabLock, type LabLock } from "./lock.js";

export const ASTERISK_DIR = resolve(fileURLToPath(new URL("../../asterisk", import.meta.url)));

export interface LabOptions {
  /** Where the sid root lives; built there when missing. */
  root?: string;
  httpPort?: number;
  sipPort?: number;
  rtpStart?: number;
  rtpEnd?: number;
  ariUser?: string;
  ariPassword?: string;
  ariApp?: string;
  labPhonePassword?: string;
  uasPort?: number;
  onProgress?: (line: string) => void;
  /** When another lab runs in the same root: wait this long for it to stop (default 0: refuse at once). */
  waitForLabMs?: number;
}

export interface LabInfo {
  root: string;
  ariUrl: string;
  ariUser: string;
  ariPassword: string;
  ariApp: string;
  sipHost: string;
  sipPort: number;
  labPhonePassword: string;
  uasPort: number;
  version: string;
}

export function defaultLabRoot(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "openclaw-voice-call", "lab-root");
}

/** Why the lab cannot run here, or undefined when it can. */
export function labUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return "the PBX lab needs Linux (debootstrap, chroot)";
  if (process.getuid?.() !== 0) return "the PBX lab needs root (debootstrap, chroot, mount) and no Docker engine is available";
  if (!existsSync("/usr/sbin/chroot") && !existsSync("/usr/bin/chroot")) return "chroot is not installed";
  return undefined;
}

export function isLabBuilt(root = defaultLabRoot()): boolean {
  return existsSync(join(root, "VERSION")) && existsSync(join(root, "usr", "sbin", "asterisk"));
}

/** Builds the root if it is missing; prints each stage through onProgress. */
export async function ensureLabRoot(root = defaultLabRoot(), onProgress: (line: string) => void = () => {}): Promise<void> {
  if (isLabBuilt(root)) return;
  const reason = labUnavailableReason();
  if (reason) throw new Error(reason);
  mkdirSync(join(root, ".."), { recursive: true });
  onProgress(`building the PBX lab in ${root} (about a minute, once)`);
  await new Promise<void>((resolveBuild, reject) => {
    const child = spawn("bash", [join(ASTERISK_DIR, "lab", "build-root.sh"), root], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => d.split("\n").filter(Boolean).forEach((l) => onProgress(l)));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("exit", (code) => (code === 0 ? resolveBuild() : reject(new Error(`building the PBX lab failed (exit ${code}): ${err.trim().slice(-2000)}`))));
  });
}

export class Lab {
  readonly info: LabInfo;
  private child: ChildProcess | null = null;
  private output = "";
  private lock: LabLock | null = null;

  private constructor(info: LabInfo) {
    this.info = info;
  }

  /**
   * Builds the root if needed, renders config and starts Asterisk. A lab
   * already running in the same root is never touched: this waits for it
   * (waitForLabMs) or refuses, naming its process.
   */
  static async start(options: LabOptions = {}): Promise<Lab> {
    const root = options.root ?? defaultLabRoot();
    await ensureLabRoot(root, options.onProgress);
    const lock = await acquireLabLock(`${root}.lock`, options.waitForLabMs ?? 0, (pid) =>
      options.onProgress?.(`waiting for the lab that process ${pid} runs in ${root} to stop`),
    );
    const lab = new Lab(labInfo(options));
    lab.lock = lock;
    try {
      lab.render(options.rtpStart ?? 30000, options.rtpEnd ?? 30999);
      await lab.boot();
    } catch (err) {
      await lab.stop();
      throw err;
    }
    return lab;
  }

  /** The lab another process started (voicecall serve --lab), to run the lab phone against it. */
  static async running(options: LabOptions = {}): Promise<Lab> {
    const reason = labUnavailableReason();
    if (reason) throw new Error(reason);
    if (!isLabBuilt(options.root ?? defaultLabRoot())) throw new Error("the PBX lab is not built yet: start it with npm start (voicecall serve --lab)");
    const lab = new Lab(labInfo(options));
    try {
      await lab.waitForAri(1500, false);
    } catch {
      throw new Error(`the PBX lab is not running (no ARI at ${lab.info.ariUrl}): start it with npm start (voicecall serve --lab)`);
    }
    return lab;
  }

  /** Starts Asterisk again (after stop or kill) with the same config. */
  async boot(): Promise<void> {
    killProcessesIn(this.info.root);
    const proc = join(this.info.root, "proc");
    if (spawnSync("mountpoint", ["-q", proc]).status !== 0) run("mount", ["-t", "proc", "proc", proc]);
    for (const dir of ["var/run/asterisk", "var/log/asterisk", "var/lib/asterisk", "var/spool/asterisk"]) {
      mkdirSync(join(this.info.root, dir), { recursive: true });
    }
    rmSync(join(this.info.root, "var/run/asterisk/asterisk.ctl"), { force: true });
    this.output = "";
    const child = spawn("chroot", [this.info.root, "/usr/sbin/asterisk", "-f", "-n", "-C", "/etc/asterisk/asterisk.conf"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (this.output = (this.output + d).slice(-20_000)));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.output = (this.output + d).slice(-20_000)));
    this.child = child;
    await this.waitForAri(20_000);
    // ARI can answer before every module (SIP among them) has loaded.
    this.cli("core waitfullybooted", 20_000);
  }

  /** Stops Asterisk gracefully and unmounts the root's /proc. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child && child.exitCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    killProcessesIn(this.info.root);
    const proc = join(this.info.root, "proc");
    // A root left with /proc mounted is dangerous to delete; never leave it so.
    if (spawnSync("mountpoint", ["-q", proc]).status === 0) spawnSync("umount", ["-l", proc]);
    this.lock?.release();
    this.lock = null;
  }

  /** Kills Asterisk at once, as a crash would. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGKILL");
    await exited;
  }

  /** Runs a command inside the root (sipp, baresip, asterisk -rx). */
  exec(command: string, args: string[], options: { timeoutMs?: number } = {}): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync("chroot", [this.info.root, command, ...args], { encoding: "utf8", timeout: options.timeoutMs ?? 30_000 });
    return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  /** Starts a long-running command inside the root. */
  spawn(command: string, args: string[]): ChildProcess {
    return spawn("chroot", [this.info.root, command, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  }

  /** Runs an Asterisk CLI command. */
  cli(command: string, timeoutMs?: number): string {
    return this.exec("/usr/sbin/asterisk", ["-C", "/etc/asterisk/asterisk.conf", "-rx", command], { timeoutMs }).stdout;
  }

  /** A path inside the root as seen from the host. */
  hostPath(inside: string): string {
    return join(this.info.root, inside);
  }

  get log(): string {
    return this.output;
  }

  private render(rtpStart: number, rtpEnd: number): void {
    const vars: Record<string, string> = {
      HTTP_BIND: "127.0.0.1",
      HTTP_PORT: String(new URL(this.info.ariUrl).port),
      ARI_USER: this.info.ariUser,
      ARI_PASSWORD: this.info.ariPassword,
      ARI_APP: this.info.ariApp,
      RTP_START: String(rtpStart),
      RTP_END: String(rtpEnd),
      SIP_BIND: this.info.sipHost,
      SIP_PORT: String(this.info.sipPort),
      LAB_PHONE_PASSWORD: this.info.labPhonePassword,
      LAB_UAS_HOST: "127.0.0.1",
      LAB_UAS_PORT: String(this.info.uasPort),
    };
    // Names resolve from the root's own files only: Asterisk and sipp look
    // up the machine's name (A and AAAA), which must never reach DNS.
    const host = hostname();
    writeFileSync(join(this.info.root, "etc", "hosts"), `127.0.0.1 localhost\n127.0.1.1 ${host}\n::1 localhost ip6-localhost ${host}\n`);
    writeFileSync(join(this.info.root, "etc", "nsswitch.conf"), "hosts: files\nnetworks: files\n");
    const target = join(this.info.root, "etc", "asterisk");
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    for (const file of readdirSync(join(ASTERISK_DIR, "etc"))) {
      writeFileSync(join(target, file), renderTemplate(readFileSync(join(ASTERISK_DIR, "etc", file), "utf8"), vars));
    }
  }

  /** Headers for the lab's ARI (HTTP basic auth with the lab's user). */
  get ariHeaders(): { authorization: string } {
    return { authorization: `Basic ${Buffer.from(`${this.info.ariUser}:${this.info.ariPassword}`).toString("base64")}` };
  }

  private async waitForAri(timeoutMs: number, ownProcess = true): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      if (ownProcess && this.child?.exitCode !== null) throw new Error(`Asterisk exited during start:\n${this.output.slice(-3000)}`);
      try {
        const res = await fetch(`${this.info.ariUrl}/ari/asterisk/info`, { headers: this.ariHeaders, signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = String((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`ARI did not answer within ${timeoutMs} ms (${last}):\n${this.output.slice(-3000)}`);
  }
}

function labInfo(options: LabOptions): LabInfo {
  const root = options.root ?? defaultLabRoot();
  const httpPort = options.httpPort ?? 18088;
  return {
    root,
    ariUrl: `http://127.0.0.1:${httpPort}`,
    ariUser: options.ariUser ?? "voicecall",
    ariPassword: options.ariPassword ?? "voicecall-lab-secret",
    ariApp: options.ariApp ?? "voicecall",
    sipHost: "127.0.0.1",
    sipPort: options.sipPort ?? 15060,
    labPhonePassword: options.labPhonePassword ?? "lab-phone-6001",
    uasPort: options.uasPort ?? 15070,
    version: readFileSync(join(root, "VERSION"), "utf8").trim(),
  };
}

/** Replaces @NAME@ placeholders; an unknown placeholder is an error, never left in place. */
export function renderTemplate(text: string, vars: Record<string, string>): string {
  return text.replace(/@([A-Z_]+)@/g, (_m, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`asterisk config placeholder @${name}@ has no value`);
    return value;
  });
}

/** Ends processes left running inside the root by an earlier run. */
function killProcessesIn(root: string): void {
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readlinkSync(`/proc/${pid}/root`) === root) process.kill(Number(pid), "SIGKILL");
    } catch {
      // The process ended meanwhile, or is not ours to inspect: nothing to do.
    }
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}
