/**
 * RTP path benchmark: N concurrent calls over loopback, each a real
 * RtpUdpTransport paced by the shared deadline scheduler, against a peer
 * process that plays Asterisk's side. Reports per N the p99 pacing error
 * (our ticks vs the 20 ms grid, and packet spacing as the peer sees it),
 * frames lost both ways, and CPU per call-second of this process.
 */
import { fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { silentFrame } from "../audio/frame.js";
import { FramePacer } from "../audio/pacer.js";
import { RtpUdpTransport } from "../rtp/udp-transport.js";
import { percentile } from "../util/stats.js";

export interface RtpBenchRow {
  calls: number;
  tickP99Ms: number;
  spacingP99Ms: number;
  lostToPeer: number;
  lostFromPeer: number;
  cpuMsPerCallSecond: number;
  coresUsed: number;
}

export async function benchRtp(calls: number, seconds: number): Promise<RtpBenchRow> {
  const peer = fork(fileURLToPath(new URL("./rtp-peer.js", import.meta.url)), { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const next = <T>(type: string) => new Promise<T>((resolve) => peer.once("message", (m: { type: string }) => m.type === type && resolve(m as T)));
  peer.send({ type: "open", count: calls });
  const { ports } = await next<{ ports: number[] }>("opened");

  const pacer = new FramePacer();
  const transports: RtpUdpTransport[] = [];
  for (let i = 0; i < calls; i += 1) {
    transports.push(await RtpUdpTransport.open({ codec: "ulaw", bindHost: "127.0.0.1", portMin: 42000, portMax: 45999, pacer }));
  }
  // Caller audio is read as the recogniser would read it.
  const readers = transports.map(async (t) => {
    for await (const _f of t.frames());
  });
  // Keep every call talking: one frame queued per tick, as a synthesizer would.
  const talk = silentFrame(8000);
  const feeder = { tick: () => transports.forEach((t) => t.queuedFrames < 2 && t.write(talk)) };
  const detachFeeder = pacer.add(feeder);
  peer.send({ type: "start", targets: transports.map((t) => t.localPort) });
  await Promise.all(transports.map((t, i) => t.connect("127.0.0.1", ports[i]!)));

  await sleep(1000);
  pacer.recordLateness = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  pacer.recordLateness = false;

  const stats = next<{ lost: number; spacing: number }>("stats");
  peer.send({ type: "stop" });
  const peerStats = await stats;
  detachFeeder();
  const lostFromPeer = transports.reduce((a, t) => a + t.stats.lost, 0);
  for (const t of transports) t.close();
  await Promise.all(readers);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    calls,
    tickP99Ms: percentile(pacer.stats.lateness, 0.99),
    spacingP99Ms: peerStats.spacing,
    lostToPeer: peerStats.lost,
    lostFromPeer,
    cpuMsPerCallSecond: cpuMs / (calls * elapsed),
    coresUsed: cpuMs / 1000 / elapsed,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const MACHINE = `${availableParallelism()} cores, Node ${process.version}`;
