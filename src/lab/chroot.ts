/**
 * The PBX lab's chroot back-end: a real Asterisk 22 in a debootstrap'd Debian
 * sid root, for machines without Docker. Builds the root once (cached,
 * progress shown), renders the lab's config into it, starts Asterisk on
 * loopback ports, and stops it cleanly. Needs root.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { acquireLabLock, isAlive, type LabLock } from "./lock.js";
import {
  ariHeaders,
  ariUnanswered,
  ASTERISK_DIR,
  defaultLabRoot,
  labInfo,
  labLockPath,
  labSlot,
  labVariables,
  renderLabConfig,
  waitForAri,
  type LabInfo,
  type LabOptions,
} from "./config.js";
import type { ExecResult, Lab } from "./lab.js";

/** Why the chroot back-end cannot run here, or undefined when it can. */
export function chrootUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return "it needs Linux (debootstrap, chroot)";
  if (process.getuid?.() !== 0) return "it needs root (debootstrap, chroot, mount)";
  if (!existsSync("/usr/sbin/chroot") && !existsSync("/usr/bin/chroot")) return "chroot is not installed";
  return undefined;
}

export function isLabBuilt(root = defaultLabRoot()): boolean {
  return existsSync(join(root, "VERSION")) && existsSync(join(root, "usr", "sbin", "asterisk"));
}

/** Builds the root if it is missing; prints each stage through onProgress. */
export async function ensureLabRoot(root = defaultLabRoot(), onProgress: (line: string) => void = () => {}): Promise<void> {
  if (isLabBuilt(root)) return;
  const reason = chrootUnavailableReason();
  if (reason) throw new Error(`the PBX lab cannot be built here: ${reason}`);
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

export class ChrootLab implements Lab {
  readonly backend = "chroot" as const;
  readonly info: LabInfo;
  readonly root: string;
  private child: ChildProcess | null = null;
  private output = "";
  private lock: LabLock | null = null;
  /** An Asterisk taken over from an earlier run (not our child). */
  private adoptedPid?: number;

  private constructor(root: string, info: LabInfo) {
    this.root = root;
    this.info = info;
  }

  /**
   * Builds the root if needed, renders config and starts Asterisk. A lab
   * already running on this machine is never touched: this waits for it
   * (waitForLabMs) or refuses, naming its process.
   */
  static async start(options: LabOptions = {}): Promise<ChrootLab> {
    const root = options.root ?? defaultLabRoot();
    // One root runs one Asterisk: labs beside it run in containers on other slots.
    if (labSlot(options) !== 0) throw new Error(`the chroot lab runs only on slot 0 (asked for slot ${options.slot}); other slots need the container lab`);
    await ensureLabRoot(root, options.onProgress);
    const lock = await acquireLabLock(labLockPath(0, root), options.waitForLabMs ?? 0, (pid) =>
      options.onProgress?.(`waiting for the lab that process ${pid} runs to stop`),
    );
    const lab = new ChrootLab(root, chrootInfo(root, options));
    lab.lock = lock;
    try {
      if (options.adoptLeftover && (await lab.adopt(options.onProgress))) return lab;
      lab.render();
      await lab.boot();
    } catch (err) {
      await lab.stop();
      throw err;
    }
    return lab;
  }

  /** The lab's tools (sipp) in the root, for a lab another process runs on this machine. */
  static attach(options: LabOptions = {}): ChrootLab | undefined {
    const root = options.root ?? defaultLabRoot();
    return isLabBuilt(root) ? new ChrootLab(root, chrootInfo(root, options)) : undefined;
  }

  /** Starts Asterisk again (after stop or kill) with the same config. */
  async boot(): Promise<void> {
    // Gone, not only signalled: an Asterisk still dying holds its control socket, and a new one would refuse to start.
    await killProcessesIn(this.root);
    const proc = join(this.root, "proc");
    if (spawnSync("mountpoint", ["-q", proc]).status !== 0) run("mount", ["-t", "proc", "proc", proc]);
    // ARI records bridges into the spool's recording folder, which the package does not make.
    for (const dir of ["var/run/asterisk", "var/log/asterisk", "var/lib/asterisk", "var/spool/asterisk/recording"]) {
      mkdirSync(join(this.root, dir), { recursive: true });
    }
    rmSync(join(this.root, "var/run/asterisk/asterisk.ctl"), { force: true });
    this.output = "";
    const child = spawn("chroot", [this.root, "/usr/sbin/asterisk", "-f", "-n", "-C", "/etc/asterisk/asterisk.conf"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (this.output = (this.output + d).slice(-20_000)));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.output = (this.output + d).slice(-20_000)));
    this.child = child;
    await waitForAri(this.info, 20_000, () => (child.exitCode !== null ? "Asterisk exited during start" : undefined), () => this.output);
    // ARI can answer before every module (SIP among them) has loaded.
    this.cli("core waitfullybooted", 20_000);
  }

  /**
   * Takes over an Asterisk an earlier run left in the root (its process died
   * without stopping it): only when its config is exactly what this lab
   * renders and its ARI answers with this lab's credentials. True when taken.
   */
  private async adopt(onProgress?: (line: string) => void): Promise<boolean> {
    const pid = processesIn(this.root).find((p) => readCmdline(p).includes("/usr/sbin/asterisk"));
    if (pid === undefined) return false;
    const target = join(this.root, "etc", "asterisk");
    const same = [...renderLabConfig(labVariables(this.info))].every(([file, text]) => {
      try {
        return readFileSync(join(target, file), "utf8") === text;
      } catch {
        return false;
      }
    });
    if (!same || (await ariUnanswered(this.info, 2000)) !== undefined) return false;
    this.adoptedPid = pid;
    onProgress?.(`took over the Asterisk an earlier run left running (pid ${pid}), with its calls`);
    return true;
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
    } else if (this.adoptedPid !== undefined) {
      // Not our child: asked to stop, then waited for (up to 5 s) through /proc.
      await stopProcess(this.adoptedPid, 5000);
    }
    this.adoptedPid = undefined;
    await killProcessesIn(this.root);
    const proc = join(this.root, "proc");
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

  exec(command: string, args: string[], options: { timeoutMs?: number } = {}): ExecResult {
    const r = spawnSync("chroot", [this.root, command, ...args], { encoding: "utf8", timeout: options.timeoutMs ?? 30_000 });
    return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  spawn(command: string, args: string[]): ChildProcess {
    return spawn("chroot", [this.root, command, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  }

  cli(command: string, timeoutMs?: number): string {
    return this.exec("/usr/sbin/asterisk", ["-C", "/etc/asterisk/asterisk.conf", "-rx", command], { timeoutMs }).stdout;
  }

  hostPath(inside: string): string {
    return join(this.root, inside);
  }

  get log(): string {
    return this.output;
  }

  get ariHeaders(): { authorization: string } {
    return ariHeaders(this.info);
  }

  private render(): void {
    // Names resolve from the root's own files only: Asterisk and sipp look
    // up the machine's name (A and AAAA), which must never reach DNS.
    const host = hostname();
    writeFileSync(join(this.root, "etc", "hosts"), `127.0.0.1 localhost\n127.0.1.1 ${host}\n::1 localhost ip6-localhost ${host}\n`);
    writeFileSync(join(this.root, "etc", "nsswitch.conf"), "hosts: files\nnetworks: files\n");
    const target = join(this.root, "etc", "asterisk");
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    for (const [file, text] of renderLabConfig(labVariables(this.info))) writeFileSync(join(target, file), text);
  }
}

function chrootInfo(root: string, options: LabOptions): LabInfo {
  return labInfo("chroot", options, readFileSync(join(root, "VERSION"), "utf8").trim());
}

/** The processes running inside the root. */
function processesIn(root: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readlinkSync(`/proc/${pid}/root`) === root) out.push(Number(pid));
    } catch {
      // The process ended meanwhile, or is not ours to inspect: not counted.
    }
  }
  return out;
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

/** Ends processes left running inside the root by an earlier run, and waits (5 s at most) until they are gone. */
async function killProcessesIn(root: string): Promise<void> {
  const pids = processesIn(root);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Ended meanwhile.
    }
  }
  const until = performance.now() + 5000;
  while (pids.some(isAlive) && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
}

/** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
async function stopProcess(pid: number, graceMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, "SIGTERM");
  const until = performance.now() + graceMs;
  while (isAlive(pid) && performance.now() < until) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, "SIGKILL");
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}
