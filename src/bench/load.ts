/**
 * Bench figures for the service as a whole: many lab phones calling the real
 * PBX at once (voicecall lab load), and restoring a long call log.
 */
import { writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CallStore } from "../calls/store.js";
import { resolveConfig } from "../config/load.js";
import { VoiceCallClient } from "../gateway/client.js";
import { startLab } from "../lab/cli.js";
import { runLoad, type LoadReport } from "../lab/load.js";
import { createLogger } from "../log.js";
import { startService } from "../server/service.js";
import { FliteSynthesizer } from "../speech/flite.js";
import { synthesizeAll } from "../speech/types.js";

export const LOAD_SENTENCE = "I would like to book a table for four people.";

/** The lab with the service as `voicecall serve --lab` runs it; `lab load` at each size, in turn. */
export async function benchLabLoad(sizes: number[]): Promise<Array<{ calls: number; report: LoadReport }>> {
  const io = { out: () => undefined, err: () => undefined };
  const started = await startLab({ store: mkdtempSync(join(tmpdir(), "voicecall-bench-")), log: { level: "warn" } }, io);
  if (!started.lab) throw new Error(started.reason ?? "the lab cannot run here");
  const lab = started.lab;
  try {
    const { config } = resolveConfig({ ...started.raw, serve: { port: 0 }, control: { token: "bench-token-0123456789abcdef" } });
    const service = await startService(config, createLogger("silent"));
    try {
      const client = new VoiceCallClient({ url: service.url, token: service.token });
      const say = await synthesizeAll(new FliteSynthesizer(), LOAD_SENTENCE, 8000);
      // The recogniser and greeting are readied at start: give that its moment, as a user's first call would.
      await new Promise((r) => setTimeout(r, 2000));
      const out = [];
      for (const calls of sizes) out.push({ calls, report: await runLoad(lab, client, service.url, { calls, say, sayText: LOAD_SENTENCE, holdMs: 12_000 }) });
      return out;
    } finally {
      await service.close();
    }
  } finally {
    await lab.stop();
  }
}

/** A log of `calls` ended calls (plus a few live), opened as a restart would: time and memory taken. */
export function benchRestore(calls: number, keepEnded = 1000): { ms: number; rssMb: number; restored: number; archived: number } {
  const dir = mkdtempSync(join(tmpdir(), "voicecall-restore-"));
  const lines: string[] = [];
  for (let i = 0; i < calls; i += 1) {
    const id = `call-${i}`;
    const at = new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString();
    const record = { callId: id, provider: "mock", direction: "outbound", mode: "conversation", to: "+15550001234", createdAt: at, turn: 1 };
    lines.push(JSON.stringify({ t: "call", call: { ...record, state: "initiated" } }));
    for (let t = 0; t < 4; t += 1) lines.push(JSON.stringify({ t: "transcript", entry: { callId: id, at, speaker: t % 2 ? "caller" : "bot", kind: "speech", text: "a line of what was said on the call, about this long", turn: 1 } }));
    if (i % 1000 !== 0) lines.push(JSON.stringify({ t: "call", call: { ...record, state: "completed", endedAt: at } }));
  }
  writeFileSync(join(dir, "calls.jsonl"), `${lines.join("\n")}\n`);
  global.gc?.();
  const rss = process.memoryUsage().rss;
  const start = performance.now();
  const { store, loaded, archived } = CallStore.open(dir, { keepEnded });
  const ms = performance.now() - start;
  const rssMb = (process.memoryUsage().rss - rss) / 1e6;
  store.close();
  return { ms, rssMb, restored: loaded.calls.size, archived };
}
