/**
 * One lab per root at a time. Two labs on one machine share the root and its
 * ports, and starting one kills whatever runs in the root: so a start takes a
 * lock file beside the root (the holder's pid), refuses while a live process
 * holds it (naming that process), or waits for it when asked to.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { VoiceCallError } from "../errors.js";

export interface LabLock {
  release(): void;
}

/** Whether process `pid` is running. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive but not ours to signal; ESRCH: gone.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid holding `path`, if that process is alive. */
function liveHolder(path: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(path, "utf8").trim());
  } catch {
    return undefined;
  }
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

function tryLock(path: string): LabLock | number {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        process.off("exit", release);
        if (liveHolder(path) === process.pid) rmSync(path, { force: true });
      };
      process.once("exit", release);
      return { release };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = liveHolder(path);
      if (holder !== undefined) return holder;
      // Left by a process that died without releasing it.
      rmSync(path, { force: true });
    }
  }
  return liveHolder(path) ?? 0;
}

/** Takes the lock, waiting up to `waitMs` for another lab to stop; throws naming the holder. */
export async function acquireLabLock(path: string, waitMs = 0, onWait?: (pid: number) => void): Promise<LabLock> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const got = tryLock(path);
    if (typeof got !== "number") return got;
    if (Date.now() >= deadline) {
      throw new VoiceCallError(
        "UNAVAILABLE",
        `the PBX lab is already running here (process ${got} holds ${path}); stop it first, or use voicecall lab call/answer to talk to it`,
      );
    }
    if (!told) onWait?.(got);
    told = true;
    await new Promise((r) => setTimeout(r, 250));
  }
}
