/**
 * One lab per root at a time. Two labs on one machine share the root and its
 * ports, and starting one kills whatever runs in the root: so a start takes a
 * lock file beside the root (the holder's pid), refuses while a live process
 * holds it (naming that process), or waits for it when asked to.
 */
import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

/**
 * Creates `path` holding our pid, or fails with EEXIST when it exists. Made
 * whole, then linked into place: a file created empty and written after
 * reads, to a start looking at that moment, as a lock nobody holds.
 */
function create(path: string): void {
  const temp = `${path}.${process.pid}`;
  writeFileSync(temp, `${process.pid}\n`, { mode: 0o644 });
  try {
    linkSync(temp, path);
  } finally {
    rmSync(temp, { force: true });
  }
}

function tryLock(path: string): LabLock | number {
  try {
    create(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const holder = liveHolder(path);
    if (holder !== undefined) return holder;
    // Left by a process that died without releasing it. Taken over under a second lock: two starts that both
    // found it stale once both removed it and both made it anew, each then holding "the" lock (seen in a suite
    // run: two labs booting in one root, "Asterisk already running").
    // Twice: the first may only clear a takeover its start died in.
    if (!takeOver(path) && !takeOver(path)) return liveHolder(path) ?? liveHolder(`${path}.takeover`) ?? 0;
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off("exit", release);
    if (liveHolder(path) === process.pid) rmSync(path, { force: true });
  };
  process.once("exit", release);
  return { release };
}

/** Replaces a stale lock with ours while holding `path.takeover`; false when another start is at it. */
function takeOver(path: string): boolean {
  const guard = `${path}.takeover`;
  try {
    create(guard);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    // A start that died mid-takeover: cleared for the next try.
    if (liveHolder(guard) === undefined) rmSync(guard, { force: true });
    return false;
  }
  try {
    if (liveHolder(path) !== undefined) return false;
    rmSync(path, { force: true });
    create(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    rmSync(guard, { force: true });
  }
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
