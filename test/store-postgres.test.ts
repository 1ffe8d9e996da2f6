/**
 * The PostgreSQL call store against a real PostgreSQL (Debian's server,
 * started here on loopback; skipped with the reason where it cannot run):
 * what the JSONL store keeps, kept the same way; each instance restores only
 * its own calls; a database restarted under a live call loses no line and
 * writes none twice; instances starting together migrate once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CallManager } from "../src/calls/manager.js";
import type { CallRecord, TranscriptEntry } from "../src/calls/types.js";
import { resolveConfig } from "../src/configure.js";
import { LocalPostgres, postgresUnavailableReason } from "../src/lab/postgres.js";
import { createLogger } from "../src/log.js";
import { createProviders } from "../src/providers/index.js";
import { createRuntime } from "../src/runtime.js";
import type { MockProvider } from "../src/providers/mock/provider.js";
import { openStore, readStore } from "../src/store/index.js";
import { PostgresStore } from "../src/store/postgres.js";
import { errorOf, freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const TO = "+15550001234";
const unavailable = postgresUnavailableReason();
if (unavailable) console.warn(`skipping the PostgreSQL store tests: ${unavailable}`);

const record = (callId: string, state: CallRecord["state"], minute = 0): CallRecord => ({
  callId,
  provider: "mock",
  direction: "outbound",
  mode: "conversation",
  to: TO,
  state,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString(),
  ...(state === "completed" ? { endedAt: new Date(Date.UTC(2026, 0, 1, 0, minute, 30)).toISOString() } : {}),
  turn: 1,
});
const line = (callId: string, text: string, turn = 0): TranscriptEntry => ({ callId, at: new Date().toISOString(), speaker: "bot", kind: "speech", text, turn });

describe.skipIf(unavailable !== undefined)("the PostgreSQL call store (a real PostgreSQL on loopback)", () => {
  let pg: LocalPostgres;
  let databases = 0;
  const database = () => pg.createDatabase(`voicecall_${++databases}`);
  const settingsOf = (url: string) => ({ kind: "postgres" as const, dir: tempDir(), url, poolSize: 4, connectTimeoutMs: 2000 });

  beforeAll(async () => {
    pg = await LocalPostgres.start({ port: await freePort(), durable: false });
  }, 120_000);
  afterAll(async () => {
    await pg?.stop();
  });

  it("keeps the newest snapshot per call and every line in order; an instance restores its own live calls and newest ended ones only", async () => {
    const url = await database();
    const a = await PostgresStore.open(settingsOf(url), { nodeId: "node-a", keepEnded: 2 });
    expect(a.loaded.calls.size).toBe(0);
    a.store.appendCall(record("live-a", "initiated"));
    a.store.appendTranscript(line("live-a", "hello"));
    a.store.appendCall(record("live-a", "listening"));
    a.store.appendTranscript(line("live-a", "hi", 1));
    for (let i = 0; i < 4; i += 1) a.store.appendCall(record(`ended-${i}`, "completed", i));
    await a.store.close();
    const b = await PostgresStore.open(settingsOf(url), { nodeId: "node-b" });
    b.store.appendCall(record("live-b", "ringing"));
    await b.store.close();

    const again = await PostgresStore.open(settingsOf(url), { nodeId: "node-a", keepEnded: 2 });
    await again.store.close();
    // Its live call with both lines, and the two newest of its four ended calls; never node-b's call.
    expect([...again.loaded.calls.keys()].sort()).toEqual(["ended-2", "ended-3", "live-a"]);
    expect(again.loaded.calls.get("live-a")!.state).toBe("listening");
    expect(again.loaded.transcripts.get("live-a")!.map((t) => t.text)).toEqual(["hello", "hi"]);
    expect(again.loaded.warnings).toEqual([]);
    expect(await pg.sql(`voicecall_${databases}`, "SELECT node_id FROM voicecall_calls WHERE call_id = 'live-b'")).toEqual(["node-b"]);
    // A report (voicecall latency) reads every instance's calls.
    expect([...(await PostgresStore.read(settingsOf(url))).calls.keys()]).toContain("live-b");
  });

  it("a manager on it: calls and their lines reach the database, and a restarted instance takes its live call back", async () => {
    const url = await database();
    const config = makeConfig({ store: { url, dir: tempDir() }, cluster: { nodeId: "node-a" }, mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] } });
    const first = await managerOn(config);
    const { callId } = await first.manager.initiateCall({ to: TO, message: "hello from the database", mode: "conversation" });
    await waitFor(() => first.manager.getCall(callId)?.transcript.length === 2, "the first answer");
    expect((await first.manager.continueCall(callId, "still there?")).transcript).toBe("yes");
    await first.manager.stop();

    const loaded = await readStore(config);
    expect(loaded.transcripts.get(callId)!.map((t) => [t.speaker, t.text])).toEqual([
      ["bot", "hello from the database"],
      ["caller", "yes"],
      ["bot", "still there?"],
      ["caller", "yes"],
    ]);
    const second = await managerOn(config);
    try {
      expect(second.manager.getCall(callId)).toMatchObject({ callId, transcript: expect.arrayContaining([expect.objectContaining({ text: "still there?" })]) });
    } finally {
      await second.manager.stop();
    }
  });

  it("PostgreSQL restarted under a live call: new calls are refused with STORE_UNAVAILABLE, the call goes on, and every line is written once, in order, when it is back", async () => {
    const url = await database();
    const config = makeConfig({ store: url, maxConcurrentCalls: 3, mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] } });
    const health: boolean[] = [];
    const { manager } = await managerOn(config, (writable) => health.push(writable));
    try {
      const { callId } = await manager.initiateCall({ to: TO, message: "before the restart", mode: "conversation" });
      await waitFor(() => manager.getCall(callId)?.transcript.length === 2, "the first answer");
      await waitFor(async () => (await pg.sql(`voicecall_${databases}`, "SELECT count(*) FROM voicecall_transcript"))[0] === "2", "the first lines in the database");

      await pg.stopServer();
      // The call goes on: two turns are taken while the database is down (their lines wait in memory).
      expect((await manager.continueCall(callId, "are you still there?")).transcript).toBe("yes");
      expect((await manager.continueCall(callId, "and now?")).transcript).toBe("yes");
      await waitFor(() => !manager.storeHealth().writable, "the store to count as unavailable");
      expect(manager.storeHealth()).toMatchObject({ writable: false, reason: expect.stringMatching(/ECONNREFUSED|terminat|shut/i) });
      const refused = await errorOf(manager.initiateCall({ to: TO, message: "new", mode: "conversation" }));
      expect(refused.code).toBe("STORE_UNAVAILABLE");

      await pg.startServer();
      await waitFor(() => manager.storeHealth().writable, "writes to resume", 15_000);
      expect(health).toEqual([false, true]);
      const rows = await pg.sql(`voicecall_${databases}`, `SELECT entry->>'text' FROM voicecall_transcript WHERE call_id = '${callId}' ORDER BY id`);
      expect(rows).toEqual(manager.getCall(callId)!.transcript.map((t) => t.text));
      expect(rows).toEqual(["before the restart", "yes", "are you still there?", "yes", "and now?", "yes"]);
      // New calls work again.
      await manager.initiateCall({ to: TO, message: "after", mode: "conversation" });
    } finally {
      await manager.stop();
    }
  }, 60_000);

  it("instances starting together migrate the schema once; the transcript table refuses updates", async () => {
    const url = await database();
    const opened = await Promise.all(["a", "b", "c"].map((nodeId) => PostgresStore.open(settingsOf(url), { nodeId })));
    for (const o of opened) await o.store.close();
    const db = `voicecall_${databases}`;
    expect(await pg.sql(db, "SELECT version FROM voicecall_migrations ORDER BY version")).toEqual(["1", "2"]);
    await pg.sql(db, `INSERT INTO voicecall_transcript (line_id, call_id, entry) VALUES (gen_random_uuid(), 'x', '{}')`);
    await expect(pg.sql(db, "UPDATE voicecall_transcript SET entry = '{}'")).rejects.toThrow(/append-only/);
    // A database migrated by a newer release is refused, not written to.
    await pg.sql(db, "INSERT INTO voicecall_migrations (version) VALUES (99)");
    const newer = await errorOf(PostgresStore.open(settingsOf(url), { nodeId: "a" }));
    expect(newer).toMatchObject({ code: "STORE_UNAVAILABLE", message: expect.stringContaining("newer than this release knows") });
  });

  it("an instance whose lease ran out: each of its live calls is claimed by one of two instances trying at once; its later writes are refused, and it is told", async () => {
    const url = await database();
    const a = await PostgresStore.open(settingsOf(url), { nodeId: "a" });
    const lost: string[] = [];
    a.store.onLost = (callId) => lost.push(callId);
    expect(await a.store.renewLease(200, { capacity: 10 })).toEqual(["a"]);
    for (let i = 0; i < 6; i += 1) a.store.appendCall(record(`live-${i}`, "listening", i));
    a.store.appendCall(record("ended", "completed"));
    a.store.appendTranscript(line("live-0", "said on a"));
    await waitFor(async () => (await pg.sql(`voicecall_${databases}`, "SELECT count(*) FROM voicecall_calls"))[0] === "7", "a's calls in the database");
    const b = await PostgresStore.open(settingsOf(url), { nodeId: "b" });
    const c = await PostgresStore.open(settingsOf(url), { nodeId: "c" });
    await Promise.all([b.store.renewLease(10_000, { capacity: 10 }), c.store.renewLease(10_000, { capacity: 10 })]);
    // While a's lease holds, nothing is taken.
    expect((await b.store.claimOrphaned(10)).calls.size).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    const [byB, byC] = await Promise.all([b.store.claimOrphaned(4), c.store.claimOrphaned(10)]);
    const taken = [...byB.calls.keys(), ...byC.calls.keys()].sort();
    expect(taken).toEqual(["live-0", "live-1", "live-2", "live-3", "live-4", "live-5"]);
    expect(byB.calls.size).toBeLessThanOrEqual(4);
    const holder = byB.calls.has("live-0") ? byB : byC;
    expect(holder.transcripts.get("live-0")!.map((t) => t.text)).toEqual(["said on a"]);
    expect(holder.from.get("live-0")).toBe("a");
    // a, cut off meanwhile, writes again: the calls are not its own any more.
    a.store.appendCall(record("live-0", "completed"));
    await waitFor(() => lost.length > 0, "a to be told");
    expect(lost).toEqual(["live-0"]);
    expect(await pg.sql(`voicecall_${databases}`, "SELECT state FROM voicecall_calls WHERE call_id = 'live-0'")).toEqual(["listening"]);
    // The instance with most room gets the next call; one at capacity is never picked.
    expect(await b.store.pickNode()).toBe(byB.calls.size <= byC.calls.size ? "b" : "c");
    await c.store.renewLease(10_000, { capacity: byC.calls.size });
    expect(await b.store.pickNode()).toBe("b");
    // A draining instance (no room) is left out of the instances that take calls, itself included, and is never picked.
    await c.store.renewLease(10_000, { capacity: 10 });
    expect(await b.store.renewLease(10_000, { capacity: 0 })).toEqual(["c"]);
    expect(await c.store.pickNode()).toBe("c");
    for (const s of [a, b, c]) await s.store.close();
    // A clean stop ends the lease at once.
    expect(await pg.sql(`voicecall_${databases}`, "SELECT count(*) FROM voicecall_nodes WHERE lease_until > now()")).toEqual(["0"]);
  });

  it("cluster.maxConcurrentCalls counts every instance's live calls from the store: a third call on either is refused until one ends", async () => {
    const url = await database();
    const settings = (nodeId: string) =>
      makeConfig({ store: { url, dir: tempDir() }, cluster: { nodeId, maxConcurrentCalls: 2 }, mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] } });
    const a = await createRuntime(settings("a"), createLogger("silent"));
    const b = await createRuntime(settings("b"), createLogger("silent"));
    try {
      const live = async () => Number((await pg.sql(`voicecall_${databases}`, "SELECT count(*) FROM voicecall_calls WHERE live"))[0]);
      const first = await a.manager.initiateCall({ to: TO, message: "one", mode: "conversation" });
      await b.manager.initiateCall({ to: TO, message: "two", mode: "conversation" });
      await waitFor(async () => (await live()) === 2, "both calls in the database");
      for (const r of [a, b]) {
        await expect(r.manager.initiateCall({ to: TO, message: "three", mode: "conversation" })).rejects.toMatchObject({ code: "LIMIT_REACHED", message: expect.stringContaining("cluster.maxConcurrentCalls (2)") });
      }
      await a.manager.endCall(first.callId);
      await waitFor(async () => (await live()) === 1, "the ended call written");
      await b.manager.initiateCall({ to: TO, message: "three", mode: "conversation" });
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a database that cannot be reached stops the start with STORE_UNAVAILABLE naming the store, never its password", async () => {
    const port = await freePort();
    const config = makeConfig({ store: { url: `postgres://voicecall:hunter2-secret@127.0.0.1:${port}/calls`, connectTimeoutMs: 1000 } });
    const err = await errorOf(openStore(config));
    expect(err.code).toBe("STORE_UNAVAILABLE");
    expect(err.message).toContain(`postgres://voicecall:***@127.0.0.1:${port}/calls`);
    expect(err.message).toContain("ECONNREFUSED");
    expect(err.issues).toEqual([{ path: "store", message: expect.stringContaining("ECONNREFUSED") }]);
    expect(JSON.stringify(err)).not.toContain("hunter2");
  });
});

describe("the store's config", () => {
  it("takes a folder, a postgres:// address, or { url, password, dir }; a bad address names store.url", () => {
    expect(makeConfig({ store: "/var/lib/calls" }).store).toBe("/var/lib/calls");
    expect(makeConfig({ store: "postgres://u@db:5432/calls" }).store).toBe("postgres://u@db:5432/calls");
    expect(makeConfig({ store: { url: "postgresql://u@db/calls", password: "pw", dir: "/srv/files" } }).store).toMatchObject({ url: "postgresql://u@db/calls", dir: "/srv/files", poolSize: 4 });
    const err = (() => {
      try {
        resolveConfig({ store: { url: "mysql://u@db/calls" } });
      } catch (e) {
        return e as { code: string; issues: Array<{ path: string; message: string }> };
      }
      throw new Error("expected an error");
    })();
    expect(err.code).toBe("INVALID_CONFIG");
    expect(err.issues).toContainEqual({ path: "store.url", message: expect.stringContaining("postgres://") });
  });
});

/** A started CallManager over the Mock carrier, on the store its config names. */
async function managerOn(config: ReturnType<typeof makeConfig>, onHealth?: (writable: boolean) => void): Promise<{ manager: CallManager; mock: MockProvider }> {
  const providers = createProviders(config, { logger: createLogger("silent") });
  const { store, loaded } = await openStore(config, { retryMs: 100, ...(onHealth ? { onHealth: (h) => onHealth(h.writable) } : {}) });
  const manager = new CallManager({ config, providers, store, loaded, logger: createLogger("silent") });
  await manager.start();
  return { manager, mock: providers.get("mock") as MockProvider };
}
