/**
 * The call store in PostgreSQL, shared by several instances: one row per call
 * (its newest snapshot, the instance that owns it, whether it is live) and one
 * row per transcript line (append only: the table refuses updates). Schema
 * migrations run on open, under an advisory lock, so instances starting
 * together migrate once.
 *
 * Writes go behind the caller, in order, in batches (one transaction each):
 * a database that goes away never stalls or fails a call. The lines wait in
 * memory (bounded), the store reports itself unavailable with the reason (new
 * calls are refused), and once the database answers again they are written in
 * the order they happened. Each line carries an id made when it was said, so
 * a batch retried after a lost commit acknowledgement is not written twice.
 *
 * The client is node-postgres (`pg`, loaded only when this store is used):
 * see docs/dependencies.md.
 */
import { randomUUID } from "node:crypto";
import type { Pool, PoolClient } from "pg";
import type { CallRecord, TranscriptEntry } from "../calls/types.js";
import type { StoreSettings } from "../config/load.js";
import { VoiceCallError } from "../errors.js";
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

export type PostgresSettings = Extract<StoreSettings, { kind: "postgres" }>;

export interface PostgresStoreOptions extends StoreOptions {
  /** This instance: the owner of the calls it writes, and whose live calls it restores. */
  nodeId: string;
  /** Rows per write transaction. */
  batch?: number;
  /** How long close() waits for lines still waiting. */
  closeWaitMs?: number;
}

type Pending = { t: "call"; call: CallRecord } | { t: "line"; id: string; entry: TranscriptEntry };

/** Each step of the schema, in order; a database records the steps it has run. Never edit one: add the next. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE voicecall_calls (
     call_id text PRIMARY KEY,
     node_id text NOT NULL,
     state text NOT NULL,
     live boolean NOT NULL,
     created_at timestamptz NOT NULL,
     ended_at timestamptz,
     updated_at timestamptz NOT NULL DEFAULT now(),
     record jsonb NOT NULL
   );
   CREATE INDEX voicecall_calls_live ON voicecall_calls (node_id) WHERE live;
   CREATE INDEX voicecall_calls_ended ON voicecall_calls (node_id, ended_at DESC) WHERE NOT live;
   CREATE TABLE voicecall_transcript (
     id bigserial PRIMARY KEY,
     line_id uuid NOT NULL UNIQUE,
     call_id text NOT NULL,
     entry jsonb NOT NULL
   );
   CREATE INDEX voicecall_transcript_call ON voicecall_transcript (call_id, id);
   CREATE FUNCTION voicecall_transcript_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN RAISE EXCEPTION 'voicecall_transcript is append-only'; END $$;
   CREATE TRIGGER voicecall_transcript_append_only BEFORE UPDATE ON voicecall_transcript
     FOR EACH ROW EXECUTE FUNCTION voicecall_transcript_append_only();`,
  `CREATE TABLE voicecall_nodes (
     node_id text PRIMARY KEY,
     address text,
     capacity integer NOT NULL,
     started_at timestamptz NOT NULL DEFAULT now(),
     lease_until timestamptz NOT NULL
   );`,
];

/** The address without its password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(an unreadable postgres:// address)";
  }
}

/** A failure as one short line: the error's code and message, never a stack. */
export function describePgError(err: unknown): string {
  const e = err as { code?: string; message?: string; errors?: Array<{ message?: string }> };
  const message = e.message || e.errors?.[0]?.message || String(err);
  return e.code && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
}

export class PostgresStore implements CallRepository {
  private waiting: Pending[] = [];
  /** Items at the head of `waiting` in a transaction now (never dropped while there). */
  private inFlight = 0;
  private pumping: Promise<void> | null = null;
  private closed = false;
  /** Whether this instance has held a lease (it ends on close). */
  private leased = false;
  private readonly writes: WriteHealth;
  private readonly maxWaiting: number;
  private readonly batch: number;

  private constructor(
    private readonly pool: Pool,
    readonly where: string,
    private readonly options: PostgresStoreOptions,
  ) {
    this.maxWaiting = options.maxWaiting ?? 50_000;
    this.batch = options.batch ?? 500;
    this.writes = new WriteHealth({ retryMs: options.retryMs ?? 1000, retry: () => this.pump(), waiting: () => this.waiting.length, onHealth: options.onHealth });
  }

  /** Connects, migrates the schema, and reads this instance's live calls and its newest ended ones. */
  static async open(settings: PostgresSettings, options: PostgresStoreOptions): Promise<OpenedStore & { store: PostgresStore }> {
    const pool = await connect(settings);
    const where = redactUrl(settings.url);
    try {
      await migrate(pool);
      const loaded = await load(pool, { nodeId: options.nodeId, keepEnded: options.keepEnded ?? 1000 });
      return { store: new PostgresStore(pool, where, options), loaded, archived: 0 };
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw unavailable(where, err);
    }
  }

  /** What the database holds for every instance (newest `keepEnded` ended calls and the live ones), read only. */
  static async read(settings: PostgresSettings, keepEnded = 1000): Promise<LoadedStore> {
    const pool = await connect(settings);
    try {
      return await load(pool, { keepEnded });
    } catch (err) {
      throw unavailable(redactUrl(settings.url), err);
    } finally {
      await pool.end().catch(() => undefined);
    }
  }

  get health(): StoreHealth {
    return this.writes.health;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** Told when a call this instance wrote belongs to another instance now (it took the call over). */
  onLost?: (callId: string) => void;

  // ------------------------------------------------------------ the cluster

  /**
   * Renews this instance's lease (and says where it answers, and its room); returns the instances whose
   * lease holds and that take calls (capacity above 0: not draining), by name.
   */
  async renewLease(leaseMs: number, info: { capacity: number; address?: string }): Promise<string[]> {
    const { rows } = await this.pool.query<{ node_id: string }>(
      `WITH me AS (
         INSERT INTO voicecall_nodes (node_id, address, capacity, lease_until) VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
         ON CONFLICT (node_id) DO UPDATE SET address = EXCLUDED.address, capacity = EXCLUDED.capacity, lease_until = EXCLUDED.lease_until
         RETURNING node_id, capacity)
       SELECT node_id FROM me WHERE capacity > 0
       UNION SELECT node_id FROM voicecall_nodes WHERE lease_until > now() AND capacity > 0 AND node_id <> $1 ORDER BY node_id`,
      [this.options.nodeId, info.address ?? null, info.capacity, leaseMs],
    );
    this.leased = true;
    return rows.map((r) => r.node_id);
  }

  /** A clean stop: the lease ends now, so another instance takes over at once whatever is left. */
  private async endLease(): Promise<void> {
    await this.pool.query("UPDATE voicecall_nodes SET lease_until = now() WHERE node_id = $1", [this.options.nodeId]);
  }

  /** The other live instance that holds `callId`, and where it answers; undefined when none does. */
  async ownerOf(callId: string): Promise<{ nodeId: string; address: string } | undefined> {
    const { rows } = await this.pool.query<{ node_id: string; address: string }>(
      `SELECT n.node_id, n.address FROM voicecall_calls c JOIN voicecall_nodes n ON n.node_id = c.node_id
       WHERE c.call_id = $1 AND n.node_id <> $2 AND n.lease_until > now() AND n.address IS NOT NULL`,
      [callId, this.options.nodeId],
    );
    return rows[0] ? { nodeId: rows[0].node_id, address: rows[0].address } : undefined;
  }

  /**
   * The other instance holding the live call the carrier knows by one of `providerCallIds`: where it
   * answers and whether its lease holds (false: gone, the call not taken over yet). Undefined: this
   * instance holds it, or no live call has those ids.
   */
  async ownerOfProviderCall(providerCallIds: string[]): Promise<{ nodeId: string; address: string | null; leased: boolean } | undefined> {
    const { rows } = await this.pool.query<{ node_id: string; address: string | null; leased: boolean | null }>(
      `SELECT c.node_id, n.address, n.lease_until > now() AS leased FROM voicecall_calls c LEFT JOIN voicecall_nodes n ON n.node_id = c.node_id
       WHERE c.live AND c.record->>'providerCallId' = ANY($1) ORDER BY c.updated_at DESC LIMIT 1`,
      [providerCallIds],
    );
    const row = rows[0];
    if (!row || row.node_id === this.options.nodeId) return undefined;
    return { nodeId: row.node_id, address: row.address, leased: row.leased === true };
  }

  /** The other instances with a lease, and where each answers. */
  async peers(): Promise<Array<{ nodeId: string; address: string }>> {
    const { rows } = await this.pool.query<{ node_id: string; address: string }>(
      "SELECT node_id, address FROM voicecall_nodes WHERE lease_until > now() AND node_id <> $1 AND address IS NOT NULL ORDER BY node_id",
      [this.options.nodeId],
    );
    return rows.map((r) => ({ nodeId: r.node_id, address: r.address }));
  }

  /** Where a live instance answers. */
  async addressOf(nodeId: string): Promise<{ nodeId: string; address: string } | undefined> {
    const { rows } = await this.pool.query<{ address: string }>(
      "SELECT address FROM voicecall_nodes WHERE node_id = $1 AND lease_until > now() AND address IS NOT NULL",
      [nodeId],
    );
    return rows[0] ? { nodeId, address: rows[0].address } : undefined;
  }

  /** Live calls of every instance with a lease, but `except` (cluster.maxConcurrentCalls). */
  async clusterLive(except?: string): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM voicecall_calls c JOIN voicecall_nodes n ON n.node_id = c.node_id
       WHERE c.live AND n.lease_until > now() AND c.call_id IS DISTINCT FROM $1`,
      [except ?? null],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** The instance with a lease and the most room (fewest live calls against its capacity) for a new call. */
  async pickNode(): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ node_id: string }>(
      `SELECT n.node_id FROM voicecall_nodes n LEFT JOIN voicecall_calls c ON c.node_id = n.node_id AND c.live
       WHERE n.lease_until > now() GROUP BY n.node_id, n.capacity HAVING count(c.call_id) < n.capacity
       ORDER BY count(c.call_id)::float / n.capacity, n.node_id LIMIT 1`,
    );
    return rows[0]?.node_id;
  }

  /**
   * Takes up to `limit` live calls of instances whose lease has run out (or that never had one) for this
   * instance, each claimed once however many instances try at the same time; returns them with their lines
   * and who had them.
   */
  async claimOrphaned(limit: number): Promise<LoadedStore & { from: Map<string, string> }> {
    const out = { ...emptyLoad(), from: new Map<string, string>() };
    if (limit <= 0) return out;
    const { rows } = await this.pool.query<{ call_id: string; record: unknown; previous: string }>(
      `WITH taken AS (
         SELECT c.call_id, c.node_id AS previous FROM voicecall_calls c
         WHERE c.live AND c.node_id <> $1
           AND NOT EXISTS (SELECT 1 FROM voicecall_nodes n WHERE n.node_id = c.node_id AND n.lease_until > now())
         ORDER BY c.created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       UPDATE voicecall_calls c SET node_id = $1, updated_at = now() FROM taken
       -- Still the old owner's when the row is written: one taken by an instance that committed first is left to it.
       WHERE c.call_id = taken.call_id AND c.node_id = taken.previous AND c.live
       RETURNING c.call_id, c.record, taken.previous`,
      [this.options.nodeId, limit],
    );
    if (rows.length === 0) return out;
    for (const row of rows) out.from.set(row.call_id, row.previous);
    const loaded = await readCalls(this.pool, rows);
    return { ...loaded, from: out.from };
  }

  appendCall(call: CallRecord): void {
    this.enqueue({ t: "call", call: structuredClone(call) });
  }

  appendTranscript(entry: TranscriptEntry): void {
    this.enqueue({ t: "line", id: randomUUID(), entry: { ...entry } });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.writes.stop();
    // What waits gets one more chance, bounded: a database that is gone does not hold up a stop.
    const deadline = Date.now() + (this.options.closeWaitMs ?? 5000);
    while (this.waiting.length > 0 && Date.now() < deadline) {
      await this.pumpNow();
      if (this.waiting.length > 0) await new Promise((r) => setTimeout(r, 100));
    }
    await this.pumping;
    // On a shared store the lease ends with the instance: another takes over at once whatever is left.
    if (this.leased) await this.endLease().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }

  private enqueue(item: Pending): void {
    if (this.closed) throw new Error("call store is closed");
    if (this.waiting.length >= this.maxWaiting && this.waiting.length > this.inFlight) {
      // Bounded: the oldest line not being written now goes.
      this.waiting.splice(this.inFlight, 1);
      this.writes.dropped += 1;
    }
    this.waiting.push(item);
    // A store that is failing waits for its retry, rather than trying on every line.
    if (!this.writes.failing) this.pump();
  }

  private pump(): void {
    void this.pumpNow();
  }

  /** Writes waiting items in order, a batch per transaction, until done or the database refuses. */
  private pumpNow(): Promise<void> {
    if (!this.pumping) this.pumping = this.drain().finally(() => (this.pumping = null));
    return this.pumping;
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting.slice(0, this.batch);
      this.inFlight = batch.length;
      try {
        await this.write(batch);
      } catch (err) {
        this.writes.set(describePgError(err));
        return;
      } finally {
        this.inFlight = 0;
      }
      this.waiting.splice(0, batch.length);
    }
    if (this.writes.failing) this.writes.set(undefined);
  }

  private async write(batch: Pending[]): Promise<void> {
    // The newest snapshot of each call in the batch (a row holds one); lines all, in order.
    const calls = new Map<string, CallRecord>();
    const lines: Array<{ id: string; entry: TranscriptEntry }> = [];
    for (const item of batch) {
      if (item.t === "call") calls.set(item.call.callId, item.call);
      else lines.push(item);
    }
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      if (lines.length > 0) {
        await client.query(
          `INSERT INTO voicecall_transcript (line_id, call_id, entry)
           SELECT l, c, e FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS t(l, c, e, n) ORDER BY n
           ON CONFLICT (line_id) DO NOTHING`,
          [lines.map((l) => l.id), lines.map((l) => l.entry.callId), lines.map((l) => JSON.stringify(l.entry))],
        );
      }
      const lost = calls.size > 0 ? await upsertCalls(client, [...calls.values()], this.options.nodeId) : [];
      await client.query("COMMIT");
      for (const callId of lost) this.onLost?.(callId);
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}

/** Writes each call's snapshot where this instance owns it; returns the ids another instance owns now (not written). */
async function upsertCalls(client: PoolClient, calls: CallRecord[], nodeId: string): Promise<string[]> {
  const { rows } = await client.query<{ call_id: string }>(
    `INSERT INTO voicecall_calls (call_id, node_id, state, live, created_at, ended_at, record, updated_at)
     SELECT c, $2, s, NOT (s = ANY($3::text[])), ca::timestamptz, ea::timestamptz, r, now()
     FROM unnest($1::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[]) AS t(c, s, ca, ea, r)
     ON CONFLICT (call_id) DO UPDATE SET state = EXCLUDED.state, live = EXCLUDED.live,
       ended_at = EXCLUDED.ended_at, record = EXCLUDED.record, updated_at = now()
       WHERE voicecall_calls.node_id = EXCLUDED.node_id
     RETURNING call_id`,
    [
      calls.map((c) => c.callId),
      nodeId,
      [...TERMINAL],
      calls.map((c) => c.state),
      calls.map((c) => c.createdAt),
      calls.map((c) => c.endedAt ?? null),
      calls.map((c) => JSON.stringify(c)),
    ],
  );
  const written = new Set(rows.map((r) => r.call_id));
  return calls.map((c) => c.callId).filter((id) => !written.has(id));
}

async function connect(settings: PostgresSettings): Promise<Pool> {
  const { default: pg } = await import("pg");
  const pool = new pg.Pool({
    connectionString: settings.url,
    ...(settings.password !== undefined ? { password: settings.password } : {}),
    max: settings.poolSize,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    // A database that stops answering mid-query fails the write (it is retried), never hangs it.
    query_timeout: Math.max(15_000, settings.connectTimeoutMs * 3),
    application_name: "openclaw-voice-call",
  });
  // An idle connection the server dropped (a restart): the pool replaces it; without a listener it would crash us.
  pool.on("error", () => undefined);
  return pool;
}

async function migrate(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext('openclaw-voice-call schema'))");
    await client.query("CREATE TABLE IF NOT EXISTS voicecall_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    const { rows } = await client.query<{ v: number | null }>("SELECT max(version) AS v FROM voicecall_migrations");
    const at = rows[0]?.v ?? 0;
    if (at > MIGRATIONS.length) {
      throw new Error(`the database's schema is at step ${at}, newer than this release knows (${MIGRATIONS.length}): upgrade this instance`);
    }
    for (let step = at; step < MIGRATIONS.length; step += 1) {
      await client.query(MIGRATIONS[step]!);
      await client.query("INSERT INTO voicecall_migrations (version) VALUES ($1)", [step + 1]);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Live calls and the newest `keepEnded` ended ones (of `nodeId`, or of every instance), with their lines in order. */
async function load(pool: Pool, options: { nodeId?: string; keepEnded: number }): Promise<LoadedStore> {
  const mine = options.nodeId === undefined ? "" : "AND node_id = $2";
  const params = options.nodeId === undefined ? [options.keepEnded] : [options.keepEnded, options.nodeId];
  const { rows } = await pool.query<{ call_id: string; record: unknown }>(
    `(SELECT call_id, record FROM voicecall_calls WHERE live ${mine})
     UNION ALL
     (SELECT call_id, record FROM voicecall_calls WHERE NOT live ${mine} ORDER BY ended_at DESC NULLS LAST LIMIT $1)`,
    params,
  );
  return readCalls(pool, rows);
}

/** Call rows as records (a row that is not one is skipped with a warning), with their lines in order. */
async function readCalls(pool: Pool, rows: Array<{ call_id: string; record: unknown }>): Promise<LoadedStore> {
  const out = emptyLoad();
  for (const row of rows) {
    const parsed = CallRecordSchema.safeParse(row.record);
    if (parsed.success) out.calls.set(row.call_id, parsed.data as CallRecord);
    else out.warnings.push(`voicecall_calls ${row.call_id}: skipped a row that is not a call record`);
  }
  if (out.calls.size === 0) return out;
  const lines = await pool.query<{ id: string; entry: unknown }>(
    "SELECT id, entry FROM voicecall_transcript WHERE call_id = ANY($1::text[]) ORDER BY id",
    [[...out.calls.keys()]],
  );
  for (const row of lines.rows) {
    const parsed = TranscriptEntrySchema.safeParse(row.entry);
    if (!parsed.success) {
      out.warnings.push(`voicecall_transcript ${row.id}: skipped a row that is not a transcript line`);
      continue;
    }
    const list = out.transcripts.get(parsed.data.callId) ?? [];
    list.push(parsed.data as TranscriptEntry);
    out.transcripts.set(parsed.data.callId, list);
  }
  return out;
}

function unavailable(where: string, err: unknown): VoiceCallError {
  const reason = describePgError(err);
  return new VoiceCallError("STORE_UNAVAILABLE", `store: the PostgreSQL store at ${where} cannot be used: ${reason}`, [{ path: "store", message: reason }]);
}
