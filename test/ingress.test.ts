/**
 * The public ingress under hostile input: limits on media sockets, replay
 * keys across restarts, and a fuzz run of malformed webhooks and WebSocket
 * frames (no crash, every refusal a typed error, memory flat).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import twilio from "twilio";
import { createLogger } from "../src/log.js";
import { ReplayGuard } from "../src/server/replay.js";
import { startService, type RunningService } from "../src/server/service.js";
import { AUTH_ID, AUTH_TOKEN as PLIVO_TOKEN, v3Signature } from "./fakes/plivo.js";
import { API_KEY, CONNECTION_ID, FakeTelnyx } from "./fakes/telnyx.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, callSid, streamOf } from "./fakes/twilio.js";
import { freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const ERROR_CODES = new Set(["UNAUTHORIZED", "INVALID_PARAMS", "LIMIT_REACHED", "TIMEOUT", "NOT_FOUND", "UNAVAILABLE"]);

/** A small deterministic generator, so a failing input can be found again. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("public ingress (Twilio, Telnyx and Plivo on one service)", () => {
  let fake: FakeTwilio;
  let telnyx: FakeTelnyx;
  let service: RunningService;
  let port: number;
  let webhookUrl: string;
  let streamUrl: string;

  beforeAll(async () => {
    fake = await FakeTwilio.start();
    telnyx = await FakeTelnyx.start();
    port = await freePort();
    webhookUrl = `http://127.0.0.1:${port}/voice/webhook`;
    streamUrl = `ws://127.0.0.1:${port}/voice/stream`;
    const config = makeConfig({
      provider: "twilio",
      fromNumber: "+15550009999",
      twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
      // Every cloud carrier's webhook and stream handlers on the one ingress.
      telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID, publicKey: telnyx.publicKey },
      plivo: { authId: AUTH_ID, authToken: PLIVO_TOKEN },
      routing: { rules: [{ prefix: "+44", provider: "telnyx" }, { prefix: "+49", provider: "plivo" }] },
      publicUrl: webhookUrl,
      serve: { port, bind: "127.0.0.1" },
      inboundPolicy: "disabled",
      streaming: { preStartTimeoutMs: 300, maxPendingConnections: 6, maxPendingConnectionsPerIp: 3, maxConnections: 8 },
    });
    service = await startService(config, createLogger("silent"), { apiBaseUrls: { twilio: fake.baseUrl, telnyx: telnyx.baseUrl } });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
    await telnyx?.close();
  });

  const open = (url = streamUrl) =>
    new Promise<{ ws?: WebSocket; status?: number; code?: string }>((resolve) => {
      const ws = new WebSocket(url);
      ws.once("open", () => resolve({ ws }));
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode, code: JSON.parse(body).error.code }));
      });
      ws.once("error", () => resolve({}));
    });
  const closeOf = (ws: WebSocket) => new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));

  it("caps pending sockets per address and in all, and closes a socket that never starts", async () => {
    const held: WebSocket[] = [];
    for (let i = 0; i < 3; i += 1) held.push((await open()).ws!);
    const fourth = await open();
    expect(fourth.status).toBe(429);
    expect(fourth.code).toBe("LIMIT_REACHED");
    // The pre-start timeout frees them.
    const codes = await Promise.all(held.map(closeOf));
    expect(codes.every((c) => c === 1008 || c === 1006)).toBe(true);
    expect((await open()).ws).toBeDefined();
  });

  it("a stream's lifecycle message one carrier reads is not refused because another carrier cannot read it", async () => {
    const { ws } = await open();
    let closedEarly = false;
    ws!.once("close", () => (closedEarly = true));
    // Twilio's first message, which Plivo's protocol does not have.
    ws!.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
    await new Promise((r) => setTimeout(r, 150));
    expect(closedEarly).toBe(false);
    ws!.terminate();
  });

  it("closes a socket sending a frame over 256 KB before parsing it, and keeps serving", async () => {
    const { ws } = await open();
    const closed = closeOf(ws!);
    ws!.send("x".repeat(300 * 1024));
    expect(await closed).toBe(1009);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
  });

  it("keeps replay keys across a restart inside the window", async () => {
    const dir = tempDir();
    const log = createLogger("silent");
    const first = ReplayGuard.open(dir, log);
    expect(first.firstSeen("k1")).toBe(true);
    expect(first.firstSeen("k1")).toBe(false);
    const reopened = ReplayGuard.open(dir, log);
    expect(reopened.firstSeen("k1")).toBe(false);
    expect(reopened.firstSeen("k2")).toBe(true);
    // Outside the window a key is new again.
    await new Promise((r) => setTimeout(r, 20));
    const later = ReplayGuard.open(dir, log, 1);
    expect(later.size).toBe(0);
  });

  it("survives 10,000 malformed webhooks and frames: each refused with a typed error, memory flat", async () => {
    const rand = prng(20261130);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    const codes = new Map<string, number>();
    const tally = (code: string) => codes.set(code, (codes.get(code) ?? 0) + 1);

    const webhookInput = (): { url: string; init: RequestInit; signed: boolean } => {
      const kind = Math.floor(rand() * 10);
      const query = pick(["", "?type=status", "?type=voice", "?type=resume", "?type=%00%ff", "?type=" + "a".repeat(300)]);
      const url = webhookUrl + query;
      const headers: Record<string, string> = { "content-type": pick(["application/x-www-form-urlencoded", "application/json", "text/plain"]) };
      let body: string | Buffer = junk(Math.floor(rand() * 2000));
      if (kind === 0) {
        // No signature at all.
      } else if (kind === 1) {
        headers["x-twilio-signature"] = junk(20).toString("base64");
      } else if (kind === 2) {
        // Validly signed, hostile content: missing or malformed fields, another account.
        const params = pick<Record<string, string>>([
          {},
          { AccountSid: ACCOUNT_SID },
          { AccountSid: "AC" + "0".repeat(32), CallSid: callSid(1) },
          { AccountSid: ACCOUNT_SID, CallSid: "CA' OR 1=1" },
          { AccountSid: ACCOUNT_SID, CallSid: callSid(Math.floor(rand() * 1e6)), CallStatus: junk(8).toString("hex"), Direction: "outbound-api", From: "\u0000\u202e", To: "" },
        ]);
        body = new URLSearchParams(params).toString();
        headers["x-twilio-signature"] = twilio.getExpectedTwilioSignature(AUTH_TOKEN, url, params);
      } else if (kind === 3) {
        headers["x-twilio-signature"] = "x";
        headers["x-forwarded-host"] = junk(10).toString("latin1").replace(/[^\x20-\x7e]/g, "a");
        headers["x-forwarded-proto"] = pick(["javascript", "https", "ftp"]);
      } else if (kind === 4) {
        headers["x-twilio-signature"] = "x";
        body = "a=" + "b".repeat(64 * 1024 + Math.floor(rand() * 1000));
      } else if (kind === 5) {
        // Telnyx headers: junk signatures and timestamps (NaN, negative, huge, stale).
        headers["telnyx-signature-ed25519"] = pick([junk(64).toString("base64"), "", "==", junk(3).toString("hex")]);
        headers["telnyx-timestamp"] = pick(["NaN", "-1", "1e3", "99999999999999999999", String(Math.floor(Date.now() / 1000) - 900), junk(6).toString("hex")]);
        body = pick([JSON.stringify({ data: { event_type: "call.initiated", payload: {} } }), junk(300).toString("latin1")]);
      } else if (kind === 6) {
        // Telnyx, validly signed, hostile content: missing fields, wrong types, unknown calls.
        const event = pick<unknown>([{}, { data: null }, { data: { id: "e", event_type: "call.hangup", payload: { call_control_id: 7 } } }, telnyx.event("call.answered", { call_control_id: "v3:" + junk(8).toString("hex") }), telnyx.event("call.initiated", { call_control_id: "x".repeat(300), direction: "incoming" })]);
        const timestamp = String(Math.floor(Date.now() / 1000));
        body = JSON.stringify(event);
        headers["telnyx-timestamp"] = timestamp;
        headers["telnyx-signature-ed25519"] = telnyx.sign(timestamp, body);
        return { url, init: { method: "POST", headers, body }, signed: true };
      } else if (kind === 7) {
        // Plivo headers with junk signatures and nonces.
        headers["x-plivo-signature-v3"] = pick([junk(32).toString("base64"), "a,b,c", ""]) || "x";
        headers["x-plivo-signature-v3-nonce"] = pick([junk(8).toString("hex"), "%00", "n"]) || "n";
      } else if (kind === 8) {
        // Plivo, validly signed, hostile content.
        const params = pick<Record<string, string>>([{}, { CallUUID: "'; DROP" }, { CallUUID: "c0ffee00-0000-4000-8000-" + junk(6).toString("hex"), Direction: "outbound" }, { CallUUID: "abcdef12", Direction: "outbound", From: "\u202e", To: "" }]);
        body = new URLSearchParams(params).toString();
        const nonce = junk(6).toString("hex");
        headers["x-plivo-signature-v3"] = v3Signature(url, params, nonce);
        headers["x-plivo-signature-v3-nonce"] = nonce;
        return { url, init: { method: "POST", headers, body }, signed: true };
      } else {
        headers["x-twilio-signature"] = "sig";
        body = "%".repeat(Math.floor(rand() * 500)) + "&&==&" + junk(50).toString("latin1");
      }
      return { url, init: { method: pick(["POST", "POST", "POST", "GET", "PUT"]), headers, body }, signed: kind === 2 };
    };

    const sendWebhooks = async (n: number) => {
      for (let i = 0; i < n; i += 8) {
        await Promise.all(
          Array.from({ length: Math.min(8, n - i) }, async () => {
            const { url, init, signed } = webhookInput();
            if (init.method === "GET") delete init.body;
            const res = await fetch(url, init);
            const text = await res.text();
            // Only a correctly signed delivery (a status for a call it does not know) may be acknowledged.
            if (res.status < 400) return tally(`http ${res.status}${signed ? " signed" : ""}`);
            const code = (JSON.parse(text) as { error: { code: string } }).error.code;
            expect(ERROR_CODES.has(code), `${res.status} ${text}`).toBe(true);
            tally(code);
          }),
        );
      }
    };

    const frameInput = (): string | Buffer => {
      const kind = Math.floor(rand() * 10);
      if (kind === 7) return JSON.stringify({ event: "start", stream_id: junk(4).toString("hex"), start: { call_control_id: "v3:" + junk(6).toString("hex"), client_state: junk(40).toString("base64") } });
      if (kind === 8) return JSON.stringify({ event: "start", start: { callId: junk(6).toString("hex"), streamId: "s" }, extra_headers: pick([junk(40).toString("latin1"), "callref=x,token=y", "{\"token\": 5}", { token: "t" }]) });
      if (kind === 9) return JSON.stringify({ event: pick(["playedStream", "clearedAudio", "dtmf", "playAudio"]), name: junk(3).toString("hex"), dtmf: { digit: pick(["1", "11", "x"]) } });
      if (kind === 0) return junk(Math.floor(rand() * 500));
      if (kind === 1) return junk(Math.floor(rand() * 200)).toString("latin1");
      if (kind === 2) return JSON.stringify({ event: pick(["media", "mark", "stop", "dtmf", "clear", 7, null]), streamSid: junk(4).toString("hex") });
      if (kind === 3) return JSON.stringify({ event: "start", streamSid: "MZ1", start: { callSid: callSid(Math.floor(rand() * 1e6)), customParameters: { token: junk(32).toString("base64url") } } });
      if (kind === 4) return JSON.stringify({ event: "start", streamSid: "MZ1", start: { callSid: pick([42, "", null, "x".repeat(100)]) } });
      if (kind === 5) return "[".repeat(5000);
      return JSON.stringify({ event: "media", media: { payload: "!".repeat(70_000) } });
    };

    /** Frames over sockets, 3 at a time (the per-address pending cap): each socket gets frames until the service closes it. */
    const sendFrames = async (n: number) => {
      let left = n;
      const worker = async () => {
        while (left > 0) {
          const { ws, code } = await open();
          if (!ws) {
            tally(code ?? "connect failed");
            continue;
          }
          const closed = closeOf(ws);
          let open_ = true;
          void closed.then(() => (open_ = false));
          for (let k = 0; k < 5 && open_ && left > 0; k += 1) {
            left -= 1;
            const frame = frameInput();
            ws.send(frame, { binary: Buffer.isBuffer(frame) });
            await new Promise((r) => setImmediate(r));
          }
          tally(`ws close ${await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(0), 1000))])}`);
          ws.terminate();
        }
      };
      await Promise.all([worker(), worker(), worker()]);
    };

    // A warm-up round, then the measured one.
    await sendWebhooks(500);
    await sendFrames(500);
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    await sendWebhooks(4500);
    await sendFrames(5000);
    global.gc?.();
    const grownMb = (process.memoryUsage().heapUsed - before) / 1e6;
    console.log(`[fuzz] heap grew ${grownMb.toFixed(1)} MB over 9,500 inputs (after a full collection: ${typeof global.gc === "function"})`);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(grownMb).toBeLessThan(64);
    // Each refusal was counted by kind; nothing was treated as a valid delivery.
    expect(codes.get("UNAUTHORIZED")).toBeGreaterThan(100);
    expect(codes.get("INVALID_PARAMS")).toBeGreaterThan(100);
    expect([...codes.keys()].filter((k) => k.startsWith("http 2") && !k.endsWith("signed"))).toEqual([]);
    expect(service.runtime.manager.listCalls()).toEqual([]);
    // The service still does its job: a signed inbound call is turned away by policy, with TwiML.
    const sid = callSid(0xfeed);
    const reply = await fake.webhook(webhookUrl, fake.voiceParams(sid, "inbound"));
    expect(reply.body).toContain("<Reject");
    expect(streamOf(reply.body)).toBeUndefined();
    await waitFor(() => service.runtime.manager.listCalls().find((c) => c.providerCallId === sid), "the refused call recorded");
  }, 300_000);
});
