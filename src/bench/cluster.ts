/**
 * Bench figures for several instances: what a transcript line costs in each
 * store (the JSONL file, a real PostgreSQL with fsync on), and lab phones
 * calling the PBX at once with one instance and with two on a shared store
 * (each the built service in its own process, as deployed): calls set up
 * per second and the greeting's p95.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TranscriptEntry } from "../calls/types.js";
import { Lab, labUnavailableReason } from "../lab/lab.js";
import { runLoad, type LoadReport } from "../lab/load.js";
import { LocalPostgres, postgresUnavailableReason } from "../lab/postgres.js";
import { VoiceCallClient } from "../server/client.js";
import { FliteSynthesizer } from "../speech/flite.js";
import { synthesizeAll } from "../speech/types.js";
import { JsonlStore } from "../store/jsonl.js";
import { PostgresStore } from "../store/postgres.js";
import { percentile } from "../util/stats.js";
import { LOAD_SENTENCE } from "./load.js";

export interface StoreWriteRow {
  store: "jsonl" | "postgres";
  lines: number;
  /** Wall time per line from the first append to the last one durable (written to the file, or committed). */
  usPerLine: number;
  /** CPU this process spent per line (the service's own cost). */
  cpuUsPerLine: number;
  /** One line said on a quiet store: until it is in the file, or committed. */
  lagP50Ms: number;
}

const line = (callId: string, i: number): TranscriptEntry => ({
  callId,
  at: new Date().toISOString(),
  speaker: i % 2 ? "caller" : "bot",
  kind: "speech",
  text: `line ${i}: I would like to book a table for four people at eight tonight.`,
  turn: i,
});

/** `lines` lines appended back to back, then 50 lines one at a time (each waited for), on both stores. */
export async function benchStoreWrites(lines: number): Promise<StoreWriteRow[]> {
  const reason = postgresUnavailableReason();
  const out: StoreWriteRow[] = [];
  const jsonl = JsonlStore.open(mkdtempSync(join(tmpdir(), "voicecall-bench-store-"))).store;
  out.push(await measure("jsonl", lines, (i) => jsonl.appendTranscript(line("bench-call", i)), async () => undefined));
  await jsonl.close();
  if (reason) throw new Error(`PostgreSQL: ${reason}`);
  const pg = await LocalPostgres.start({ port: await freePort(), durable: true });
  try {
    const url = await pg.createDatabase("voicecall_bench");
    const { store } = await PostgresStore.open({ kind: "postgres", dir: mkdtempSync(join(tmpdir(), "voicecall-bench-pg-")), url, poolSize: 4, connectTimeoutMs: 5000 }, { nodeId: "bench" });
    const written = async () => {
      while (store.health.waiting > 0) await new Promise((r) => setTimeout(r, 1));
    };
    out.push(await measure("postgres", lines, (i) => store.appendTranscript(line("bench-call", i)), written));
    await store.close();
  } finally {
    await pg.stop();
  }
  return out;
}

async function measure(store: StoreWriteRow["store"], lines: number, append: (i: number) => void, written: () => Promise<void>): Promise<StoreWriteRow> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < lines; i += 1) append(i);
  await written();
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const lags: number[] = [];
  for (let i = 0; i < 50; i += 1) {
    const at = performance.now();
    append(lines + i);
    await written();
    lags.push(performance.now() - at);
  }
  return { store, lines, usPerLine: (ms * 1000) / lines, cpuUsPerLine: (used.user + used.system) / lines, lagP50Ms: percentile(lags, 0.5) };
}

export interface InstancesRow {
  instances: number;
  calls: number;
  report: LoadReport;
  /** Calls answered per second, all dialled at once: N over the time to the last one's first audio. */
  setupPerSecond: number;
  /** What the instances said about leases and take-overs meanwhile (none expected: every instance is alive). */
  leaseTrouble: string[];
}

/**
 * `calls` lab phones call at once, against one instance and then two on one PostgreSQL store (the first by
 * name holds the PBX's entry and hands each caller to the instance with the most room).
 */
export async function benchInstances(calls: number, counts: number[] = [1, 2]): Promise<InstancesRow[]> {
  const reason = labUnavailableReason() ?? postgresUnavailableReason();
  if (reason) throw new Error(reason);
  const lab = await Lab.start({ waitForLabMs: 600_000 });
  const pg = await LocalPostgres.start({ port: await freePort(), durable: true });
  const say = await synthesizeAll(new FliteSynthesizer(), LOAD_SENTENCE, 8000);
  const out: InstancesRow[] = [];
  try {
    for (const [run, count] of counts.entries()) {
      const url = await pg.createDatabase(`voicecall_bench_${run}`);
      const instances = await Promise.all(Array.from({ length: count }, (_, i) => serveInstance(`node-${i + 1}`, url, lab)));
      try {
        // Leases renewed, the entry taken, recognisers and greetings readied, as a user's first call would find them.
        await new Promise((r) => setTimeout(r, 3000));
        const clients = instances.map((s) => s.client);
        const report = await runLoad(lab, clients[0]!, { calls, say, sayText: LOAD_SENTENCE, holdMs: 12_000, firstExtension: 7000 + 100 * run, clients });
        const answered = report.calls.flatMap((c) => (c.answerMs === undefined ? [] : [c.answerMs]));
        const leaseTrouble = instances.flatMap((s) => s.said().split("\n").filter((l) => /lease|taking over|taken over|took this call/.test(l)));
        out.push({ instances: count, calls, report, setupPerSecond: answered.length / (Math.max(...answered) / 1000), leaseTrouble });
      } finally {
        await Promise.all(instances.map((s) => s.stop()));
      }
    }
  } finally {
    await pg.stop();
    await lab.stop();
  }
  return out;
}

const TOKEN = "bench-cluster-token-0123456789";

/** The built service in its own process on the shared store, answering the lab's callers. */
async function serveInstance(nodeId: string, url: string, lab: Lab): Promise<{ client: VoiceCallClient; said(): string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `voicecall-bench-${nodeId}-`));
  const configFile = join(dir, "voicecall.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      provider: "asterisk",
      inboundPolicy: "open",
      inboundGreeting: "Hello, you reached the voice agent.",
      maxConcurrentCalls: 100,
      store: { url, dir: join(dir, "files") },
      cluster: { nodeId, leaseMs: 3000 },
      serve: { port: 0 },
      control: { token: TOKEN },
      log: { level: "warn" },
      asterisk: { ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: lab.info.ariApp } },
    }),
  );
  const cli = fileURLToPath(new URL("../cli.js", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [cli, "--config", configFile, "serve"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  child.stdout!.resume();
  const deadline = Date.now() + 60_000;
  let address: string | undefined;
  while (!(address = /serving on (http:\/\/\S+)/.exec(err)?.[1])) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`instance ${nodeId} did not start: ${err.slice(-800)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    client: new VoiceCallClient({ url: address, token: TOKEN }),
    said: () => err,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
