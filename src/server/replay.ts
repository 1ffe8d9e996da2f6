/**
 * Webhook replay protection: a verified delivery's key is remembered for the
 * window (10 minutes), and a second delivery with the same key is
 * acknowledged without effect. Keys are appended to a file beside the call
 * log, so a restart inside the window does not reopen it. A disk that refuses
 * the write does not stop protection: the key is held in memory (and the
 * failure logged once).
 */
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log.js";

export const REPLAY_WINDOW_MS = 10 * 60 * 1000;
const FILE = "webhook-replay.jsonl";
/** Keys held at most; past it the oldest go first (a flood of distinct valid deliveries cannot grow memory without bound). */
const MAX_KEYS = 100_000;

export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  private writeFailed = false;

  private constructor(
    private readonly path: string | undefined,
    private readonly log: Logger,
    private readonly windowMs: number,
  ) {}

  /** Loads keys still inside the window from `dir` (none without a directory). */
  static open(dir: string | undefined, log: Logger, windowMs = REPLAY_WINDOW_MS): ReplayGuard {
    const guard = new ReplayGuard(dir ? join(dir, FILE) : undefined, log, windowMs);
    guard.load();
    return guard;
  }

  /** True the first time `key` is seen inside the window; false for a replay. */
  firstSeen(key: string, now = Date.now()): boolean {
    const at = this.seen.get(key);
    if (at !== undefined && now - at < this.windowMs) return false;
    this.seen.delete(key);
    this.seen.set(key, now);
    this.trim(now);
    this.append(key, now);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private trim(now: number): void {
    for (const [key, at] of this.seen) {
      if (this.seen.size <= MAX_KEYS && now - at < this.windowMs) break;
      this.seen.delete(key);
    }
  }

  private append(key: string, at: number): void {
    if (!this.path) return;
    try {
      appendFileSync(this.path, `${JSON.stringify({ key, at })}\n`);
      this.writeFailed = false;
    } catch (err) {
      if (!this.writeFailed) this.log.warn({ err: (err as Error).message }, "webhook replay keys cannot be written; held in memory until the disk takes them");
      this.writeFailed = true;
    }
  }

  /** Reads the file, keeps what is inside the window and rewrites it with only that. */
  private load(): void {
    if (!this.path) return;
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch {
      return;
    }
    const now = Date.now();
    for (const line of text.split("\n")) {
      if (!line) continue;
      try {
        const { key, at } = JSON.parse(line) as { key?: unknown; at?: unknown };
        if (typeof key === "string" && typeof at === "number" && now - at < this.windowMs) this.seen.set(key, at);
      } catch {
        // A line cut short by a crash: skipped, the rest still count.
      }
    }
    try {
      writeFileSync(this.path, [...this.seen].map(([key, at]) => `${JSON.stringify({ key, at })}\n`).join(""));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not compact the webhook replay keys");
    }
  }
}
