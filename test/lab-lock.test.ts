/** One lab per root: a second start says who holds it and never touches the running one. */
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { acquireLabLock } from "../src/lab/lock.js";
import { tempDir } from "./helpers.js";

describe("lab lock", () => {
  it("refuses while a live process holds it, naming the process; frees on release", async () => {
    const path = join(tempDir(), "lab-root.lock");
    const first = await acquireLabLock(path);
    await expect(acquireLabLock(path)).rejects.toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining(`process ${process.pid} holds`) });
    first.release();
    expect(existsSync(path)).toBe(false);
    (await acquireLabLock(path)).release();
  });

  it("waits for the holder when asked, and takes over a lock whose process is gone", async () => {
    const path = join(tempDir(), "lab-root.lock");
    const held = await acquireLabLock(path);
    const waiting: number[] = [];
    setTimeout(() => held.release(), 300);
    const second = await acquireLabLock(path, 5000, (pid) => waiting.push(pid));
    expect(waiting).toEqual([process.pid]);
    second.release();
    // A pid that no longer runs (a shell that exited).
    const gone = Number(spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim());
    writeFileSync(path, `${gone}\n`);
    (await acquireLabLock(path)).release();
  });
});
