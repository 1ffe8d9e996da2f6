/**
 * Telnyx's own protocol on loopback: the real SDK against a local server
 * speaking Call Control v2, webhooks signed with a real Ed25519 key pair made
 * here, refusals and replays, the stream started with the answer. What every
 * carrier shares (audio, barge-in, keys, hang-ups, restore) is in
 * the carrier suite (test/suites/carriers.ts).
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeG711, encodeG711 } from "../src/audio/g711.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { writeWavPcm16 } from "../src/speech/wav.js";
import { telnyxAmdParams, telnyxVerdict } from "../src/providers/telnyx/amd.js";
import { resolveConfig } from "../src/configure.js";
import type { RunningService } from "../src/server/service.js";
import { MediaStreamClient, TELNYX, loudMs } from "./fakes/media-stream.js";
import { API_KEY, CONNECTION_ID, FakeTelnyx } from "./fakes/telnyx.js";
import { makeConfig, saidAndListening, startCloudService, waitFor } from "./helpers.js";

const CALLER = "+15550001234";
const OURS = "+15550009999";

/** Our number on the local Call Control API, answering only CALLER; keys end a turn after 0.5 s. */
const lineFor = (fake: FakeTelnyx) => ({
  fromNumber: OURS,
  telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID, publicKey: fake.publicKey },
  inboundPolicy: "allowlist",
  allowFrom: [CALLER],
  dtmfInterDigitTimeoutMs: 500,
});

describe("Telnyx carrier (SDK against a local Call Control API, Ed25519 webhooks, media streaming)", () => {
  let fake: FakeTelnyx;
  let service: RunningService;
  let webhookUrl: string;
  const manager = () => service.runtime.manager;

  beforeAll(async () => {
    fake = await FakeTelnyx.start();
    ({ service, webhookUrl } = await startCloudService("telnyx", fake.baseUrl, { ...lineFor(fake), outbound: { defaultMode: "conversation" }, inboundGreeting: "Hello, you reached the test line." }));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  const event = (type: string, id: string, extra: Record<string, unknown> = {}) =>
    fake.event(type, { call_control_id: id, connection_id: CONNECTION_ID, call_leg_id: "leg", call_session_id: "session", from: CALLER, to: OURS, ...extra });

  const said = (callId: string, line: string) => saidAndListening(manager(), callId, line);

  /** The stream Telnyx opens for `id` after streaming_start (outbound) or answer (inbound): its URL and credential. */
  async function streamFor(id: string, action: "streaming_start" | "answer"): Promise<MediaStreamClient> {
    const started = await waitFor(() => fake.made("POST", new RegExp(`/calls/${id}/actions/${action}$`))[0], action);
    const { stream_url: url, client_state: state } = started.body;
    return MediaStreamClient.connect(url, { callSid: id, token: Buffer.from(state, "base64").toString("utf8") }, TELNYX);
  }

  async function connectedCall(message: string, options: { record?: boolean } = {}): Promise<{ callId: string; id: string; stream: MediaStreamClient }> {
    const { callId } = await manager().initiateCall({ to: CALLER, message, ...options });
    const id = manager().getCall(callId)!.providerCallId!;
    expect((await fake.webhook(webhookUrl, event("call.initiated", id, { direction: "outgoing" }))).status).toBe(200);
    expect((await fake.webhook(webhookUrl, event("call.answered", id))).status).toBe(200);
    const stream = await streamFor(id, "streaming_start");
    await said(callId, message);
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

  it("answering machines: a call asking for detection has Telnyx's own; the opening message waits for call.machine.detection.ended, kept in the call record", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "Hello from the test.", amd: true });
    const id = manager().getCall(callId)!.providerCallId!;
    expect(fake.made("POST", /^\/calls$/).at(-1)!.body).toMatchObject({ answering_machine_detection: "detect", answering_machine_detection_config: { total_analysis_time_millis: 5000 } });
    await fake.webhook(webhookUrl, event("call.initiated", id, { direction: "outgoing" }));
    await fake.webhook(webhookUrl, event("call.answered", id));
    const stream = await streamFor(id, "streaming_start");
    await waitFor(() => manager().getCall(callId)!.state === "answered" || undefined, "answered");
    await new Promise((r) => setTimeout(r, 300));
    // Nothing said before the verdict.
    expect(manager().getCall(callId)!.transcript.filter((t) => t.speaker === "bot" && t.kind === "speech")).toEqual([]);
    await fake.webhook(webhookUrl, event("call.machine.detection.ended", id, { result: "human" }));
    await said(callId, "Hello from the test.");
    expect(manager().getCall(callId)!.amd).toMatchObject({ outcome: "human", reason: "Telnyx: human" });
    // A call that does not ask has none.
    const { callId: plain } = await manager().initiateCall({ to: CALLER, message: "Hi" });
    expect(fake.made("POST", /^\/calls$/).at(-1)!.body.answering_machine_detection).toBeUndefined();
    await manager().endCall(plain);
    await manager().endCall(callId);
    stream.close();
  }, 30_000);

  it("answering machines: leaving a message asks for greeting_end, bounded by the greeting's wait; Telnyx's results read as verdicts", () => {
    const amd = makeConfig({ outbound: { amd: { onMachine: "message" } } }).outbound.amd;
    expect(telnyxAmdParams(amd)).toEqual({ answering_machine_detection: "greeting_end", answering_machine_detection_config: { total_analysis_time_millis: 5000, greeting_total_analysis_time_millis: 25_000 } });
    expect(telnyxVerdict("human_residence", 900)).toEqual({ outcome: "human", ms: 900, reason: "Telnyx: human_residence" });
    expect(telnyxVerdict("fax_detected", 1200).outcome).toBe("machine");
    expect(telnyxVerdict("not_sure", 3000).outcome).toBe("unknown");
    expect(telnyxVerdict(undefined, 3000)).toEqual({ outcome: "unknown", ms: 3000, reason: "Telnyx: not_sure" });
  });

  it("transfer (blind): Call Control's transfer with the person's leg marked; busy leaves the caller on our stream; answered, the stream stops and the call ends transferred", async () => {
    const { callId, id, stream } = await connectedCall("Let me put you through.");
    const transfers = () => fake.made("POST", new RegExp(`/calls/${id}/actions/transfer$`));
    const busy = manager().transferCall(callId, { to: "+15550004444" });
    const sent = await waitFor(() => transfers()[0], "the transfer");
    expect(sent.body).toMatchObject({ to: "+15550004444", from: OURS, timeout_secs: 30, webhook_url: webhookUrl, webhook_url_method: "POST" });
    const legState = sent.body.target_leg_client_state as string;
    expect(Buffer.from(legState, "base64").toString()).toBe(`transfer:${id}`);
    // The person's leg: its own id, our call in its client_state; busy, it hangs up.
    await fake.webhook(webhookUrl, event("call.initiated", "leg-1", { direction: "outgoing", client_state: legState }));
    await fake.webhook(webhookUrl, event("call.hangup", "leg-1", { hangup_cause: "user_busy", client_state: legState }));
    expect(await busy).toMatchObject({ transferred: false, outcome: "busy", reason: "Telnyx reports user_busy", legId: "leg-1", state: "listening" });
    // Still ours, on the same stream.
    const since = performance.now();
    await manager().speak(callId, "Sorry, that line is busy.");
    expect(stream.mediaAfter(since).length).toBeGreaterThan(10);

    const answered = manager().transferCall(callId, { to: "+15550005555" });
    await waitFor(() => transfers()[1], "the second transfer");
    await fake.webhook(webhookUrl, event("call.answered", "leg-2", { client_state: legState }));
    expect(await answered).toMatchObject({ transferred: true, outcome: "connected", legId: "leg-2", state: "transferred" });
    await waitFor(() => fake.made("POST", new RegExp(`/calls/${id}/actions/streaming_stop$`))[0], "the stream stopped");
    // The caller's later hang-up changes nothing; neither leg's events are taken for a call.
    await fake.webhook(webhookUrl, event("call.hangup", "leg-2", { hangup_cause: "normal_clearing", client_state: legState }));
    await fake.webhook(webhookUrl, event("call.hangup", id, { hangup_cause: "normal_clearing" }));
    await new Promise((r) => setTimeout(r, 100));
    expect(manager().getCall(callId)).toMatchObject({ state: "transferred", transfers: [{ outcome: "busy" }, { outcome: "connected", legId: "leg-2" }] });
    expect(manager().listCalls().filter((c) => c.providerCallId?.startsWith("leg-"))).toEqual([]);
    stream.close();
  }, 30_000);

  it("transfer (warm): the person, a call of ours, is briefed alone while the caller holds on our stream; busy leaves the caller with us; a 1 bridges the two, our streams stop, and Telnyx's dual-channel recording is fetched beside ours", async () => {
    const { callId, id, stream } = await connectedCall("One moment please.", { record: true });
    const briefing = "Ann is calling about her order.";
    const hello = decodeG711("ulaw", encodeG711("ulaw", await synthesizeAll(new FliteSynthesizer(), "Hello?", 8000)));

    // The first person's phone is busy: the caller is still ours.
    const busy = manager().transferCall(callId, { to: "+15550007001", mode: "warm", message: briefing });
    const first = await waitFor(() => fake.dialled.get("+15550007001"), "the person dialled");
    expect(fake.made("POST", /^\/calls$/).at(-1)!.body).toMatchObject({ to: "+15550007001", from: OURS, connection_id: CONNECTION_ID, webhook_url: webhookUrl });
    await fake.webhook(webhookUrl, event("call.hangup", first, { hangup_cause: "user_busy", to: "+15550007001" }));
    expect(await busy).toMatchObject({ transferred: false, mode: "warm", outcome: "busy", legId: first, state: "listening" });

    // The second answers, says hello, hears the briefing (the caller the hold chime) and presses 1.
    const since = performance.now();
    const accepted = manager().transferCall(callId, { to: "+15550007002", mode: "warm", message: briefing });
    const second = await waitFor(() => fake.dialled.get("+15550007002"), "the second person dialled");
    await fake.webhook(webhookUrl, event("call.initiated", second, { direction: "outgoing", to: "+15550007002" }));
    await fake.webhook(webhookUrl, event("call.answered", second, { to: "+15550007002" }));
    const person = await streamFor(second, "streaming_start");
    const at = performance.now();
    await person.play(hello);
    await person.silence(1500);
    await waitFor(() => loudMs(person.mediaAfter(at)) > 1500 || undefined, "the briefing played to the person", 20_000);
    expect(loudMs(stream.mediaAfter(since))).toBeGreaterThan(200);
    person.dtmf("1");
    expect(await accepted).toMatchObject({ transferred: true, mode: "warm", outcome: "connected", legId: second, state: "transferred" });
    expect(fake.made("POST", new RegExp(`/calls/${id}/actions/bridge$`))[0]?.body).toEqual({ call_control_id: second });
    for (const leg of [id, second]) expect(fake.made("POST", new RegExp(`/calls/${leg}/actions/streaming_stop$`))).toHaveLength(1);
    expect(fake.made("POST", new RegExp(`/calls/${id}/actions/record_start$`))[0]?.body).toEqual({ format: "wav", channels: "dual" });
    expect(manager().listCalls().some((c) => c.providerCallId === first || c.providerCallId === second)).toBe(false);

    // They hang up; Telnyx saves the recording and links it.
    const wav = writeWavPcm16(new Int16Array(8000 * 2), 8000);
    fake.files.set("rec.wav", wav);
    await fake.webhook(webhookUrl, event("call.hangup", second, { hangup_cause: "normal_clearing" }));
    await fake.webhook(webhookUrl, event("call.recording.saved", id, { recording_urls: { wav: `${fake.baseUrl}/files/rec.wav`, mp3: null }, channels: "dual", recording_started_at: "2026-12-02T10:00:00.000Z", recording_ended_at: "2026-12-02T10:00:02.000Z" }));
    const after = await waitFor(() => manager().getCall(callId)!.recording?.afterTransfer, "the transferred call's recording");
    expect(after).toMatchObject({ durationMs: 2000, bytes: wav.length });
    expect(readFileSync(after.path).equals(wav)).toBe(true);
    expect(manager().getCall(callId)!.transfers?.map((t) => t.outcome)).toEqual(["busy", "connected"]);
    stream.close();
    person.close();
  }, 60_000);

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

describe("Telnyx with streaming off: Telnyx speaks (speak) and listens (transcription) itself", () => {
  let fake: FakeTelnyx;
  let service: RunningService;
  let webhookUrl: string;
  const manager = () => service.runtime.manager;

  beforeAll(async () => {
    fake = await FakeTelnyx.start();
    ({ service, webhookUrl } = await startCloudService("telnyx", fake.baseUrl, { ...lineFor(fake), streaming: { enabled: false }, inboundGreeting: "Hello, Telnyx speaking." }));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  const post = (type: string, id: string, extra: Record<string, unknown> = {}) =>
    fake.webhook(webhookUrl, fake.event(type, { call_control_id: id, connection_id: CONNECTION_ID, from: CALLER, to: OURS, ...extra }));
  /** The n-th speak Telnyx was asked for on call `id`: its text and the reference it carries. */
  const speakRequest = async (id: string, n: number) => {
    const request = await waitFor(() => fake.made("POST", new RegExp(`${id}/actions/speak$`))[n], `speak ${n + 1}`);
    return { text: request.body.payload as string, state: request.body.client_state as string, body: request.body };
  };
  const played = (id: string, state: string, status = "completed") => post("call.speak.ended", id, { client_state: state, status });
  const heard = (id: string, transcript: string, isFinal: boolean) => post("call.transcription", id, { transcription_data: { transcript, is_final: isFinal, confidence: 0.9 } });

  it("says messages with speak, hears the answer in Telnyx's transcription, takes keys from its webhooks, and stops speaking when the caller cuts in", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "Hello from Telnyx's own voice.", mode: "conversation" });
    const id = manager().getCall(callId)!.providerCallId!;
    await post("call.initiated", id, { direction: "outgoing" });
    await post("call.answered", id);
    // Transcription runs from the answer on; no media stream is asked for.
    await waitFor(() => fake.made("POST", new RegExp(`${id}/actions/transcription_start$`))[0], "transcription_start");
    expect(fake.made("POST", new RegExp(`${id}/actions/streaming_start$`))).toEqual([]);
    const opening = await speakRequest(id, 0);
    expect(opening.body).toMatchObject({ payload: "Hello from Telnyx's own voice.", voice: "female", language: "en-US" });
    expect(manager().getCall(callId)!.state).toBe("speaking");
    await played(id, opening.state);
    await waitFor(() => manager().getCall(callId)!.state === "listening" || undefined, "listening");

    // An interim transcript is not an answer; the final one is.
    const reply = manager().continueCall(callId, "When should I call back?");
    const question = await speakRequest(id, 1);
    expect(question.text).toBe("When should I call back?");
    await played(id, question.state);
    await heard(id, "tomorrow", false);
    await heard(id, "tomorrow at nine", true);
    expect((await reply).transcript).toBe("tomorrow at nine");

    // Keys: one answer of the expected count, from call.dtmf.received.
    const code = manager().continueCall(callId, "Your code, please.", { digits: 4 });
    await played(id, (await speakRequest(id, 2)).state);
    for (const digit of "4711") await post("call.dtmf.received", id, { digit });
    expect((await code).transcript).toBe("[DTMF 4711]");

    // Barge-in: words while we speak stop Telnyx's playback; what was said answers the turn.
    const long = manager().continueCall(callId, "Our hours are nine to five. We are closed on Sundays. Anything else?");
    await speakRequest(id, 3);
    await heard(id, "no thanks", false);
    await waitFor(() => fake.made("POST", new RegExp(`${id}/actions/playback_stop$`))[0], "playback_stop");
    await heard(id, "no thanks bye", true);
    expect((await long).transcript).toBe("no thanks bye");
    expect(manager().getCall(callId)!.transcript.some((l) => l.speaker === "bot" && l.kind === "interrupted")).toBe(true);

    await manager().endCall(callId);
    expect(fake.made("POST", new RegExp(`${id}/actions/hangup$`))).toHaveLength(1);
  }, 30_000);

  it("answers an allowed caller without a stream and greets them with speak; a message over 3,000 characters goes in pieces", async () => {
    const id = fake.newCallId();
    fake.alive.set(id, true);
    await post("call.initiated", id, { direction: "incoming" });
    const answer = await waitFor(() => fake.made("POST", new RegExp(`${id}/actions/answer$`))[0], "answer");
    expect(answer.body).toEqual({ webhook_url: webhookUrl, webhook_url_method: "POST" });
    await post("call.answered", id);
    const greeting = await speakRequest(id, 0);
    expect(greeting.text).toBe("Hello, Telnyx speaking.");
    await played(id, greeting.state);
    const call = await waitFor(() => manager().listCalls().find((c) => c.providerCallId === id && c.state === "listening"), "greeted");

    const sentence = "This sentence is one of many in a long message. ";
    const text = sentence.repeat(80).trim();
    const speaking = manager().speak(call.callId, text);
    const first = await speakRequest(id, 1);
    expect(first.text.length).toBeLessThanOrEqual(3000);
    await played(id, first.state);
    const second = await speakRequest(id, 2);
    expect(`${first.text} ${second.text}`).toBe(text);
    await played(id, second.state);
    await speaking;
    // A speak.ended for a reference we never sent changes nothing.
    await played(id, Buffer.from("s999").toString("base64"));
    await manager().endCall(call.callId);
  }, 30_000);
});
