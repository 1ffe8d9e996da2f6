/**
 * The service under faults: a full disk under the call log (a real tmpfs of a
 * few kilobytes), a log of 20,000 calls, an events subscriber that never
 * reads, a stream whose tick throws, a carrier that throws.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { FramePacer } from "../src/audio/pacer.js";
import { CallManager } from "../src/calls/manager.js";
import { JsonlStore } from "../src/store/jsonl.js";
import type { CallRecord, TranscriptEntry } from "../src/calls/types.js";
import { createLogger } from "../src/log.js";
import { createProviders } from "../src/providers/index.js";
import type { MockProvider } from "../src/providers/mock/provider.js";
import { startService, type RunningService } from "../src/server/service.js";
import { makeConfig, tempDir, waitFor, errorOf } from "./helpers.js";

const TO = "+15550001234";


/** A tmpfs of `kb` kilobytes, or why one cannot be mounted here. */
function tinyDisk(kb: number): { dir: string; unmount: () => void } | string {
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root";
  const dir = tempDir("voicecall-full-disk-");
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${kb}k`, "tmpfs", dir], { encoding: "utf8" });
  if (r.status !== 0) return `mount -t tmpfs failed: ${r.stderr.trim()}`;
  return { dir, unmount: () => void spawnSync("umount", ["-l", dir]) };
}

const disk = tinyDisk(64);
if (typeof disk === "string") console.warn(`skipping the full-disk test: ${disk}`);
afterAll(() => {
  if (typeof disk !== "string") disk.unmount();
});

describe.skipIf(typeof disk === "string")("a full disk under the call log", () => {
  it("keeps calls going, refuses new ones with STORE_UNAVAILABLE, holds no slot, hangs up on end, and writes everything once space returns", async () => {
    const { dir } = disk as { dir: string };
    const storeDir = join(dir, "store");
    mkdirSync(storeDir);
    const config = makeConfig({ maxConcurrentCalls: 2, inboundPolicy: "open", mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["yes"] } }, storeDir);
    const providers = createProviders(config, { logger: createLogger("silent") });
    const mock = providers.get("mock") as MockProvider;
    const health: boolean[] = [];
    const { store, loaded } = JsonlStore.open(storeDir, { retryMs: 50, onHealth: (h) => health.push(h.writable) });
    const manager = new CallManager({ config, providers, store, loaded, logger: createLogger("silent") });
    await manager.start();
    try {
      const live = await manager.initiateCall({ to: TO, message: "before the disk filled", mode: "conversation" });
      await waitFor(() => manager.getCall(live.callId)?.transcript.length === 2, "the first call's first answer");

      // Fill the disk: what is left is less than one record.
      const filler = join(dir, "filler");
      writeFileSync(filler, Buffer.alloc(1));
      for (let size = 4096; ; size *= 2) {
        try {
          writeFileSync(join(dir, `fill-${size}`), Buffer.alloc(size));
        } catch {
          break;
        }
      }
      for (let i = 0; i < 64; i += 1) {
        try {
          writeFileSync(join(dir, `crumb-${i}`), Buffer.alloc(64));
        } catch {
          break;
        }
      }

      // The live call goes on: a turn is taken (its lines wait in memory).
      const turn = await manager.continueCall(live.callId, "are you still there?");
      expect(turn.transcript).toBe("yes");
      expect(manager.storeHealth()).toMatchObject({ writable: false, reason: expect.stringContaining("ENOSPC") });
      expect(health).toEqual([false]);

      // New calls are refused with the reason, and hold no slot: five tries, then two calls once space returns.
      for (let i = 0; i < 5; i += 1) {
        const refused = await errorOf(manager.initiateCall({ to: TO, message: "new", mode: "conversation" }));
        expect(refused.code).toBe("STORE_UNAVAILABLE");
        expect(refused.message).toContain("ENOSPC");
      }
      // An inbound call is turned away, not left ringing.
      const inbound = mock.simulateInbound("+15550009999", "+15550000000");
      await waitFor(() => manager.getCall(inbound)?.endReason, "the inbound refusal");
      expect(manager.getCall(inbound)!.endReason).toContain("call log cannot be written");

      // Ending hangs up at the carrier first, then says the record waits.
      const ended = await errorOf(manager.endCall(live.callId));
      expect(ended.code).toBe("STORE_UNAVAILABLE");
      expect(ended.message).toContain("ended at the carrier");
      expect((await mock.getCallStatus(manager.getCall(live.callId)!.providerCallId!)).status).toBe("ended");

      // Space returns: the waiting lines are written, in order, and new calls work again.
      for (const f of readdirSync(dir)) if (f !== "store") rmSync(join(dir, f));
      await waitFor(() => manager.storeHealth().writable, "writes to resume", 5000);
      expect(health).toEqual([false, true]);
      const a = await manager.initiateCall({ to: TO, message: "after", mode: "conversation" });
      const b = await manager.initiateCall({ to: TO, message: "after", mode: "conversation" });
      expect((await errorOf(manager.initiateCall({ to: TO, message: "third" }))).code).toBe("LIMIT_REACHED");
      expect([a.callId, b.callId]).toHaveLength(2);

      const reread = JsonlStore.read(storeDir);
      expect(reread.warnings).toEqual([]);
      expect(reread.calls.get(live.callId)).toMatchObject({ state: "hangup-bot", endReason: "ended by request" });
      expect(reread.transcripts.get(live.callId)!.map((t) => t.text)).toEqual(["before the disk filled", "yes", "are you still there?", "yes"]);
      const logged = readFileSync(join(storeDir, "calls.jsonl"), "utf8").trim().split("\n");
      for (const line of logged) expect(() => JSON.parse(line)).not.toThrow();
    } finally {
      await manager.stop();
    }
  }, 30_000);
});

describe("a long call log", () => {
  const record = (callId: string, state: CallRecord["state"], minute: number): CallRecord => ({
    callId,
    provider: "mock",
    direction: "outbound",
    mode: "notify",
    to: TO,
    state,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString(),
    ...(state === "completed" ? { endedAt: new Date(Date.UTC(2026, 0, 1, 0, minute, 30)).toISOString() } : {}),
    turn: 0,
  });

  it("restores live calls and the newest keepEnded ended ones; the rest moves, every line of it, to a dated file", () => {
    const dir = tempDir();
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i += 1) {
      const id = `call-${i}`;
      lines.push(JSON.stringify({ t: "call", call: record(id, "initiated", i) }));
      const entry: TranscriptEntry = { callId: id, at: record(id, "initiated", i).createdAt, speaker: "bot", kind: "speech", text: `message ${i}`, turn: 0 };
      lines.push(JSON.stringify({ t: "transcript", entry }));
      // Every 1000th call is still live (a restart mid-call); the rest ended.
      if (i % 1000 !== 999) lines.push(JSON.stringify({ t: "call", call: record(id, "completed", i) }));
    }
    writeFileSync(join(dir, "calls.jsonl"), `${lines.join("\n")}\n`);
    const { store, loaded, archived } = JsonlStore.open(dir, { keepEnded: 500 });
    store.close();
    const live = [...loaded.calls.values()].filter((c) => c.state === "initiated");
    expect(live).toHaveLength(20);
    expect(loaded.calls.size).toBe(520);
    expect(archived).toBe(20_000 - 20 - 500);
    // The newest ended calls are the ones kept, with their transcripts.
    expect(loaded.calls.get("call-19998")?.state).toBe("completed");
    expect(loaded.calls.has("call-100")).toBe(false);
    expect(loaded.transcripts.get("call-19998")!.map((t) => t.text)).toEqual(["message 19998"]);
    const archive = readdirSync(dir).filter((f) => /^calls-.+\.jsonl$/.test(f));
    expect(archive).toHaveLength(1);
    const moved = JsonlStore.read(dir); // the live log only
    expect(moved.calls.size).toBe(520);
    const archivedLines = readFileSync(join(dir, archive[0]!), "utf8").trim().split("\n");
    expect(archivedLines).toHaveLength((20_000 - 20 - 500) * 3);
    // Nothing lost: the two files hold every line that was logged.
    expect(archivedLines.length + readFileSync(join(dir, "calls.jsonl"), "utf8").trim().split("\n").length).toBe(lines.length);
  });
});

describe("server-sent events", () => {
  let service: RunningService | undefined;
  afterEach(async () => {
    await service?.close();
    service = undefined;
  });

  it("drop a subscriber that never reads instead of queueing for it without bound", async () => {
    const config = makeConfig({ serve: { port: 0 }, control: { token: "t".repeat(24) }, mock: { ringMs: 1, replyDelayMs: 1, speakMsPerChar: 0 } });
    service = await startService(config, createLogger("silent"));
    const { port } = new URL(service.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.pause(); // never reads
    socket.write(`GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${"t".repeat(24)}\r\n\r\n`);
    const server = service.runtime.manager;
    await waitFor(() => server.eventListeners === 1, "the subscriber to be listening");
    const { callId } = await server.initiateCall({ to: TO, message: "hi", mode: "conversation" });
    await waitFor(() => server.getCall(callId)?.state === "listening", "listening");
    const big = "x".repeat(200_000);
    // ~60 MB of events: far more than socket buffers hold.
    for (let i = 0; i < 300 && server.eventListeners > 0; i += 1) await server.speak(callId, big);
    expect(server.eventListeners).toBe(0);
    socket.destroy();
  }, 60_000);
});

describe("one fault never reaches every call", () => {
  it("a stream whose tick throws is taken off the pacer; the others keep their 20 ms clock", async () => {
    const pacer = new FramePacer();
    let good = 0;
    const errors: unknown[] = [];
    const bad = {
      tick() {
        throw new Error("socket gone");
      },
      onTickError: (err: unknown) => errors.push(err),
    };
    const ok = { tick: () => void (good += 1) };
    pacer.add(bad);
    pacer.add(ok);
    await waitFor(() => good >= 5, "five good ticks", 2000);
    pacer.remove(ok);
    expect(errors).toHaveLength(1);
    expect(pacer.stats.failed).toBe(1);
  });

  it("a carrier or speech engine that throws is reported as PROVIDER_ERROR naming the carrier and step", async () => {
    const config = makeConfig({ mock: { ringMs: 1, replyDelayMs: 1, speakMsPerChar: 0 } });
    const providers = createProviders(config, { logger: createLogger("silent") });
    const mock = providers.get("mock") as MockProvider;
    const { store, loaded } = JsonlStore.open(tempDir());
    const manager = new CallManager({ config, providers, store, loaded, logger: createLogger("silent") });
    await manager.start();
    try {
      const { callId } = await manager.initiateCall({ to: TO, message: "hi", mode: "conversation" });
      await waitFor(() => manager.getCall(callId)?.state === "listening", "listening");
      mock.speak = async () => {
        throw new Error("TTS engine crashed: socket hang up");
      };
      const err = await errorOf(manager.speak(callId, "hello"));
      expect(err).toMatchObject({ code: "PROVIDER_ERROR", message: "mock could not speak: TTS engine crashed: socket hang up" });
      expect(manager.getCall(callId)!.state).toBe("listening");
    } finally {
      await manager.stop();
    }
  });
});

describe("bounded memory", () => {
  it("the Mock carrier forgets ended calls beyond its history, oldest first", async () => {
    const config = makeConfig({ maxConcurrentCalls: 5, mock: { ringMs: 0, replyDelayMs: 0, speakMsPerChar: 0 } });
    const providers = createProviders(config, { logger: createLogger("silent") });
    const mock = providers.get("mock") as MockProvider;
    const events: string[] = [];
    await mock.start((e) => events.push(e.type));
    const ids: string[] = [];
    for (let i = 0; i < 1005; i += 1) {
      const { providerCallId } = await mock.placeCall({ callId: `c${i}`, to: TO });
      await mock.hangup(providerCallId);
      ids.push(providerCallId);
    }
    expect((await mock.getCallStatus(ids[0]!)).status).toBe("unknown");
    expect((await mock.getCallStatus(ids[4]!)).status).toBe("unknown");
    expect((await mock.getCallStatus(ids[5]!)).status).toBe("ended");
    expect((await mock.getCallStatus(ids.at(-1)!)).status).toBe("ended");
    await mock.stop();
  });
});
