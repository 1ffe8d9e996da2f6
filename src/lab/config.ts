/**
 * What both lab back-ends share: where the project's PBX config lives, the
 * lab's ports and credentials, rendering the config with the lab's test
 * endpoints, and waiting for ARI.
 */
import { readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ASTERISK_DIR = resolve(fileURLToPath(new URL("../../asterisk", import.meta.url)));

export type LabBackend = "chroot" | "container";

export interface LabOptions {
  /** chroot: a debootstrap'd root run with chroot (needs root); container: the lab image under Docker. Default: the first that can run here. */
  backend?: LabBackend;
  /** chroot back-end: where the sid root lives; built there when missing. */
  root?: string;
  /** container back-end: the lab image (built from asterisk/lab/Dockerfile). */
  image?: string;
  httpPort?: number;
  sipPort?: number;
  rtpStart?: number;
  rtpEnd?: number;
  ariUser?: string;
  ariPassword?: string;
  ariApp?: string;
  labPhonePassword?: string;
  uasPort?: number;
  /**
   * Which set of loopback ports (and lock) the lab uses: labs on different
   * slots run side by side. Slot 0 (the default) is the lab npm start runs,
   * and the only one the chroot back-end has (one root, one Asterisk).
   */
  slot?: number;
  onProgress?: (line: string) => void;
  /** When another lab runs on this machine: wait this long for it to stop (default 0: refuse at once). */
  waitForLabMs?: number;
  /**
   * An Asterisk (the chroot root's, or the slot's container) left running
   * by a process that died (killed mid-call), on the same config, is taken
   * over with its calls instead of restarted, so a restarted service can
   * take those calls back (voicecall serve --lab). Default false: a fresh one.
   */
  adoptLeftover?: boolean;
}

export interface LabInfo {
  backend: LabBackend;
  slot: number;
  ariUrl: string;
  ariUser: string;
  ariPassword: string;
  ariApp: string;
  sipHost: string;
  sipPort: number;
  rtpStart: number;
  rtpEnd: number;
  labPhonePassword: string;
  uasPort: number;
  version: string;
}

export function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "openclaw-voice-call");
}

export function defaultLabRoot(): string {
  return join(cacheDir(), "lab-root");
}

/** Slots a machine offers; each is its own ports: ARI 18088 + 100n, SIP 15060 + 100n, the callee 15070 + 100n, RTP 30000 + 1000n to +999. */
export const LAB_SLOTS = 4;

/** The slot `options` name, checked. */
export function labSlot(options: Pick<LabOptions, "slot">): number {
  const slot = options.slot ?? 0;
  if (!Number.isInteger(slot) || slot < 0 || slot >= LAB_SLOTS) throw new Error(`lab slot ${slot}: expected 0 to ${LAB_SLOTS - 1}`);
  return slot;
}

/**
 * One lab per slot at a time on a machine, whichever back-end: a slot's
 * labs use the same loopback ports. Slot 0's lock sits beside the chroot root
 * (npm start and the tests on slot 0 exclude each other); the others' in the cache folder.
 */
export function labLockPath(slot = 0, root = defaultLabRoot()): string {
  return slot === 0 ? `${root}.lock` : join(cacheDir(), `lab-slot-${slot}.lock`);
}

export function labInfo(backend: LabBackend, options: LabOptions, version: string): LabInfo {
  const slot = labSlot(options);
  return {
    backend,
    slot,
    ariUrl: `http://127.0.0.1:${options.httpPort ?? 18088 + 100 * slot}`,
    ariUser: options.ariUser ?? "voicecall",
    ariPassword: options.ariPassword ?? "voicecall-lab-secret",
    ariApp: options.ariApp ?? "voicecall",
    sipHost: "127.0.0.1",
    sipPort: options.sipPort ?? 15060 + 100 * slot,
    rtpStart: options.rtpStart ?? 30000 + 1000 * slot,
    rtpEnd: options.rtpEnd ?? 30999 + 1000 * slot,
    labPhonePassword: options.labPhonePassword ?? "lab-phone-6001",
    uasPort: options.uasPort ?? 15070 + 100 * slot,
    version,
  };
}

/** The values of the config's @NAME@ placeholders for a lab (the same names the image's entrypoint reads from its environment). */
export function labVariables(info: LabInfo): Record<string, string> {
  return {
    HTTP_BIND: "127.0.0.1",
    HTTP_PORT: String(new URL(info.ariUrl).port),
    ARI_USER: info.ariUser,
    ARI_PASSWORD: info.ariPassword,
    ARI_APP: info.ariApp,
    RTP_START: String(info.rtpStart),
    RTP_END: String(info.rtpEnd),
    SIP_BIND: info.sipHost,
    SIP_PORT: String(info.sipPort),
    LAB_PHONE_PASSWORD: info.labPhonePassword,
    LAB_UAS_HOST: "127.0.0.1",
    LAB_UAS_PORT: String(info.uasPort),
  };
}

/**
 * The lab's Asterisk config, file name -> rendered text: the deployed config
 * (asterisk/etc) plus the lab's test endpoints (asterisk/lab/etc).
 */
export function renderLabConfig(vars: Record<string, string>): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of [join(ASTERISK_DIR, "etc"), join(ASTERISK_DIR, "lab", "etc")]) {
    for (const file of readdirSync(dir)) files.set(file, renderTemplate(readFileSync(join(dir, file), "utf8"), vars));
  }
  return files;
}

/** Replaces @NAME@ placeholders; an unknown placeholder is an error, never left in place. */
export function renderTemplate(text: string, vars: Record<string, string>): string {
  return text.replace(/@([A-Z_]+)@/g, (_m, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`asterisk config placeholder @${name}@ has no value`);
    return value;
  });
}

export function ariHeaders(info: LabInfo): { authorization: string } {
  return { authorization: `Basic ${Buffer.from(`${info.ariUser}:${info.ariPassword}`).toString("base64")}` };
}

/**
 * Waits until ARI answers with the lab's credentials; `failed()` names why to
 * stop early (Asterisk exited), `log()` is appended to the error.
 */
/** Whether the lab's ARI answers with its credentials within `timeoutMs`: undefined when it does, else why not. */
export async function ariUnanswered(info: LabInfo, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(`${info.ariUrl}/ari/asterisk/info`, { headers: ariHeaders(info), signal: AbortSignal.timeout(timeoutMs) });
    return res.ok ? undefined : `HTTP ${res.status}`;
  } catch (err) {
    return String((err as Error).message);
  }
}

export async function waitForAri(info: LabInfo, timeoutMs: number, failed: () => string | undefined = () => undefined, log: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const reason = failed();
    if (reason) throw new Error(`${reason}:\n${log().slice(-3000)}`);
    const unanswered = await ariUnanswered(info, 1000);
    if (unanswered === undefined) return;
    last = unanswered;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ARI did not answer within ${timeoutMs} ms (${last}):\n${log().slice(-3000)}`);
}
