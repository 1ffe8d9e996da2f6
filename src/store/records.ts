/**
 * What every call store keeps, and the one interface the calls reach it
 * through: call snapshots (the newest wins) and transcript lines (append
 * only), written behind the caller in the order they happened. Two stores
 * implement it: the JSONL file (jsonl.ts, one machine, nothing to install)
 * and PostgreSQL (postgres.ts, shared by several instances).
 */
import { z } from "zod";
import { LIVE_STATES, TERMINAL_STATES, type CallRecord, type TranscriptEntry } from "../calls/types.js";
import { PROVIDER_IDS } from "../config/schema.js";
import { TRANSFER_OUTCOMES } from "../providers/types.js";

export const CallRecordSchema = z.object({
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
  agentId: z.string().optional(),
  transfers: z
    .array(
      z.object({
        to: z.string(),
        mode: z.enum(["blind", "warm"]),
        at: z.string(),
        outcome: z.enum(TRANSFER_OUTCOMES),
        reason: z.string().optional(),
        legId: z.string().optional(),
      }),
    )
    .optional(),
  amd: z.object({ outcome: z.enum(["human", "machine", "unknown"]), ms: z.number().nonnegative(), reason: z.string() }).optional(),
  recording: z
    .object({
      path: z.string(),
      channels: z.enum(["stereo", "mono"]),
      startedAt: z.string(),
      durationMs: z.number().nonnegative().optional(),
      bytes: z.number().nonnegative().optional(),
      sampleRate: z.number().positive().optional(),
      failed: z.string().optional(),
      /** After a transfer put the caller through: the caller and the person, as the carrier (the PBX) mixed them. */
      afterTransfer: z
        .object({ path: z.string(), durationMs: z.number().nonnegative().optional(), bytes: z.number().nonnegative().optional(), failed: z.string().optional() })
        .optional(),
    })
    .optional(),
});

export const TranscriptEntrySchema = z.object({
  callId: z.string().min(1),
  at: z.string(),
  speaker: z.enum(["bot", "caller"]),
  kind: z.enum(["speech", "dtmf", "interrupted", "unrecognised", "transfer", "recording", "amd"]),
  text: z.string(),
  turn: z.number().int().nonnegative(),
  origin: z.enum(["agent", "model", "service"]).optional(),
  playedMs: z.number().nonnegative().optional(),
});


export interface LoadedStore {
  calls: Map<string, CallRecord>;
  transcripts: Map<string, TranscriptEntry[]>;
  /** One line per skipped record: "calls.jsonl:17: ..." (the file), "calls row 17: ..." (the database). */
  warnings: string[];
}

export interface StoreHealth {
  writable: boolean;
  /** Why the last write failed, e.g. "ENOSPC: no space left on device". */
  reason?: string;
  /** Lines waiting in memory for the store. */
  waiting: number;
  /** Lines given up because too many were waiting. */
  dropped: number;
}

export interface StoreOptions {
  /** Ended calls kept in the log (and restored); older ones move to dated files (JSONL) or stay unread (PostgreSQL). */
  keepEnded?: number;
  /** Told when the store becomes unwritable or writable again. */
  onHealth?: (health: StoreHealth) => void;
  /** Lines kept in memory while the store refuses them. */
  maxWaiting?: number;
  retryMs?: number;
}


export const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATES);

/** A call store as the calls see it. Writes never throw at the caller: they wait (bounded) and `health` says why. */
export interface CallRepository {
  /** Where it keeps calls, for logs and messages: a file, or the database's address without its password. */
  readonly where: string;
  readonly health: StoreHealth;
  appendCall(call: CallRecord): void;
  appendTranscript(entry: TranscriptEntry): void;
  /** Writes what waits (a bounded time for a database), then lets go of the file or the connections. */
  close(): void | Promise<void>;
}

export interface OpenedStore {
  store: CallRepository;
  loaded: LoadedStore;
  /** Ended calls moved out of the log on opening (JSONL). */
  archived: number;
}

export function emptyLoad(): LoadedStore {
  return { calls: new Map(), transcripts: new Map(), warnings: [] };
}

/**
 * Whether a store takes writes, and the retry while it does not: the reason
 * of the last failure, told to `onHealth` when writability changes.
 */
export class WriteHealth {
  private reason: string | undefined;
  private timer: NodeJS.Timeout | null = null;
  /** Lines given up because too many were waiting. */
  dropped = 0;

  constructor(
    private readonly options: { retryMs: number; retry: () => void; waiting: () => number; onHealth?: (health: StoreHealth) => void },
  ) {}

  get failing(): boolean {
    return this.reason !== undefined;
  }

  get health(): StoreHealth {
    return { writable: this.reason === undefined, reason: this.reason, waiting: this.options.waiting(), dropped: this.dropped };
  }

  /** A write failed with `reason` (a retry is scheduled), or (undefined) everything waiting is written. */
  set(reason: string | undefined): void {
    const changed = (reason === undefined) !== (this.reason === undefined);
    this.reason = reason;
    if (reason !== undefined && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.options.retry();
      }, this.options.retryMs);
      this.timer.unref();
    }
    if (changed) this.options.onHealth?.(this.health);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
