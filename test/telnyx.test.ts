/**
 * Telnyx end to end on loopback: the real SDK against a local server
 * speaking Call Control v2, webhooks signed with a real Ed25519 key pair made
 * here, and a media stream in Telnyx's message names playing flite speech
 * into the service's offline recogniser.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/configure.js";
import { createLogger } from "../src/log.js";
import { startService, type RunningService } from "../src/server/service.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { transcribePcm } from "../src/speech/pocketsphinx.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { concatPcm } from "../src/audio/frame.js";
import { MediaStreamClient, TELNYX } from "./fakes/media-stream.js";
import { API_KEY, CONNECTION_ID, FakeTelnyx } from "./fakes/telnyx.js";
import { freePort, makeConfig, tempDir, waitFor } from "./helpers.js";

const fliteSpeech = (text: string) => synthesizeAll(new FliteSynthesizer(), text, 8000);
const CALLER = "+15550001234";
const OURS = "+15550009999";

describe("Telnyx carrier (SDK against a local Call Control API, Ed25519 webhooks, media streaming)", () => {
  let fake: FakeTelnyx;
  let service: RunningService;
  let webhookUrl: string;
  const manager = () => service.runtime.manager;

  beforeAll(async () => {
    fake = await FakeTelnyx.start();
    const port = await freePort();
    webhookUrl = `http://127.0.0.1:${port}/voice/webhook`;
    const config = makeConfig(
      {
        provider: "telnyx",
        fromNumber: OURS,
        telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID, publicKey: fake.publicKey },
        publicUrl: webhookUrl,
        serve: { port, bind: "127.0.0.1" },
        outbound: { defaultMode: "conversation" },
        inboundPolicy: "allowlist",
        allowFrom: [CALLER],
        inboundGreeting: "Hello, you reached the test line.",
        dtmfInterDigitTimeoutMs: 500,
      },
      tempDir(),
    );
    service = await startService(config, createLogger("silent"), { apiBaseUrls: { telnyx: fake.baseUrl } });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  const event = (type: string, id: string, extra: Record<string, unknown> = {}) =>
    fake.event(type, { call_control_id: id, connection_id: CONNECTION_ID, call_leg_id: "leg", call_session_id: "session", from: CALLER, to: OURS, ...extra });

  const saidAndListening = (callId: string, line: string) =>
    waitFor(() => {
      const call = manager().getCall(callId);
      return call?.state === "listening" && call.transcript.some((l) => l.speaker === "bot" && l.text === line) ? true : undefined;
    }, `"${line}" played`, 15_000);

  /** The stream Telnyx opens for `id` after streaming_start (outbound) or answer (inbound): its URL and credential. */
  async function streamFor(id: string, action: "streaming_start" | "answer"): Promise<MediaStreamClient> {
    const started = await waitFor(() => fake.made("POST", new RegExp(`/calls/${id}/actions/${action}$`))[0], action);
    const { stream_url: url, client_state: state } = started.body;
    return MediaStreamClient.connect(url, { callSid: id, token: Buffer.from(state, "base64").toString("utf8") }, TELNYX);
  }

  async function connectedCall(message: string): Promise<{ callId: string; id: string; stream: MediaStreamClient }> {
    const { callId } = await manager().initiateCall({ to: CALLER, message });
    const id = manager().getCall(callId)!.providerCallId!;
    expect((await fake.webhook(webhookUrl, event("call.initiated", id, { direction: "outgoing" }))).status).toBe(200);
    expect((await fake.webhook(webhookUrl, event("call.answered", id))).status).toBe(200);
    const stream = await streamFor(id, "streaming_start");
    await saidAndListening(callId, message);
    return { callId, id, stream };
  }

  it("dials through the SDK with our webhook and ring timeout, and streams both ways once answered", async () => {
    const { callId, id, stream } = await connectedCall("Hello from Telnyx.");
    const dial = fake.made("POST", /^\/calls$/).at(-1)!;
    expect(dial.body).toMatchObject({ connection_id: CONNECTION_ID, to: CALLER, from: OURS, webhook_url: webhookUrl, webhook_url_method: "POST", timeout_secs: 30 });
    const start = fake.made("POST", /actions\/streaming_start$/).at(-1)!;
    expect(start.body).toMatchObject({ stream_url: `ws://127.0.0.1:${new URL(webhookUrl).port}/voice/stream`, stream_track: "inbound_track", stream_bidirectional_mode: "rtp", stream_bidirectional_codec: "PCMU" });
    expect(manager().getCall(callId)!.state).toBe("listening");
    await manager().endCall(callId);
    expect(fake.made("POST", new RegExp(`${id}/actions/hangup$`))).toHaveLength(1);
    stream.close();
  }, 30_000);

  it("hears the caller, speaks back as paced media with markers, clears on barge-in, and takes keys both ways", async () => {
    const { callId, id, stream } = await connectedCall("Hello, this is a test call.");
    const media = stream.mediaAfter(0);
    expect(media.length).toBeGreaterThan(40);
    expect(media.at(-1)!.at - media[0]!.at).toBeGreaterThan((media.length - 1) * 20 * 0.8);
    expect(stream.received.some((r) => r.event === "mark")).toBe(true);
    expect(wordErrorRate("hello this is a test call", await transcribePcm(concatPcm(media.map((m) => m.pcm!)), 8000))).toBeLessThanOrEqual(0.35);

    const answer = manager().continueCall(callId, "What time should I call back?");
    await saidAndListening(callId, "What time should I call back?");
    await stream.play(await fliteSpeech("Please call me back tomorrow morning."));
    await stream.silence(1200);
    expect(wordErrorRate("please call me back tomorrow morning", (await answer).transcript)).toBeLessThanOrEqual(0.35);

    const speaking = manager().speak(callId, "Our opening hours are from nine in the morning to five in the afternoon, Monday to Friday, and ten to two on Saturdays.");
    await waitFor(() => stream.mediaAfter(performance.now() - 200).length > 0 || undefined, "our audio flowing", 10_000);
    await new Promise((r) => setTimeout(r, 800));
    const onset = await stream.play(await fliteSpeech("Wait, stop please."));
    await speaking;
    const clear = stream.firstAfter("clear", onset);
    expect(clear, "a clear message").toBeDefined();
    expect(clear!.at - onset).toBeLessThan(300);

    // Keys in from the stream's dtmf frames (one answer of three keys); out through send_dtmf.
    const keys = manager().continueCall(callId, "Enter your code.", { digits: 3 });
    await saidAndListening(callId, "Enter your code.");
    for (const key of "905") stream.dtmf(key);
    expect((await keys).transcript).toBe("[DTMF 905]");
    // The webhook's copy of a key is not counted twice.
    await fake.webhook(webhookUrl, event("call.dtmf.received", id, { digit: "9" }));
    await manager().sendDtmf(callId, "1w2#");
    expect(fake.made("POST", /actions\/send_dtmf$/).at(-1)!.body).toMatchObject({ digits: "1w2#" });

    // The callee hangs up: Telnyx reports it.
    await fake.webhook(webhookUrl, event("call.hangup", id, { hangup_cause: "normal_clearing", hangup_source: "callee" }));
    await waitFor(() => manager().getCall(callId)!.state === "hangup-user" || undefined, "hang-up");
    expect(manager().getCall(callId)!.transcript.filter((t) => t.kind === "dtmf").map((t) => t.text)).toEqual(["905"]);
    stream.close();
  }, 90_000);

  it("answers an allowed inbound caller with the stream and greets them; rejects others", async () => {
    const id = fake.newCallId();
    fake.alive.set(id, true);
    expect((await fake.webhook(webhookUrl, event("call.initiated", id, { direction: "incoming" }))).status).toBe(200);
    const answer = await waitFor(() => fake.made("POST", new RegExp(`${id}/actions/answer$`))[0], "answer");
    expect(answer.body).toMatchObject({ stream_bidirectional_mode: "rtp", stream_track: "inbound_track" });
    const stream = await streamFor(id, "answer");
    const call = await waitFor(() => manager().listCalls().find((c) => c.providerCallId === id && c.state === "listening"), "greeted", 15_000);
    expect(call).toMatchObject({ direction: "inbound", from: CALLER, to: OURS });
    expect(manager().getCall(call.callId)!.transcript[0]?.text).toBe("Hello, you reached the test line.");
    await manager().endCall(call.callId);
    stream.close();

    // The direction field is not what makes a call inbound: a call we did not dial is one.
    const stranger = fake.newCallId();
    fake.alive.set(stranger, true);
    await fake.webhook(webhookUrl, event("call.initiated", stranger, { from: "+15557770000" }));
    const rejected = await waitFor(() => fake.made("POST", new RegExp(`${stranger}/actions/reject$`))[0], "reject");
    expect(rejected.body).toEqual({ cause: "CALL_REJECTED" });
    expect(manager().listCalls().find((c) => c.providerCallId === stranger)?.endReason).toMatch(/allowFrom/);
  }, 30_000);

  it("maps Telnyx's hangup causes: busy before an answer, no answer on timeout", async () => {
    for (const [cause, state] of [["user_busy", "busy"], ["timeout", "no-answer"], ["unallocated_number", "failed"]] as const) {
      const { callId } = await manager().initiateCall({ to: CALLER, message: "hi" });
      const id = manager().getCall(callId)!.providerCallId!;
      await fake.webhook(webhookUrl, event("call.hangup", id, { hangup_cause: cause, hangup_source: "callee" }));
      await waitFor(() => manager().getCall(callId)!.state === state || undefined, state);
    }
  });

  it("refuses tampered, stale, unsigned and malformed-timestamp webhooks; a replay is acknowledged and ignored", async () => {
    const inbound = (id: string) => event("call.initiated", id, { direction: "incoming" });
    const refusedId = fake.newCallId();
    const body = inbound(refusedId);
    const tampered = await fake.webhook(webhookUrl, body, { signBody: JSON.stringify({ ...body, meta: { attempt: 2 } }) });
    expect(tampered.status).toBe(401);
    expect(JSON.parse(tampered.body).error).toMatchObject({ code: "UNAUTHORIZED", message: expect.stringMatching(/signature does not match/) });
    const stale = await fake.webhook(webhookUrl, body, { timestamp: String(Math.floor(Date.now() / 1000) - 301) });
    expect(stale.status).toBe(401);
    expect(JSON.parse(stale.body).error.message).toMatch(/too old or too new/);
    expect((await fake.webhook(webhookUrl, body, { timestamp: "NaN" })).status).toBe(401);
    expect((await fake.webhook(webhookUrl, body, { timestamp: "1e3" })).status).toBe(401);
    const unsigned = await fake.webhook(webhookUrl, body, { unsigned: true });
    expect(unsigned.status).toBe(401);
    // Nothing above reached the call table.
    await new Promise((r) => setTimeout(r, 100));
    expect(manager().listCalls().filter((c) => c.providerCallId === refusedId)).toEqual([]);

    const id = fake.newCallId();
    fake.alive.set(id, true);
    const once = inbound(id);
    const signedAt = String(Math.floor(Date.now() / 1000));
    expect((await fake.webhook(webhookUrl, once, { timestamp: signedAt })).status).toBe(200);
    expect((await fake.webhook(webhookUrl, once, { timestamp: signedAt })).status).toBe(200);
    await waitFor(() => fake.made("POST", new RegExp(`${id}/actions/answer$`))[0], "answer");
    await new Promise((r) => setTimeout(r, 200));
    expect(manager().listCalls().filter((c) => c.providerCallId === id)).toHaveLength(1);
    const call = manager().listCalls().find((c) => c.providerCallId === id)!;
    await manager().endCall(call.callId);
  }, 30_000);

  it("after a restart, asks Telnyx whether each restored call is alive", async () => {
    const dir = tempDir();
    const port = await freePort();
    const config = makeConfig(
      { provider: "telnyx", fromNumber: OURS, telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID, publicKey: fake.publicKey }, publicUrl: `http://127.0.0.1:${port}/voice/webhook`, serve: { port }, maxConcurrentCalls: 1 },
      dir,
    );
    const first = await startService(config, createLogger("silent"), { apiBaseUrls: { telnyx: fake.baseUrl } });
    const { callId } = await first.runtime.manager.initiateCall({ to: CALLER, message: "Hi" });
    const id = first.runtime.manager.getCall(callId)!.providerCallId!;
    await first.close();
    fake.alive.set(id, false);
    const second = await startService(config, createLogger("silent"), { apiBaseUrls: { telnyx: fake.baseUrl } });
    try {
      expect(fake.made("GET", new RegExp(`/calls/${id}$`)).length).toBeGreaterThan(0);
      expect(second.runtime.manager.getCall(callId)).toMatchObject({ state: "completed" });
      await expect(second.runtime.manager.initiateCall({ to: CALLER, message: "Hi" })).resolves.toMatchObject({ provider: "telnyx" });
    } finally {
      await second.close();
    }
  }, 30_000);

  it("a missing or malformed public key is a config error naming telnyx.publicKey, never a skipped check", async () => {
    const base = { provider: "telnyx", fromNumber: OURS, telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID } };
    const missing = (() => { try { resolveConfig(base, {}); } catch (e) { return e as { issues: Array<{ path: string; message: string }> }; } })();
    expect(missing?.issues).toEqual([expect.objectContaining({ path: "telnyx.publicKey", message: expect.stringMatching(/^required to verify webhooks/) })]);
    const malformed = (() => { try { resolveConfig({ ...base, telnyx: { ...base.telnyx, publicKey: "not-a-key" } }, {}); } catch (e) { return e as { issues: Array<{ path: string }> }; } })();
    expect(malformed?.issues.map((i) => i.path)).toEqual(["telnyx.publicKey"]);
    // From the environment too, named by its variable.
    const fromEnv = (() => { try { resolveConfig(base, { TELNYX_PUBLIC_KEY: "abc" }); } catch (e) { return e as { issues: Array<{ path: string }> }; } })();
    expect(fromEnv?.issues.map((i) => i.path)).toEqual(["TELNYX_PUBLIC_KEY"]);
    expect(resolveConfig({ ...base, skipSignatureVerification: true }, {}).config.provider).toBe("telnyx");
  });
});
