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
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, MediaStreamClient, streamOf } from "./fakes/twilio.js";
import { freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const unavailable = postgresUnavailableReason();
if (unavailable) console.warn(`skipping the cluster webhook tests: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("webhooks for another instance's call", () => {
  let pg: LocalPostgres;
  let fake: FakeTwilio;
  let a: RunningService;
  let aClosed = false;
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
          cluster: { nodeId, leaseMs: 3000 },
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
    if (!aClosed) await a?.close();
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

  it("a media stream for A's call reaching B is carried to A; A gone, Twilio's Redirect is asked to wait until B has taken the call over, and the new stream is B's", async () => {
    const message = "Hello from instance a.";
    const { callId } = await a.runtime.manager.initiateCall({ to: "+15550001234", message, mode: "conversation" });
    const sid = a.runtime.manager.getCall(callId)!.providerCallId!;
    fake.calls.get(sid)!.status = "in-progress";
    await waitFor(async () => (await pg.sql("voicecall", `SELECT node_id FROM voicecall_calls WHERE call_id = '${callId}'`))[0] === "a", "a's call in the store");
    // Twilio asks the public address (B) what to do; A answers through B with a stream, which Twilio opens at B too.
    const first = streamOf((await fake.webhook(`${publicUrl}?type=voice`, fake.voiceParams(sid, "outbound-api"))).body)!;
    expect(new URL(first.url).port).toBe(new URL(publicUrl).port);
    const stream = await MediaStreamClient.connect(first.url, { callSid: sid, token: first.token });
    await waitFor(() => a.runtime.manager.getCall(callId)?.state === "listening", "a's opening played over the stream through b");
    expect(stream.mediaAfter(0).length).toBeGreaterThan(0);

    // A goes (its calls left up at Twilio, its lease ended); its stream through B closes.
    await a.runtime.drain(0);
    await a.close();
    aClosed = true;
    await waitFor(() => stream.raw().readyState === stream.raw().CLOSED, "the stream through b to close");
    // Twilio runs the Redirect: B has no call yet, so Twilio is asked to come back, until B has taken it over.
    let resumed = "";
    let waits = 0;
    await waitFor(async () => {
      resumed = (await fake.webhook(`${publicUrl}?type=resume`, fake.voiceParams(sid, "outbound-api"))).body;
      if (streamOf(resumed)) return true;
      expect(resumed).toMatch(/<Pause length="1"\/><Redirect method="POST">/);
      waits += 1;
      await new Promise((r) => setTimeout(r, 300));
      return false;
    }, "b to take the call over and answer the Redirect with a stream", 15_000);
    console.log(`[cluster] Twilio's Redirect was asked to wait ${waits} times before b had the call`);
    const second = streamOf(resumed)!;
    const again = await MediaStreamClient.connect(second.url, { callSid: sid, token: second.token });
    await waitFor(() => b.runtime.manager.getCall(callId)?.state === "listening", "b holds the call, listening");
    const before = again.mediaAfter(0).length;
    await b.runtime.manager.speak(callId, "This is instance b.");
    expect(again.mediaAfter(0).length).toBeGreaterThan(before);
    expect(b.runtime.manager.getCall(callId)!.transcript.map((t) => t.text)).toEqual([message, "This is instance b."]);
    await b.runtime.manager.endCall(callId);
    again.close();
  }, 60_000);
});
