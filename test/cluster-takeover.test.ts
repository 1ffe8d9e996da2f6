/**
 * A Telnyx or Plivo call outliving its instance: two instances on one
 * PostgreSQL behind one public address; instance A places the call and its
 * stream runs (through B, which carries it to A); A goes. Telnyx keeps the
 * call up without its stream, and B, having taken the call over, asks
 * Telnyx for a new one (streaming_start). Plivo runs the Redirect that
 * follows our <Stream>: it is asked to wait until B holds the call, then
 * gets a new <Stream>. Either way B's next sentence goes out on the new
 * stream and the transcript has A's and B's lines once each. Skipped with
 * the reason where PostgreSQL cannot run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalPostgres, postgresUnavailableReason } from "../src/lab/postgres.js";
import { createLogger } from "../src/log.js";
import { startService, type RunningService } from "../src/server/service.js";
import { MediaStreamClient, PLIVO, TELNYX } from "./fakes/media-stream.js";
import { AUTH_ID, AUTH_TOKEN as PLIVO_TOKEN, FakePlivo, plivoStreamOf } from "./fakes/plivo.js";
import { API_KEY, CONNECTION_ID, FakeTelnyx } from "./fakes/telnyx.js";
import { freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const unavailable = postgresUnavailableReason();
if (unavailable) console.warn(`skipping the cluster take-over tests: ${unavailable}`);

const CALLEE = "+15550001234";
const OURS = "+15550009999";

describe.skipIf(unavailable !== undefined)("Telnyx and Plivo calls taken over by another instance", () => {
  let pg: LocalPostgres;
  let telnyx: FakeTelnyx;
  let plivo: FakePlivo;
  const services: RunningService[] = [];

  beforeAll(async () => {
    pg = await LocalPostgres.start({ port: await freePort(), durable: false });
    [telnyx, plivo] = await Promise.all([FakeTelnyx.start(), FakePlivo.start()]);
  }, 120_000);

  afterAll(async () => {
    for (const s of services) await s.close().catch(() => undefined);
    await telnyx?.close();
    await plivo?.close();
    await pg?.stop();
  });

  /** Instances A and B of `provider` on a database of their own (a cluster is one carrier's), behind B's address (the public one). */
  const pair = async (provider: "telnyx" | "plivo") => {
    const dbUrl = await pg.createDatabase(`voicecall_${provider}`);
    const bPort = await freePort();
    const publicUrl = `http://127.0.0.1:${bPort}/voice/webhook`;
    const keys = provider === "telnyx" ? { telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID, publicKey: telnyx.publicKey } } : { plivo: { authId: AUTH_ID, authToken: PLIVO_TOKEN } };
    const instance = async (nodeId: string, port: number) => {
      const s = await startService(
        makeConfig({
          provider,
          publicUrl,
          fromNumber: OURS,
          ...keys,
          serve: { port, bind: "127.0.0.1" },
          store: { url: dbUrl, dir: tempDir() },
          cluster: { nodeId, leaseMs: 3000 },
          control: { token: `cluster-takeover-token-${provider}` },
        }),
        createLogger("silent"),
        { apiBaseUrls: { [provider]: provider === "telnyx" ? telnyx.baseUrl : plivo.baseUrl } },
      );
      services.push(s);
      return s;
    };
    const a = await instance(`${provider}-a`, await freePort());
    const b = await instance(`${provider}-b`, bPort);
    return { a, b, publicUrl };
  };

  /** The call's row is in the store, A's (written a few ms after the call is placed; a carrier's answer comes seconds later). */
  const stored = (provider: string, callId: string) =>
    waitFor(async () => (await pg.sql(`voicecall_${provider}`, `SELECT node_id FROM voicecall_calls WHERE call_id = '${callId}'`))[0] === `${provider}-a`, "a's call in the store");

  /** A leaves: its lease ends, its calls stay up at the carrier; the stream it had closes. */
  const leave = async (a: RunningService, stream: MediaStreamClient) => {
    await a.runtime.drain(0);
    await a.close();
    services.splice(services.indexOf(a), 1);
    await waitFor(() => stream.closed, "the stream through b to close");
  };

  /** B speaks on the new stream; the transcript has A's opening and B's sentence, once each. */
  const bGoesOn = async (b: RunningService, callId: string, stream: MediaStreamClient, opening: string) => {
    await waitFor(() => b.runtime.manager.getCall(callId)?.state === "listening", "b holds the call, listening");
    const before = stream.mediaAfter(0).length;
    await b.runtime.manager.speak(callId, "This is instance b.");
    expect(stream.mediaAfter(0).length).toBeGreaterThan(before);
    expect(b.runtime.manager.getCall(callId)!.transcript.map((t) => t.text)).toEqual([opening, "This is instance b."]);
    await b.runtime.manager.endCall(callId);
    stream.close();
  };

  it("Telnyx: B, having taken the call over, asks Telnyx for a new stream, and its next sentence goes out on it", async () => {
    const { a, b, publicUrl } = await pair("telnyx");
    const opening = "Hello from instance a.";
    const { callId } = await a.runtime.manager.initiateCall({ to: CALLEE, message: opening, mode: "conversation" });
    const id = a.runtime.manager.getCall(callId)!.providerCallId!;
    await stored("telnyx", callId);
    const event = (type: string) => telnyx.event(type, { call_control_id: id, connection_id: CONNECTION_ID, from: OURS, to: CALLEE });
    // Telnyx tells the public address (B) the call was answered: B hands it to A, which asks for the stream.
    await telnyx.webhook(publicUrl, event("call.answered"));
    const streams = () => telnyx.made("POST", new RegExp(`/calls/${id}/actions/streaming_start$`));
    const connect = async (started: { body: Record<string, any> }) =>
      MediaStreamClient.connect(started.body.stream_url, { callSid: id, token: Buffer.from(started.body.client_state, "base64").toString() }, TELNYX);
    const first = await connect(await waitFor(() => streams()[0], "a's streaming_start"));
    await waitFor(() => a.runtime.manager.getCall(callId)?.state === "listening", "a's opening played over the stream through b");

    await leave(a, first);
    const again = await connect(await waitFor(() => streams()[1], "b's streaming_start after taking the call over", 15_000));
    await bGoesOn(b, callId, again, opening);
  }, 60_000);

  it("Plivo: the Redirect after our <Stream> waits until B holds the call, then gets a new <Stream>; B's next sentence goes out on it", async () => {
    const { a, b, publicUrl } = await pair("plivo");
    const opening = "Hello from instance a.";
    const { callId } = await a.runtime.manager.initiateCall({ to: CALLEE, message: opening, mode: "conversation" });
    const requestUuid = a.runtime.manager.getCall(callId)!.providerCallId!;
    await stored("plivo", callId);
    const callUuid = "c0ffee00-0000-4000-8000-00000000beef";
    plivo.calls.set(requestUuid, "ended");
    plivo.calls.set(callUuid, "live");
    const answer = await plivo.webhook(`${publicUrl}?type=answer`, { CallUUID: callUuid, RequestUUID: requestUuid, Direction: "outbound", From: OURS, To: CALLEE, CallStatus: "in-progress" });
    const target = plivoStreamOf(answer.body)!;
    // What Plivo runs once the stream ends: a Redirect naming our call.
    const redirect = answer.body.match(/<\/Stream><Redirect method="POST">([^<]+)<\/Redirect>/)?.[1]?.replace(/&amp;/g, "&");
    expect(redirect, answer.body).toContain("type=resume");
    const first = await MediaStreamClient.connect(target.url, { callSid: callUuid, token: target.headers }, PLIVO);
    await waitFor(() => a.runtime.manager.getCall(callId)?.state === "listening", "a's opening played over the stream through b");

    await leave(a, first);
    // Plivo's Redirect carries the CallUUID only: B is asked to come back (Wait, Redirect) until it holds the call.
    let resumed = "";
    let waits = 0;
    await waitFor(async () => {
      resumed = (await plivo.webhook(redirect!, { CallUUID: callUuid, Direction: "outbound", From: OURS, To: CALLEE, CallStatus: "in-progress" })).body;
      if (plivoStreamOf(resumed)) return true;
      expect(resumed).toMatch(/<Wait length="1"\/><Redirect method="POST">/);
      waits += 1;
      await new Promise((r) => setTimeout(r, 300));
      return false;
    }, "b to take the call over and answer the Redirect with a stream", 15_000);
    console.log(`[cluster] Plivo's Redirect was asked to wait ${waits} times before b had the call`);
    const second = plivoStreamOf(resumed)!;
    const again = await MediaStreamClient.connect(second.url, { callSid: callUuid, token: second.headers }, PLIVO);
    await bGoesOn(b, callId, again, opening);
    // B learnt the CallUUID from the Redirect: its hang-up named it.
    expect(plivo.made("DELETE", new RegExp(`/Call/${callUuid}/$`)).length).toBe(1);
  }, 60_000);
});
