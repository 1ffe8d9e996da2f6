/**
 * The far side of the RTP benchmark, in its own process (as Asterisk would
 * be): for each call it sends 20 ms mu-law packets on its own clock and
 * receives ours, measuring arrival spacing and sequence gaps.
 */
import { createSocket, type Socket } from "node:dgram";
import { buildRtp, parseRtp } from "../rtp/packet.js";
import { percentile } from "../util/stats.js";

interface PeerCall {
  socket: Socket;
  seq: number;
  lastSeq?: number;
  lastArrival?: number;
  received: number;
  lost: number;
}

type Command = { type: "open"; count: number } | { type: "start"; targets: number[] } | { type: "stop" };

const calls: PeerCall[] = [];
const spacingErrors: number[] = [];
let timer: NodeJS.Timeout | null = null;
let measuring = false;
const payload = new Uint8Array(160).fill(0xff);
const PHASES = 10;

process.on("message", async (msg: Command) => {
  if (msg.type === "open") {
    for (let i = 0; i < msg.count; i += 1) {
      const socket = createSocket("udp4");
      await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
      const call: PeerCall = { socket, seq: 0, received: 0, lost: 0 };
      socket.on("error", () => undefined);
      socket.on("message", (m) => onPacket(call, m));
      calls.push(call);
    }
    process.send!({ type: "opened", ports: calls.map((c) => c.socket.address().port) });
  } else if (msg.type === "start") {
    await Promise.all(msg.targets.map((t, i) => new Promise<void>((r) => calls[i]!.socket.connect(t, "127.0.0.1", () => r()))));
    // Like a PBX whose channels started at different moments: each call has
    // its own phase within the 20 ms frame (PHASES slots of 20/PHASES ms).
    const start = performance.now();
    let n = 0;
    const tick = () => {
      const phase = n % PHASES;
      n += 1;
      for (let i = phase; i < calls.length; i += PHASES) {
        const c = calls[i]!;
        c.socket.send(buildRtp({ marker: false, payloadType: 0, sequenceNumber: c.seq, timestamp: c.seq * 160, ssrc: 99, payload }));
        c.seq = (c.seq + 1) & 0xffff;
      }
      timer = setTimeout(tick, Math.max(0, start + n * (20 / PHASES) - performance.now()));
    };
    tick();
    // Spacing is measured after a warm-up second.
    setTimeout(() => (measuring = true), 1000);
  } else if (msg.type === "stop") {
    if (timer) clearTimeout(timer);
    const received = calls.reduce((a, c) => a + c.received, 0);
    const lost = calls.reduce((a, c) => a + c.lost, 0);
    const sent = calls.reduce((a, c) => a + c.seq, 0);
    process.send!({ type: "stats", received, lost, sent, spacing: percentile(spacingErrors, 0.99) });
    for (const c of calls) c.socket.close();
    process.exit(0);
  }
});

function onPacket(call: PeerCall, m: Buffer): void {
  const now = performance.now();
  const p = parseRtp(m);
  call.received += 1;
  if (call.lastSeq !== undefined) {
    const gap = (p.sequenceNumber - call.lastSeq) & 0xffff;
    if (gap > 1 && gap < 1000) call.lost += gap - 1;
  }
  if (measuring && call.lastArrival !== undefined) spacingErrors.push(Math.abs(now - call.lastArrival - 20));
  call.lastSeq = p.sequenceNumber;
  call.lastArrival = now;
}
