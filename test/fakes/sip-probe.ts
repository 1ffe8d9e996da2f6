/**
 * One unauthenticated SIP INVITE over UDP, as a scanner sends it: what the
 * PBX answers first with a final status (after any 100 Trying), and the ACK
 * that ends that transaction.
 */
import { createSocket } from "node:dgram";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";

export interface ProbeResult {
  /** The first final response's status line, e.g. "SIP/2.0 401 Unauthorized"; undefined when none came. */
  statusLine?: string;
  status?: number;
}

export async function probeInvite(opts: { host?: string; port: number; fromUser: string; to: string; timeoutMs?: number }): Promise<ProbeResult> {
  const host = opts.host ?? "127.0.0.1";
  const socket = createSocket("udp4");
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", () => r()));
  const local = socket.address() as AddressInfo;
  const branch = `z9hG4bK${randomBytes(6).toString("hex")}`;
  const tag = randomBytes(4).toString("hex");
  const callId = `${randomBytes(8).toString("hex")}@probe`;
  const sdp = ["v=0", `o=- 1 1 IN IP4 ${local.address}`, "s=-", `c=IN IP4 ${local.address}`, "t=0 0", `m=audio ${local.port + 2} RTP/AVP 0`, "a=rtpmap:0 PCMU/8000", ""].join("\r\n");
  const head = (method: string, toTag = "") =>
    [
      `${method} sip:${opts.to}@${host}:${opts.port} SIP/2.0`,
      `Via: SIP/2.0/UDP ${local.address}:${local.port};branch=${branch};rport`,
      `From: <sip:${opts.fromUser}@${local.address}>;tag=${tag}`,
      `To: <sip:${opts.to}@${host}:${opts.port}>${toTag}`,
      `Call-ID: ${callId}`,
      `CSeq: 1 ${method}`,
      `Contact: <sip:${opts.fromUser}@${local.address}:${local.port}>`,
      "Max-Forwards: 70",
    ].join("\r\n");
  const invite = `${head("INVITE")}\r\nContent-Type: application/sdp\r\nContent-Length: ${Buffer.byteLength(sdp)}\r\n\r\n${sdp}`;
  try {
    return await new Promise<ProbeResult>((resolve) => {
      const timer = setTimeout(() => resolve({}), opts.timeoutMs ?? 5000);
      socket.on("message", (msg) => {
        const text = msg.toString("utf8");
        const statusLine = text.split("\r\n")[0] ?? "";
        const status = Number(/^SIP\/2\.0 (\d{3})/.exec(statusLine)?.[1]);
        if (!status || status < 200) return;
        clearTimeout(timer);
        const toTag = /^To:.*?(;tag=[^;\r\n]+)/im.exec(text)?.[1] ?? "";
        socket.send(`${head("ACK", toTag)}\r\nContent-Length: 0\r\n\r\n`, opts.port, host);
        resolve({ statusLine, status });
      });
      socket.send(invite, opts.port, host);
    });
  } finally {
    await new Promise((r) => setTimeout(r, 50));
    socket.close();
  }
}
