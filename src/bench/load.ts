/**
 * Bench figures for the service as a whole: many lab phones calling the real
 * PBX at once (voicecall lab load), and restoring a long call log.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { JsonlStore } from "../store/jsonl.js";
import { VoiceCallClient } from "../server/client.js";
import { Lab, labUnavailableReason } from "../lab/lab.js";
import { runLoad, type LoadReport } from "../lab/load.js";
import { FliteSynthesizer } from "../speech/flite.js";
import { synthesizeAll } from "../speech/types.js";

export const LOAD_SENTENCE = "I would like to book a table for four people.";

/**
 * `voicecall serve --lab` in its own process, as `npm start` runs it (so the
 * memory figures are the service's alone), then `lab load` at each size.
 */
export async function benchLabLoad(sizes: number[]): Promise<Array<{ calls: number; report: LoadReport }>> {
  const reason = labUnavailableReason();
  if (reason) throw new Error(reason);
  const dir = mkdtempSync(join(tmpdir(), "voicecall-bench-"));
  const token = "bench-token-0123456789abcdef";
  const configFile = join(dir, "voicecall.json");
  writeFileSync(configFile, JSON.stringify({ store: join(dir, "store"), serve: { port: 0 }, control: { token }, log: { level: "warn" } }));
  const cli = fileURLToPath(new URL("../cli.js", import.meta.url));
  const child = spawn(process.execPath, [cli, "--config", configFile, "serve", "--lab"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  child.stdout.resume();
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the lab service did not start: ${err.slice(-500)}`)), 180_000);
      const poll = setInterval(() => {
        const m = /serving on (http:\/\/\S+)/.exec(err);
        if (m) {
          clearInterval(poll);
          clearTimeout(timer);
          resolve(m[1]!);
        } else if (child.exitCode !== null) {
          clearInterval(poll);
          clearTimeout(timer);
          reject(new Error(`the lab service exited: ${err.slice(-500)}`));
        }
      }, 100);
    });
    // The recogniser and greeting are readied at start: give that its moment, as a user's first call would.
    await new Promise((r) => setTimeout(r, 2000));
    const client = new VoiceCallClient({ url, token });
    const say = await synthesizeAll(new FliteSynthesizer(), LOAD_SENTENCE, 8000);
    const lab = await Lab.running();
    const out = [];
    for (const calls of sizes) out.push({ calls, report: await runLoad(lab, client, { calls, say, sayText: LOAD_SENTENCE, holdMs: 12_000 }) });
    return out;
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGINT");
    await exited;
  }
}

/**
 * A log of `calls` ended calls (plus a few live), opened as a restart would:
 * time and memory taken; and, as the ceiling in the same run, the same file
 * read and every line parsed with nothing else done (`bareMs`).
 */
export function benchRestore(calls: number, keepEnded = 1000): { ms: number; bareMs: number; rssMb: number; restored: number; archived: number } {
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
  const bareStart = performance.now();
  for (const line of readFileSync(join(dir, "calls.jsonl"), "utf8").split("\n")) if (line) JSON.parse(line);
  const bareMs = performance.now() - bareStart;
  global.gc?.();
  const rss = process.memoryUsage().rss;
  const start = performance.now();
  const { store, loaded, archived } = JsonlStore.open(dir, { keepEnded });
  const ms = performance.now() - start;
  const rssMb = (process.memoryUsage().rss - rss) / 1e6;
  store.close();
  return { ms, bareMs, rssMb, restored: loaded.calls.size, archived };
}
