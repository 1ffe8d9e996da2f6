/**
 * RTP path benchmark: N concurrent calls over loopback, each a real
 * RtpUdpTransport paced by the shared deadline scheduler, against a peer
 * process that plays Asterisk's side. Reports per N the p99 pacing error
 * (our ticks vs the 20 ms grid, and packet spacing as the peer sees it),
 * frames lost both ways, and CPU per call-second of this process.
 */
import { fork } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { silentFrame } from "../audio/frame.js";
import { FramePacer } from "../audio/pacer.js";
import { buildRtp } from "../rtp/packet.js";
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

/** One side of the measured path: opened against the peer's ports, paced by `pacer`, closed after the run. */
interface RtpSide {
  /** The local ports, one per call, for the peer to send to. */
  ports: number[];
  connect(peerPorts: number[]): Promise<void>;
  /** Frames we could not read (sequence gaps in what the peer sent). */
  lost(): number;
  close(): Promise<void>;
}

/**
 * N calls through the real path: RtpUdpTransports on the shared kind of
 * pacer, every call talking (a frame queued per tick, as a synthesizer
 * would) and its caller audio read as the recogniser reads it.
 */
async function ourPath(calls: number, pacer: FramePacer): Promise<RtpSide> {
  const transports: RtpUdpTransport[] = [];
  for (let i = 0; i < calls; i += 1) {
    transports.push(await RtpUdpTransport.open({ codec: "ulaw", bindHost: "127.0.0.1", portMin: 42000, portMax: 45999, pacer }));
  }
  const readers = transports.map(async (t) => {
    for await (const _f of t.frames());
  });
  const talk = silentFrame(8000);
  const detachFeeder = pacer.add({ tick: () => transports.forEach((t) => t.queuedFrames < 2 && t.write(talk)) });
  return {
    ports: transports.map((t) => t.localPort),
    connect: async (peerPorts) => void (await Promise.all(transports.map((t, i) => t.connect("127.0.0.1", peerPorts[i]!)))),
    lost: () => transports.reduce((a, t) => a + t.stats.lost, 0),
    close: async () => {
      detachFeeder();
      for (const t of transports) t.close();
      await Promise.all(readers);
    },
  };
}

/**
 * The ceiling of the same machine in the same run: the same sockets and the
 * same pacer sending the same 172-byte packets at the same rate, with no
 * processing at all (a prebuilt packet whose sequence number is bumped in
 * place; what arrives is dropped unread). What our path costs above this is ours.
 */
async function bareLoop(calls: number, pacer: FramePacer): Promise<RtpSide> {
  const sockets: Socket[] = [];
  for (let port = 42000; sockets.length < calls && port <= 45999; port += 1) {
    const socket = createSocket("udp4");
    const bound = await new Promise<boolean>((resolve) => {
      socket.once("error", () => resolve(false));
      socket.bind(port, "127.0.0.1", () => resolve(true));
    });
    if (!bound) {
      socket.close();
      continue;
    }
    socket.on("error", () => undefined);
    socket.on("message", () => undefined);
    sockets.push(socket);
  }
  const detach = sockets.map((socket) => {
    const packet = Buffer.from(buildRtp({ marker: false, payloadType: 0, sequenceNumber: 0, timestamp: 0, ssrc: 7, payload: new Uint8Array(160).fill(0xff) }));
    let seq = 0;
    return pacer.add({
      tick: () => {
        seq = (seq + 1) & 0xffff;
        packet.writeUInt16BE(seq, 2);
        socket.send(packet);
      },
    });
  });
  return {
    ports: sockets.map((s) => s.address().port),
    connect: async (peerPorts) => void (await Promise.all(sockets.map((s, i) => new Promise<void>((r) => s.connect(peerPorts[i]!, "127.0.0.1", () => r()))))),
    lost: () => 0,
    close: async () => {
      for (const d of detach) d();
      await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

export type RtpPath = "ours" | "bare";

/** `calls` concurrent calls for `seconds` (after a second of warm-up) on our path or the bare loop, against the peer process. */
export async function benchRtp(calls: number, seconds: number, path: RtpPath = "ours"): Promise<RtpBenchRow> {
  const peer = fork(fileURLToPath(new URL("./rtp-peer.js", import.meta.url)), { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const next = <T>(type: string) => new Promise<T>((resolve) => peer.once("message", (m: { type: string }) => m.type === type && resolve(m as T)));
  peer.send({ type: "open", count: calls });
  const { ports } = await next<{ ports: number[] }>("opened");

  const pacer = new FramePacer();
  const side = await (path === "ours" ? ourPath : bareLoop)(calls, pacer);
  peer.send({ type: "start", targets: side.ports });
  await side.connect(ports);

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
  const lostFromPeer = side.lost();
  await side.close();
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
