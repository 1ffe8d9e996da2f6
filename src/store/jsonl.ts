/**
 * Append-only JSONL store of call snapshots and transcript lines. Each line is
 * written with synchronous writes as it happens, so a process killed with -9
 * loses nothing it had reported. On load, the newest snapshot of each call
 * wins; a corrupt or truncated line is skipped with a warning, never fatal.
 *
 * A failed or short write (a full disk) never throws at the caller: the line
 * waits in memory (bounded), the store reports itself unavailable with the
 * reason, retries, and writes the waiting lines in order once it can. The log
 * is compacted: calls ended beyond the newest `keepEnded` are moved into a
 * dated file beside it, so restore reads live calls and recent history only.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { CallRecord, TranscriptEntry } from "../calls/types.js";
import {
  CallRecordSchema,
  emptyLoad,
  TERMINAL,
  TranscriptEntrySchema,
  WriteHealth,
  type CallRepository,
  type LoadedStore,
  type OpenedStore,
  type StoreHealth,
  type StoreOptions,
} from "./records.js";

export type { LoadedStore, StoreHealth } from "./records.js";

const FILE = "calls.jsonl";

const Line = z.discriminatedUnion("t", [
  z.object({ t: z.literal("call"), call: CallRecordSchema }),
  z.object({ t: z.literal("transcript"), entry: TranscriptEntrySchema }),
]);

export class JsonlStore implements CallRepository {
  private fd: number | null;
  /** Encoded lines the disk has not taken yet, oldest first. */
  private waiting: Buffer[] = [];
  /** Bytes of the first waiting line already on disk (a short write). */
  private partial = 0;
  private readonly writes: WriteHealth;
  private readonly keepEnded: number;
  private readonly maxWaiting: number;
  /** Calls seen ending since the last compaction. */
  private endedSince = new Set<string>();
  private compactPending = false;

  private constructor(
    readonly dir: string,
    fd: number,
    options: StoreOptions,
  ) {
    this.fd = fd;
    this.keepEnded = options.keepEnded ?? 1000;
    this.maxWaiting = options.maxWaiting ?? 50_000;
    this.writes = new WriteHealth({ retryMs: options.retryMs ?? 5000, retry: () => this.flush(), waiting: () => this.waiting.length, onHealth: options.onHealth });
  }

  get path(): string {
    return join(this.dir, FILE);
  }

  get where(): string {
    return this.path;
  }

  /**
   * Opens (creating if needed) the store in `dir`, compacts it when it holds
   * more ended calls than it keeps, and reads what is left.
   */
  static open(dir: string, options: StoreOptions = {}): OpenedStore & { store: JsonlStore } {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, FILE);
    let archived = 0;
    let compactFailure: string | undefined;
    try {
      archived = existsSync(path) ? compact(dir, options.keepEnded ?? 1000) : 0;
    } catch (err) {
      // The log as it is still loads; compaction is tried again later.
      compactFailure = `${FILE}: could not move old calls out (${describe(err)}); loaded the whole log`;
    }
    const { loaded, endsWithNewline } = existsSync(path) ? readLog(path) : { loaded: emptyLoad(), endsWithNewline: true };
    if (compactFailure) loaded.warnings.push(compactFailure);
    const fd = openSync(path, "a", 0o600);
    const store = new JsonlStore(dir, fd, options);
    // A line cut short by a crash must not swallow the next record.
    if (!endsWithNewline) store.enqueue(Buffer.from("\n"));
    return { store, loaded, archived };
  }

  /** What the store in `dir` holds, read only (nothing is created). */
  static read(dir: string): LoadedStore {
    const path = join(dir, FILE);
    return existsSync(path) ? readLog(path).loaded : emptyLoad();
  }

  get health(): StoreHealth {
    return this.writes.health;
  }

  appendCall(call: CallRecord): void {
    this.enqueue(encode({ t: "call", call }));
    if (TERMINAL.has(call.state)) {
      this.endedSince.add(call.callId);
      // Rewrite now and then, never on every call (each compaction reads the log
      // once), and not inside the caller's bookkeeping: on the next turn of the loop.
      if (this.endedSince.size >= Math.max(100, this.keepEnded) && !this.compactPending) {
        this.compactPending = true;
        setImmediate(() => {
          this.compactPending = false;
          this.compactNow();
        }).unref();
      }
    }
  }

  appendTranscript(entry: TranscriptEntry): void {
    this.enqueue(encode({ t: "transcript", entry }));
  }

  /** Moves ended calls beyond `keepEnded` into a dated file; returns how many moved. */
  compactNow(): number {
    if (this.fd === null || this.waiting.length > 0) return 0;
    this.endedSince.clear();
    closeSync(this.fd);
    this.fd = null;
    let moved = 0;
    try {
      moved = compact(this.dir, this.keepEnded);
    } catch (err) {
      this.writes.set(describe(err));
    } finally {
      this.fd = openSync(this.path, "a", 0o600);
    }
    return moved;
  }

  close(): void {
    this.writes.stop();
    this.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private enqueue(line: Buffer): void {
    if (this.fd === null) throw new Error("call store is closed");
    if (this.waiting.length >= this.maxWaiting) {
      // Bounded: the oldest waiting line goes (never one half-written).
      const i = this.partial > 0 ? 1 : 0;
      this.waiting.splice(i, 1);
      this.writes.dropped += 1;
    }
    this.waiting.push(line);
    if (this.waiting.length === 1) this.flush();
  }

  /** Writes waiting lines in order until done or the disk refuses. */
  private flush(): void {
    while (this.fd !== null && this.waiting.length > 0) {
      const line = this.waiting[0]!;
      let wrote: number;
      try {
        wrote = writeSync(this.fd, line, this.partial, line.length - this.partial);
      } catch (err) {
        this.writes.set(describe(err));
        return;
      }
      this.partial += wrote;
      if (this.partial < line.length) {
        // A short write: the rest goes next time, so the line is never glued to the next one.
        if (wrote === 0) {
          this.writes.set("short write: the disk took 0 bytes");
          return;
        }
        continue;
      }
      this.waiting.shift();
      this.partial = 0;
    }
    if (this.writes.failing && this.waiting.length === 0) this.writes.set(undefined);
  }
}

function encode(line: z.infer<typeof Line>): Buffer {
  return Buffer.from(`${JSON.stringify(line)}\n`);
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message.replace(/^[A-Z]+: /, "").split(",")[0]}` : String(e.message ?? err);
}

/** Calls each complete line of the file in order, reading it in chunks (a log may exceed a string's size). */
function eachLine(path: string, fn: (line: string, lineNo: number) => void): { endsWithNewline: boolean } {
  const fd = openSync(path, "r");
  const chunk = Buffer.allocUnsafe(1 << 20);
  let rest = Buffer.alloc(0);
  let lineNo = 0;
  try {
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      let data = rest.length ? Buffer.concat([rest, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let start = 0;
      for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
        lineNo += 1;
        fn(data.toString("utf8", start, nl), lineNo);
        start = nl + 1;
      }
      rest = Buffer.from(data.subarray(start));
      data = rest;
    }
  } finally {
    closeSync(fd);
  }
  if (rest.length > 0) fn(rest.toString("utf8"), lineNo + 1);
  return { endsWithNewline: rest.length === 0 };
}

function parseLine(text: string, where: string, warnings: string[]): z.infer<typeof Line> | undefined {
  if (text.trim() === "") return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    warnings.push(`${where}: skipped a line that is not JSON (truncated or corrupt)`);
    return undefined;
  }
  const parsed = Line.safeParse(json);
  if (!parsed.success) {
    warnings.push(`${where}: skipped a line that is not a call or transcript record`);
    return undefined;
  }
  return parsed.data;
}

function readLog(path: string): { loaded: LoadedStore; endsWithNewline: boolean } {
  const out = emptyLoad();
  const { endsWithNewline } = eachLine(path, (text, lineNo) => {
    const line = parseLine(text, `${FILE}:${lineNo}`, out.warnings);
    if (!line) return;
    if (line.t === "call") {
      out.calls.set(line.call.callId, line.call);
    } else {
      const list = out.transcripts.get(line.entry.callId) ?? [];
      list.push(line.entry);
      out.transcripts.set(line.entry.callId, list);
    }
  });
  return { loaded: out, endsWithNewline };
}

/**
 * Keeps live calls and the newest `keepEnded` ended ones in the log and moves
 * the rest, every line of them, into calls-<time>.jsonl beside it. Two passes
 * over the file, so memory holds one small entry per call, not the log.
 */
function compact(dir: string, keepEnded: number): number {
  const path = join(dir, FILE);
  const last = new Map<string, { ended: boolean; at: string }>();
  eachLine(path, (text) => {
    // Only call snapshots matter here, and only three fields: no full validation (restore does that on what is kept).
    if (!text.startsWith('{"t":"call"')) return;
    let call: { callId?: unknown; state?: unknown; endedAt?: unknown; createdAt?: unknown } | undefined;
    try {
      call = (JSON.parse(text) as { call?: typeof call }).call;
    } catch {
      return;
    }
    if (typeof call?.callId !== "string" || typeof call.state !== "string") return;
    const at = typeof call.endedAt === "string" ? call.endedAt : typeof call.createdAt === "string" ? call.createdAt : "";
    last.set(call.callId, { ended: TERMINAL.has(call.state), at });
  });
  const ended = [...last].filter(([, v]) => v.ended);
  if (ended.length <= keepEnded) return 0;
  ended.sort((a, b) => (a[1].at < b[1].at ? -1 : a[1].at > b[1].at ? 1 : 0));
  const moving = new Set(ended.slice(0, ended.length - keepEnded).map(([id]) => id));
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const archivePath = join(dir, `calls-${stamp}.jsonl`);
  const keptPath = join(dir, `${FILE}.compacting-${process.pid}`);
  try {
    const archive = openSync(archivePath, "wx", 0o600);
    try {
      const kept = openSync(keptPath, "w", 0o600);
      try {
        // Written in batches: one write per line would be 100,000 system calls for a long log.
        const out = new Map<number, string[]>([
          [archive, []],
          [kept, []],
        ]);
        const flush = (fd: number) => {
          const batch = out.get(fd)!;
          if (batch.length > 0) writeAll(fd, Buffer.from(batch.join("")));
          batch.length = 0;
        };
        eachLine(path, (text) => {
          if (text.trim() === "") return;
          const id = /"callId":"([^"]+)"/.exec(text)?.[1];
          const fd = id !== undefined && moving.has(id) ? archive : kept;
          const batch = out.get(fd)!;
          batch.push(`${text}\n`);
          if (batch.length >= 2000) flush(fd);
        });
        flush(archive);
        flush(kept);
      } finally {
        closeSync(kept);
      }
    } finally {
      closeSync(archive);
    }
    renameSync(keptPath, path);
  } catch (err) {
    // Nothing moved: the log stays whole, and no half-written file is left.
    rmSync(archivePath, { force: true });
    rmSync(keptPath, { force: true });
    throw err;
  }
  return moving.size;
}

function writeAll(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length; ) {
    const n = writeSync(fd, buf, off, buf.length - off);
    if (n === 0) throw Object.assign(new Error("short write: the disk took 0 bytes"), { code: "ENOSPC" });
    off += n;
  }
}
