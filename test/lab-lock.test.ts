/** One lab per root: a second start says who holds it and never touches the running one. */
import { spawn, spawnSync } from "node:child_process";
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

  it("a stale lock that several starts find at once is taken by exactly one", async () => {
    const path = join(tempDir(), "lab-root.lock");
    const gone = Number(spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim());
    writeFileSync(path, `${gone}\n`);
    const at = Date.now() + 1500;
    // Each start tries once at the same instant, and holds what it got until every other has tried.
    const script = `import { acquireLabLock } from ${JSON.stringify(join(import.meta.dirname, "..", "dist", "lab", "lock.js"))};
      while (Date.now() < ${at}) {}
      const got = await acquireLabLock(${JSON.stringify(path)}).then(() => "got", () => "refused");
      console.log(got);
      setTimeout(() => process.exit(0), 1500);`;
    const results = await Promise.all(
      Array.from({ length: 6 }, () => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        return new Promise<string>((resolve) => child.once("exit", () => resolve(out.trim())));
      }),
    );
    expect(results.filter((r) => r === "got")).toHaveLength(1);
    expect(results.filter((r) => r === "refused")).toHaveLength(5);
  }, 20_000);
});
