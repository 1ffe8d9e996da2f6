/**
 * Two instances on one PostgreSQL behind one public address (a load balancer
 * sends each webhook to either): a Twilio webhook for a call instance A holds
 * reaches instance B, which hands it to A as it came; A checks its signature
 * and acts on it. Skipped with the reason where PostgreSQL cannot run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalPostgres, postgresUnavailableReason } from "../src/lab/postgres.js";
import { createLogger } from "../src/log.js";
import { VoiceCallClient } from "../src/server/client.js";
import { startService, type RunningService } from "../src/server/service.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio } from "./fakes/twilio.js";
import { freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const unavailable = postgresUnavailableReason();
if (unavailable) console.warn(`skipping the cluster webhook tests: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("webhooks for another instance's call", () => {
  let pg: LocalPostgres;
  let fake: FakeTwilio;
  let a: RunningService;
  let b: RunningService;
  /** The one public address both instances answer behind: B's port here. */
  let publicUrl: string;

  beforeAll(async () => {
    pg = await LocalPostgres.start({ port: await freePort(), durable: false });
    const url = await pg.createDatabase("voicecall");
    fake = await FakeTwilio.start();
    const bPort = await freePort();
    publicUrl = `http://127.0.0.1:${bPort}/voice/webhook`;
    const instance = (nodeId: string, port: number) =>
      startService(
        makeConfig({
          provider: "twilio",
          publicUrl,
          fromNumber: "+15550009999",
          twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
          serve: { port, bind: "127.0.0.1" },
          store: { url, dir: tempDir() },
          cluster: { nodeId },
          control: { token: "cluster-webhook-token-0123" },
        }),
        createLogger("silent"),
        { apiBaseUrls: { twilio: fake.baseUrl } },
      );
    a = await instance("a", await freePort());
    b = await instance("b", bPort);
  }, 120_000);

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await fake?.close();
    await pg?.stop();
  });

  it("a status callback for A's call sent to B reaches A (signature checked there), which ends the call; a forged one is refused at B", async () => {
    const { callId } = await a.runtime.manager.initiateCall({ to: "+15550001234", message: "hello", mode: "conversation" });
    const sid = a.runtime.manager.getCall(callId)!.providerCallId!;
    await waitFor(async () => (await pg.sql("voicecall", `SELECT node_id FROM voicecall_calls WHERE call_id = '${callId}'`))[0] === "a", "a's call in the store");
    expect(b.runtime.manager.getCall(callId)).toBeUndefined();

    const params = { AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: "busy", Direction: "outbound-api", From: "+15550009999", To: "+15550001234" };
    const forged = await fake.webhook(`${publicUrl}?type=status`, { ...params, CallStatus: "completed" }, { signParams: params });
    expect(forged.status).toBe(401);
    expect(a.runtime.manager.getCall(callId)!.state).not.toBe("busy");

    const reply = await fake.webhook(`${publicUrl}?type=status`, params);
    expect(reply.status).toBeLessThan(300);
    await waitFor(() => a.runtime.manager.getCall(callId)?.state === "busy", "a's call ended as busy");
    // B never held it.
    expect(b.runtime.manager.getCall(callId)).toBeUndefined();
  });

  it("B's event stream carries A's calls too, each event once, as A's own stream has them", async () => {
    const token = "cluster-webhook-token-0123";
    const seenOnB: any[] = [];
    const seenOnA: any[] = [];
    const controller = new AbortController();
    const follow = (service: RunningService, into: any[]) =>
      (async () => {
        for await (const e of new VoiceCallClient({ url: service.url, token }).events(controller.signal)) into.push(e);
      })().catch(() => undefined);
    const tails = [follow(b, seenOnB), follow(a, seenOnA)];
    // B looks for the other instances when its stream opens: give it that moment.
    await new Promise((r) => setTimeout(r, 500));
    const { callId } = await a.runtime.manager.initiateCall({ to: "+15550001234", message: "seen from b", mode: "conversation" });
    await waitFor(() => seenOnB.some((e) => e.type === "call" && e.call.callId === callId), "a's call on b's event stream");
    await a.runtime.manager.endCall(callId);
    await waitFor(() => seenOnB.some((e) => e.type === "call" && e.call.callId === callId && e.call.state === "hangup-bot"), "its end on b's stream");
    await new Promise((r) => setTimeout(r, 300));
    const onB = seenOnB.filter((e) => e.type === "call" && e.call.callId === callId).map((e) => e.call.state);
    const onA = seenOnA.filter((e) => e.type === "call" && e.call.callId === callId).map((e) => e.call.state);
    expect(onB).toEqual(onA);
    controller.abort();
    await Promise.all(tails);
  });
});
