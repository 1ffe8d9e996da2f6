import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { latencyReport, turnLatencies } from "../src/calls/latency.js";
import { JsonlStore } from "../src/store/jsonl.js";
import type { CallRecord } from "../src/calls/types.js";
import { tempDir } from "./helpers.js";

const record = (callId: string, state: CallRecord["state"]): CallRecord => ({
  callId,
  provider: "mock",
  direction: "outbound",
  mode: "conversation",
  to: "+15550001234",
  state,
  createdAt: "2026-01-01T00:00:00.000Z",
  turn: 1,
});

describe("call store", () => {
  it("keeps the newest snapshot per call and every transcript line", () => {
    const dir = tempDir();
    const { store } = JsonlStore.open(dir);
    store.appendCall(record("a", "initiated"));
    store.appendTranscript({ callId: "a", at: "t1", speaker: "bot", kind: "speech", text: "hello", turn: 0 });
    store.appendCall(record("a", "listening"));
    store.appendTranscript({ callId: "a", at: "t2", speaker: "caller", kind: "speech", text: "hi", turn: 1 });
    store.close();
    const { loaded } = JsonlStore.open(dir);
    expect(loaded.calls.get("a")?.state).toBe("listening");
    expect(loaded.transcripts.get("a")?.map((t) => t.text)).toEqual(["hello", "hi"]);
    expect(loaded.warnings).toEqual([]);
  });

  it("skips corrupt and truncated lines with a warning naming the line", () => {
    const dir = tempDir();
    const { store } = JsonlStore.open(dir);
    store.appendCall(record("a", "ringing"));
    store.close();
    const path = join(dir, "calls.jsonl");
    appendFileSync(path, 'garbage\n{"t":"call","call":{"callId":"b"}}\n{"t":"transcript","entry":{"callId":"a","at":"x","speak');
    const { store: reopened, loaded } = JsonlStore.open(dir);
    expect(loaded.calls.size).toBe(1);
    expect(loaded.warnings).toHaveLength(3);
    expect(loaded.warnings[0]).toMatch(/^calls\.jsonl:2: /);
    // The next record must not be glued onto the truncated line.
    reopened.appendCall(record("c", "initiated"));
    reopened.close();
    const again = JsonlStore.open(dir).loaded;
    expect([...again.calls.keys()].sort()).toEqual(["a", "c"]);
    expect(readFileSync(path, "utf8").endsWith("\n")).toBe(true);
  });

  it("opens an empty or missing file", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "calls.jsonl"), "");
    expect(JsonlStore.open(dir).loaded.calls.size).toBe(0);
    expect(JsonlStore.open(tempDir()).loaded.calls.size).toBe(0);
  });
});

describe("turn latency from the store", () => {
  it("measures from the caller's last words to the start of our reply, skipping greetings", () => {
    const dir = tempDir();
    const { store } = JsonlStore.open(dir);
    const line = (callId: string, speaker: "bot" | "caller", ms: number, kind: "speech" | "interrupted" = "speech", origin?: "agent" | "model" | "service") =>
      store.appendTranscript({ callId, at: new Date(Date.UTC(2026, 0, 1) + ms).toISOString(), speaker, kind, text: "x", turn: 1, ...(origin ? { origin } : {}) });
    line("a", "bot", 0); // greeting: no caller words before it
    line("a", "caller", 1000);
    line("a", "caller", 2000); // the last words before the reply count
    line("a", "bot", 2400);
    line("a", "bot", 2500, "interrupted");
    line("a", "caller", 3000);
    line("a", "bot", 3900);
    line("b", "caller", 0);
    line("b", "bot", 1500, "speech", "model");
    // The service's own notice right after the caller's words is no reply anyone waited for.
    line("c", "caller", 0);
    line("c", "bot", 5, "speech", "service");
    store.close();
    expect(turnLatencies(JsonlStore.read(dir))).toEqual({ calls: 2, samples: [400, 900, 1500] });
    expect(latencyReport(JsonlStore.read(dir))).toMatchObject({ calls: 2, turns: 3, p50Ms: 900, maxMs: 1500 });
  });
});
