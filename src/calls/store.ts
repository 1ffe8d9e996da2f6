/**
 * Append-only JSONL store of call snapshots and transcript lines. Each line is
 * written with one synchronous write as it happens, so a process killed with
 * -9 loses nothing it had reported. On load, the newest snapshot of each call
 * wins; a corrupt or truncated line is skipped with a warning, never fatal.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { LIVE_STATES, TERMINAL_STATES, type CallRecord, type TranscriptEntry } from "./types.js";
import { PROVIDER_IDS } from "../config/schema.js";

const FILE = "calls.jsonl";

const CallRecordSchema = z.object({
  callId: z.string().min(1),
  provider: z.enum(PROVIDER_IDS),
  providerCallId: z.string().optional(),
  direction: z.enum(["outbound", "inbound"]),
  mode: z.enum(["notify", "conversation"]),
  from: z.string().optional(),
  to: z.string(),
  state: z.enum([...LIVE_STATES, ...TERMINAL_STATES]),
  createdAt: z.string(),
  answeredAt: z.string().optional(),
  endedAt: z.string().optional(),
  endReason: z.string().optional(),
  turn: z.number().int().nonnegative(),
  message: z.string().optional(),
  sessionKey: z.string().optional(),
});

const TranscriptEntrySchema = z.object({
  callId: z.string().min(1),
  at: z.string(),
  speaker: z.enum(["bot", "caller"]),
  kind: z.enum(["speech", "dtmf", "interrupted"]),
  text: z.string(),
  turn: z.number().int().nonnegative(),
});

const Line = z.discriminatedUnion("t", [
  z.object({ t: z.literal("call"), call: CallRecordSchema }),
  z.object({ t: z.literal("transcript"), entry: TranscriptEntrySchema }),
]);

export interface LoadedStore {
  calls: Map<string, CallRecord>;
  transcripts: Map<string, TranscriptEntry[]>;
  /** One line per skipped line: "calls.jsonl:17: ...". */
  warnings: string[];
}

export class CallStore {
  private fd: number | null;

  private constructor(readonly path: string, fd: number) {
    this.fd = fd;
  }

  /** Opens (creating if needed) the store in `dir` and reads what it holds. */
  static open(dir: string): { store: CallStore; loaded: LoadedStore } {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, FILE);
    const text = existsSync(path) ? readFileSync(path, "utf8") : "";
    const loaded = load(text);
    const fd = openSync(path, "a", 0o600);
    // A line cut short by a crash must not swallow the next record.
    if (text.length > 0 && !text.endsWith("\n")) writeSync(fd, "\n");
    return { store: new CallStore(path, fd), loaded };
  }

  /** What the store in `dir` holds, read only (nothing is created). */
  static read(dir: string): LoadedStore {
    const path = join(dir, FILE);
    return existsSync(path) ? load(readFileSync(path, "utf8")) : emptyLoad();
  }

  appendCall(call: CallRecord): void {
    this.write({ t: "call", call });
  }

  appendTranscript(entry: TranscriptEntry): void {
    this.write({ t: "transcript", entry });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private write(line: z.infer<typeof Line>): void {
    if (this.fd === null) throw new Error("call store is closed");
    writeSync(this.fd, `${JSON.stringify(line)}\n`);
  }
}

function emptyLoad(): LoadedStore {
  return { calls: new Map(), transcripts: new Map(), warnings: [] };
}

function load(text: string): LoadedStore {
  const out = emptyLoad();
  const lines = text.split("\n");
  lines.forEach((text, index) => {
    if (text.trim() === "") return;
    const where = `${FILE}:${index + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      out.warnings.push(`${where}: skipped a line that is not JSON (truncated or corrupt)`);
      return;
    }
    const parsed = Line.safeParse(json);
    if (!parsed.success) {
      out.warnings.push(`${where}: skipped a line that is not a call or transcript record`);
      return;
    }
    const line = parsed.data;
    if (line.t === "call") {
      out.calls.set(line.call.callId, line.call);
    } else {
      const list = out.transcripts.get(line.entry.callId) ?? [];
      list.push(line.entry);
      out.transcripts.set(line.entry.callId, list);
    }
  });
  return out;
}
