/**
 * The PBX lab: a real Asterisk 22 on loopback ports with the project's PBX
 * config plus the lab's test endpoints, and sipp as the lab phone. One
 * interface, two back-ends: a debootstrap'd root run with chroot (needs
 * root, no Docker), or the lab image under Docker (testcontainers).
 */
import type { ChildProcess } from "node:child_process";
import { ChrootLab, chrootUnavailableReason } from "./chroot.js";
import { ariUnanswered, type LabBackend, type LabInfo, type LabOptions } from "./config.js";
import { ContainerLab, containerUnavailableReason } from "./container.js";

export { ASTERISK_DIR, defaultLabRoot, renderTemplate, type LabBackend, type LabInfo, type LabOptions } from "./config.js";
export { ensureLabRoot, isLabBuilt } from "./chroot.js";

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Where the lab phone runs: a folder shared with the host, and a way to start a tool (sipp) there. */
export interface LabTools {
  /** A path the lab's tools see (under /tmp), as the host sees it. */
  hostPath(inside: string): string;
  spawn(command: string, args: string[]): ChildProcess;
}

export interface Lab extends LabTools {
  readonly backend: LabBackend;
  readonly info: LabInfo;
  /** HTTP basic auth for the lab's ARI. */
  readonly ariHeaders: { authorization: string };
  /** Asterisk's recent console output. */
  readonly log: string;
  /** Runs a command where Asterisk runs (sipp, asterisk -rx). */
  exec(command: string, args: string[], options?: { timeoutMs?: number }): ExecResult;
  /** Runs an Asterisk CLI command. */
  cli(command: string, timeoutMs?: number): string;
  /** Starts Asterisk again (after kill) with the same config. */
  boot(): Promise<void>;
  /** Kills Asterisk at once, as a crash would. */
  kill(): Promise<void>;
  /** Stops Asterisk and frees the lab for the next one. */
  stop(): Promise<void>;
}

export const LAB_BACKENDS: readonly LabBackend[] = ["chroot", "container"];

/** Why `backend` cannot run here (or, without one, why neither can); undefined when it can. */
export function labUnavailableReason(backend?: LabBackend): string | undefined {
  if (backend === "chroot") return chrootUnavailableReason();
  if (backend === "container") return containerUnavailableReason();
  const chroot = chrootUnavailableReason();
  if (!chroot) return undefined;
  const container = containerUnavailableReason();
  if (!container) return undefined;
  return `the chroot lab: ${chroot}; the container lab: ${container}`;
}

/**
 * The back-end a lab starts on: VOICECALL_LAB_BACKEND when set, else the
 * chroot one where it can run, else the container one; on a slot other than
 * 0, always the container one (the chroot root runs one Asterisk, on slot 0).
 */
export function defaultLabBackend(slot = 0): LabBackend {
  if (slot !== 0) return "container";
  const chosen = process.env.VOICECALL_LAB_BACKEND;
  if (chosen === "chroot" || chosen === "container") return chosen;
  return chrootUnavailableReason() === undefined ? "chroot" : "container";
}

export const Lab = {
  /**
   * Starts a lab (building the chroot root if needed). A lab already running
   * on this machine is never touched: this waits for it (waitForLabMs) or
   * refuses, naming its process.
   */
  async start(options: LabOptions = {}): Promise<Lab> {
    const backend = options.backend ?? defaultLabBackend(options.slot);
    const reason = labUnavailableReason(backend);
    if (reason) throw new Error(`the ${backend} lab cannot run here: ${reason}`);
    return backend === "container" ? ContainerLab.start(options) : ChrootLab.start(options);
  },

  /** The lab another process started (voicecall serve --lab), to run the lab phone against it. */
  async running(options: LabOptions = {}): Promise<Lab> {
    const onChroot = (options.slot ?? 0) === 0 && chrootUnavailableReason() === undefined;
    const lab = ContainerLab.attach(options) ?? (onChroot ? ChrootLab.attach(options) : undefined);
    if (!lab) {
      const reason = labUnavailableReason();
      throw new Error(`the PBX lab is not running here: start it with npm start (voicecall serve --lab)${reason ? ` (${reason})` : ""}`);
    }
    if ((await ariUnanswered(lab.info, 1500)) === undefined) return lab;
    throw new Error(`the PBX lab is not running (no ARI at ${lab.info.ariUrl}): start it with npm start (voicecall serve --lab)`);
  },
};
