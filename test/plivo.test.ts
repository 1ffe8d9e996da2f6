/**
 * Plivo's own protocol: the SDK's Voice API requests against a local
 * server, Plivo XML from the SDK, V3 signatures (signed here with Plivo's
 * documented algorithm, checked by the SDK), refusals and replays. The
 * behaviour every carrier shares (audio, barge-in, keys, hang-ups, restore)
 * is in the carrier suite (test/suites/carriers.ts).
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeG711, encodeG711 } from "../src/audio/g711.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { writeWavPcm16 } from "../src/speech/wav.js";
import type { RunningService } from "../src/server/service.js";
import { runSetup } from "../src/setup.js";
import { MediaStreamClient, PLIVO, loudMs } from "./fakes/media-stream.js";
import { AUTH_ID, AUTH_TOKEN, FakePlivo, plivoStreamOf } from "./fakes/plivo.js";
import { makeConfig, startCloudService, waitFor } from "./helpers.js";

const CALLER = "+15550001234";
const OURS = "+15550009999";

describe("Plivo carrier (SDK against a local Voice API, V3 signatures, Plivo XML)", () => {
  let fake: FakePlivo;
  let service: RunningService;
  let webhookUrl: string;
  const manager = () => service.runtime.manager;
  const keys = { provider: "plivo", fromNumber: OURS, plivo: { authId: AUTH_ID, authToken: AUTH_TOKEN } };

  beforeAll(async () => {
    fake = await FakePlivo.start();
    ({ service, webhookUrl } = await startCloudService("plivo", fake.baseUrl, { ...keys, inboundPolicy: "allowlist", allowFrom: [CALLER], inboundGreeting: "Hello from Plivo." }));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  const answerParams = (callUuid: string, requestUuid: string) => ({ CallUUID: callUuid, RequestUUID: requestUuid, Direction: "outbound", From: OURS, To: CALLER, CallStatus: "in-progress", Event: "StartApp" });

  it("makes the call through the SDK with answer, hangup and ring URLs, and answers with a bidirectional <Stream>", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "Hello." });
    const made = fake.made("POST", /^\/Call\/$/).at(-1)!;
    expect(made.body).toMatchObject({ from: OURS, to: CALLER, answer_url: `${webhookUrl}?type=answer`, answer_method: "POST", hangup_url: `${webhookUrl}?type=hangup`, ring_url: `${webhookUrl}?type=ring`, ring_timeout: 30 });
    const requestUuid = manager().getCall(callId)!.providerCallId!;
    const callUuid = "c0ffee00-0000-4000-8000-000000000001";
    fake.calls.set(callUuid, "live");
    const answer = await fake.webhook(`${webhookUrl}?type=answer`, answerParams(callUuid, requestUuid));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatch(/<Stream bidirectional="true" audioTrack="inbound" keepCallAlive="true" contentType="audio\/x-mulaw;rate=8000" extraHeaders="callref=[^,]+,token=[^"]+">ws:\/\/127\.0\.0\.1:\d+\/voice\/stream<\/Stream>/);
    const target = plivoStreamOf(answer.body)!;
    const stream = await MediaStreamClient.connect(target.url, { callSid: callUuid, token: target.headers }, PLIVO);
    await waitFor(() => manager().getCall(callId)?.state === "listening" || undefined, "the message played", 15_000);
    // Keys go out through Send Digits on the CallUUID the answer named; hanging up uses it too.
    await manager().sendDtmf(callId, "12w3");
    expect(fake.made("POST", new RegExp(`/Call/${callUuid}/DTMF/$`)).at(-1)!.body).toEqual({ digits: "12w3" });
    await manager().endCall(callId);
    expect(fake.made("DELETE", new RegExp(`/Call/${callUuid}/$`))).toHaveLength(1);
    stream.close();
  }, 30_000);

  it("transfer (blind): the call moves to a Dial of the person; busy brings the caller back on the stream; answered, the call ends transferred", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "Let me put you through." });
    const requestUuid = manager().getCall(callId)!.providerCallId!;
    const callUuid = "c0ffee00-0000-4000-8000-0000000000aa";
    fake.calls.set(callUuid, "live");
    const answer = await fake.webhook(`${webhookUrl}?type=answer`, answerParams(callUuid, requestUuid));
    const target = plivoStreamOf(answer.body)!;
    const stream = await MediaStreamClient.connect(target.url, { callSid: callUuid, token: target.headers }, PLIVO);
    await waitFor(() => manager().getCall(callId)?.state === "listening" || undefined, "the message played", 15_000);
    const moves = () => fake.made("POST", new RegExp(`/Call/${callUuid}/$`));
    const legParams = (extra: Record<string, string>) => ({ CallUUID: callUuid, Direction: "outbound", From: OURS, To: CALLER, ...extra });

    const busy = manager().transferCall(callId, { to: "+15550004444" });
    const moved = await waitFor(() => moves()[0], "the call moved");
    expect(moved.body).toMatchObject({ legs: "aleg", aleg_url: `${webhookUrl}?type=transfer-dial`, aleg_method: "POST" });
    stream.close();
    // Plivo fetches the Dial our webhook serves.
    const dial = await fake.webhook(`${webhookUrl}?type=transfer-dial`, legParams({ CallStatus: "in-progress" }));
    expect(dial.body).toBe(
      `<Response><Dial action="${webhookUrl}?type=transfer-end" method="POST" callbackUrl="${webhookUrl}?type=transfer-leg" callbackMethod="POST" timeout="30" callerId="${OURS}"><Number>+15550004444</Number></Dial></Response>`,
    );
    const back = await fake.webhook(`${webhookUrl}?type=transfer-end`, legParams({ DialStatus: "busy", DialBLegUUID: "b-leg-1" }));
    expect(await busy).toMatchObject({ transferred: false, outcome: "busy", reason: "Plivo's Dial ended busy", legId: "b-leg-1", state: "listening" });
    // Back with us: the stream again, on the same call.
    const again = plivoStreamOf(back.body)!;
    const resumed = await MediaStreamClient.connect(again.url, { callSid: callUuid, token: again.headers }, PLIVO);
    const since = performance.now();
    await manager().speak(callId, "Sorry, that line is busy.");
    expect(resumed.mediaAfter(since).length).toBeGreaterThan(10);

    const answered = manager().transferCall(callId, { to: "+15550005555" });
    await waitFor(() => moves()[1], "the second move");
    resumed.close();
    await fake.webhook(`${webhookUrl}?type=transfer-dial`, legParams({ CallStatus: "in-progress" }));
    await fake.webhook(`${webhookUrl}?type=transfer-leg`, legParams({ DialAction: "answer", DialBLegUUID: "b-leg-2", DialBLegStatus: "answer" }));
    expect(await answered).toMatchObject({ transferred: true, outcome: "connected", legId: "b-leg-2", state: "transferred" });
    expect((await fake.webhook(`${webhookUrl}?type=transfer-end`, legParams({ DialStatus: "completed", DialBLegUUID: "b-leg-2" }))).body).toContain("<Hangup");
    expect(manager().getCall(callId)).toMatchObject({ state: "transferred", transfers: [{ outcome: "busy" }, { outcome: "connected", legId: "b-leg-2" }] });
  }, 30_000);

  it("transfer (warm): the person, a call of ours, hears the briefing alone while the caller holds; a 1 moves both into one Conference, which Plivo records and we fetch", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "One moment please.", mode: "conversation", record: true });
    const requestUuid = manager().getCall(callId)!.providerCallId!;
    const callUuid = "c0ffee00-0000-4000-8000-0000000000c1";
    fake.calls.set(callUuid, "live");
    const answer = await fake.webhook(`${webhookUrl}?type=answer`, answerParams(callUuid, requestUuid));
    const caller = await MediaStreamClient.connect(plivoStreamOf(answer.body)!.url, { callSid: callUuid, token: plivoStreamOf(answer.body)!.headers }, PLIVO);
    await waitFor(() => manager().getCall(callId)?.state === "listening" || undefined, "the message played", 15_000);

    const since = performance.now();
    const accepted = manager().transferCall(callId, { to: "+15550007003", mode: "warm", message: "Ann is calling about her order." });
    const personRequest = await waitFor(() => fake.dialled.get("+15550007003"), "the person called");
    const personUuid = "c0ffee00-0000-4000-8000-0000000000c2";
    fake.calls.set(personUuid, "live");
    const personAnswer = await fake.webhook(`${webhookUrl}?type=answer`, { ...answerParams(personUuid, personRequest), To: "+15550007003" });
    const target = plivoStreamOf(personAnswer.body)!;
    const person = await MediaStreamClient.connect(target.url, { callSid: personUuid, token: target.headers }, PLIVO);
    const at = performance.now();
    await person.play(decodeG711("ulaw", encodeG711("ulaw", await synthesizeAll(new FliteSynthesizer(), "Hello?", 8000))));
    await person.silence(1500);
    await waitFor(() => loudMs(person.mediaAfter(at)) > 1500 || undefined, "the briefing played to the person", 20_000);
    expect(loudMs(caller.mediaAfter(since))).toBeGreaterThan(200);
    person.dtmf("1");
    const result = await accepted;
    expect(result, `${result.reason}: ${manager().getCall(callId)!.endReason}`).toMatchObject({ transferred: true, mode: "warm", outcome: "connected", legId: personRequest, state: "transferred" });
    const room = `${webhookUrl}?type=transfer-room&room=${requestUuid}`;
    for (const uuid of [personUuid, callUuid]) expect(fake.made("POST", new RegExp(`^/Call/${uuid}/$`)).at(-1)?.body).toMatchObject({ legs: "aleg", aleg_url: room, aleg_method: "POST" });
    const conference = await fake.webhook(room, { CallUUID: callUuid, Direction: "outbound", CallStatus: "in-progress" });
    expect(conference.body).toBe(
      `<Response><Conference beep="false" startConferenceOnEnter="true" endConferenceOnExit="true" waitSound="" record="true" recordFileFormat="wav" callbackUrl="${webhookUrl}?type=transfer-recorded&amp;room=${requestUuid}" callbackMethod="POST">transfer-${requestUuid}</Conference></Response>`,
    );
    expect(manager().listCalls().some((c) => c.providerCallId === personRequest)).toBe(false);

    const wav = writeWavPcm16(new Int16Array(8000 * 2), 8000);
    fake.files.set("conference.wav", wav);
    await fake.webhook(`${webhookUrl}?type=transfer-recorded&room=${requestUuid}`, { CallUUID: callUuid, ConferenceAction: "record", ConferenceName: `transfer-${requestUuid}`, RecordUrl: `${fake.baseUrl}/files/conference.wav`, RecordingDurationMs: "2000" });
    const after = await waitFor(() => manager().getCall(callId)!.recording?.afterTransfer, "the transferred call's recording");
    expect(after).toMatchObject({ durationMs: 2000, bytes: wav.length });
    expect(readFileSync(after.path).equals(wav)).toBe(true);
    caller.close();
    person.close();
  }, 60_000);

  it("answering machines: a call asking for detection has Plivo's own (asynchronous); the opening message waits for its Machine verdict, kept in the call record", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "Hello from the test.", amd: true });
    expect(fake.made("POST", /^\/Call\/$/).at(-1)!.body).toMatchObject({ machine_detection: "true", machine_detection_time: 5000, machine_detection_url: `${webhookUrl}?type=amd`, machine_detection_method: "POST" });
    const requestUuid = manager().getCall(callId)!.providerCallId!;
    const callUuid = "c0ffee00-0000-4000-8000-0000000000d1";
    fake.calls.set(callUuid, "live");
    const answer = await fake.webhook(`${webhookUrl}?type=answer`, answerParams(callUuid, requestUuid));
    const stream = await MediaStreamClient.connect(plivoStreamOf(answer.body)!.url, { callSid: callUuid, token: plivoStreamOf(answer.body)!.headers }, PLIVO);
    await waitFor(() => manager().getCall(callId)!.state === "answered" || undefined, "answered");
    await new Promise((r) => setTimeout(r, 300));
    expect(manager().getCall(callId)!.transcript.filter((t) => t.speaker === "bot" && t.kind === "speech")).toEqual([]);
    expect((await fake.webhook(`${webhookUrl}?type=amd`, { CallUUID: callUuid, RequestUUID: requestUuid, Machine: "false" })).status).toBe(204);
    await waitFor(() => manager().getCall(callId)!.transcript.find((t) => t.speaker === "bot" && t.text === "Hello from the test."), "the message said");
    expect(manager().getCall(callId)!.amd).toMatchObject({ outcome: "human", reason: "Plivo: Machine false" });
    const { callId: plain } = await manager().initiateCall({ to: CALLER, message: "Hi" });
    expect(fake.made("POST", /^\/Call\/$/).at(-1)!.body.machine_detection).toBeUndefined();
    await manager().endCall(plain);
    await manager().endCall(callId);
    stream.close();
  }, 30_000);

  it("cancels a call request not answered yet", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "Hello." });
    const requestUuid = manager().getCall(callId)!.providerCallId!;
    await manager().endCall(callId);
    expect(fake.made("DELETE", new RegExp(`/Request/${requestUuid}/$`))).toHaveLength(1);
  });

  it("refuses unsigned, tampered, wrong-URL and wrong-token webhooks; a replayed answer gets the same XML and starts nothing", async () => {
    const callUuid = "c0ffee00-0000-4000-8000-0000000000a1";
    const params = { CallUUID: callUuid, Direction: "inbound", From: CALLER, To: OURS, CallStatus: "ringing" };
    const url = `${webhookUrl}?type=answer`;
    expect((await fake.webhook(url, params, { unsigned: true })).status).toBe(401);
    expect((await fake.webhook(url, params, { signParams: { ...params, From: "+15559990000" } })).status).toBe(401);
    expect((await fake.webhook(url, params, { signUrl: `${webhookUrl}?type=hangup` })).status).toBe(401);
    const { v3Signature } = await import("./fakes/plivo.js");
    const forged = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-plivo-signature-v3": v3Signature(url, params, "n1", "not-the-token"), "x-plivo-signature-v3-nonce": "n1" },
      body: new URLSearchParams(params).toString(),
    });
    expect(forged.status).toBe(401);
    expect(manager().listCalls().filter((c) => c.providerCallId === callUuid)).toEqual([]);

    const first = await fake.webhook(url, params, { nonce: "nonce-replayed-1" });
    expect(first.body).toContain("<Stream");
    const again = await fake.webhook(url, params, { nonce: "nonce-replayed-1" });
    expect(again.status).toBe(200);
    expect(again.body).toContain("<Stream");
    expect(manager().listCalls().filter((c) => c.providerCallId === callUuid)).toHaveLength(1);
    const call = manager().listCalls().find((c) => c.providerCallId === callUuid)!;
    await manager().endCall(call.callId);
  }, 30_000);

  it("refuses a caller not on the allowlist with <Hangup>", async () => {
    const callUuid = "c0ffee00-0000-4000-8000-0000000000b2";
    const reply = await fake.webhook(`${webhookUrl}?type=answer`, { CallUUID: callUuid, Direction: "inbound", From: "+15557770000", To: OURS, CallStatus: "ringing" });
    expect(reply.body).toContain('<Hangup reason="rejected"/>');
    expect(manager().listCalls().find((c) => c.providerCallId === callUuid)?.endReason).toMatch(/allowFrom/);
  });

  it("setup asks Plivo for the account and the caller id", async () => {
    const ok = await runSetup(makeConfig({ ...keys, publicUrl: "https://voice.example.com/voice/webhook" }), [], { apiBaseUrls: { plivo: fake.baseUrl }, resolve: async () => ["203.0.113.9"] });
    expect(ok.findings.filter((f) => f.check.startsWith("plivo"))).toEqual([
      { check: "plivo-account", status: "ok", detail: `credentials accepted for ${AUTH_ID}` },
      { check: "plivo-from-number", status: "ok", detail: `fromNumber ${OURS} is a number on this account` },
    ]);
    const wrong = await runSetup(makeConfig({ ...keys, plivo: { authId: AUTH_ID, authToken: "wrong-plivo-token" }, publicUrl: "https://voice.example.com/voice/webhook" }), [], { apiBaseUrls: { plivo: fake.baseUrl }, resolve: async () => ["203.0.113.9"] });
    expect(wrong.findings.find((f) => f.check === "plivo-account")).toMatchObject({ status: "fail", detail: "Plivo refused the credentials (HTTP 401)" });
    expect(JSON.stringify(wrong)).not.toContain("wrong-plivo-token");
    // Unreachable: the SDK rejects with a stack trace as a string; the finding says one line of it.
    const down = await runSetup(makeConfig({ ...keys, publicUrl: "https://voice.example.com/voice/webhook" }), [], { apiBaseUrls: { plivo: "http://127.0.0.1:1" }, resolve: async () => ["203.0.113.9"] });
    const detail = down.findings.find((f) => f.check === "plivo-account")!.detail;
    expect(detail).toMatch(/^Plivo's API did not answer: .*ECONNREFUSED/);
    expect(detail).not.toMatch(/\n|\bat /);
  });
});

describe("Plivo with streaming off: Plivo speaks (Speak) and listens (GetInput) itself", () => {
  let fake: FakePlivo;
  let service: RunningService;
  let webhookUrl: string;
  const manager = () => service.runtime.manager;

  beforeAll(async () => {
    fake = await FakePlivo.start();
    ({ service, webhookUrl } = await startCloudService("plivo", fake.baseUrl, {
      fromNumber: OURS,
      plivo: { authId: AUTH_ID, authToken: AUTH_TOKEN },
      streaming: { enabled: false },
      inboundPolicy: "allowlist",
      allowFrom: [CALLER],
      inboundGreeting: "Hello, Plivo speaking.",
    }));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  /** Plays Plivo's part of the next Transfer: fetches the document the call was moved to. */
  const nextDocument = async (callUuid: string, seen: number) => {
    const moved = await waitFor(() => fake.made("POST", new RegExp(`/Call/${callUuid}/$`))[seen], `transfer ${seen + 1}`);
    expect(moved.body).toMatchObject({ legs: "aleg", aleg_method: "POST" });
    const url = moved.body.aleg_url as string;
    return { url, xml: (await fake.webhook(url, { CallUUID: callUuid, Direction: "outbound", CallStatus: "in-progress" })).body };
  };
  const attr = (xml: string, name: string) => xml.match(new RegExp(`${name}="([^"]+)"`))?.[1]?.replace(/&amp;/g, "&");

  it("says each message with Speak, hears the answer through GetInput, and takes keys from it", async () => {
    const { callId } = await manager().initiateCall({ to: CALLER, message: "Hello from Plivo's own voice.", mode: "conversation" });
    const requestUuid = manager().getCall(callId)!.providerCallId!;
    const callUuid = "c0ffee00-0000-4000-8000-00000000c0de";
    fake.calls.set(callUuid, "live");
    const answer = await fake.webhook(`${webhookUrl}?type=answer`, { CallUUID: callUuid, RequestUUID: requestUuid, Direction: "outbound", CallStatus: "in-progress" });
    expect(answer.body).toMatch(/<Wait length="\d+"\/>/);
    expect(answer.body).not.toContain("<Stream");

    let transfers = 0;
    // The opening message: Speak, then back to us when it has played.
    const spoken = await nextDocument(callUuid, transfers++);
    expect(spoken.xml).toContain("<Speak>Hello from Plivo's own voice.</Speak>");
    const back = spoken.xml.match(/<Redirect[^>]*>([^<]+)<\/Redirect>/)![1]!.replace(/&amp;/g, "&");
    await fake.webhook(back, { CallUUID: callUuid, Direction: "outbound", CallStatus: "in-progress" });
    // Then Plivo listens for this turn.
    const listening = await nextDocument(callUuid, transfers++);
    expect(listening.xml).toMatch(/<GetInput [^>]*inputType="dtmf speech"/);
    await waitFor(() => manager().getCall(callId)!.state === "listening" || undefined, "listening");

    // Text that is not XML-safe stays text.
    const reply = manager().continueCall(callId, "Fish & chips <today>: when should I call back?");
    const question = await nextDocument(callUuid, transfers++);
    expect(question.xml).toContain("<Speak>Fish &amp; chips &lt;today&gt;: when should I call back?</Speak>");
    await fake.webhook(question.xml.match(/<Redirect[^>]*>([^<]+)<\/Redirect>/)![1]!.replace(/&amp;/g, "&"), { CallUUID: callUuid });
    const input = await nextDocument(callUuid, transfers++);
    await fake.webhook(attr(input.xml, "action")!, { CallUUID: callUuid, InputType: "speech", Speech: "tomorrow at nine" });
    expect((await reply).transcript).toBe("tomorrow at nine");

    // An answer for an old turn is not taken for the new one.
    const code = manager().continueCall(callId, "Your code, please.", { digits: 4 });
    const ask = await nextDocument(callUuid, transfers++);
    await fake.webhook(ask.xml.match(/<Redirect[^>]*>([^<]+)<\/Redirect>/)![1]!.replace(/&amp;/g, "&"), { CallUUID: callUuid });
    const keys = await nextDocument(callUuid, transfers++);
    await fake.webhook(attr(input.xml, "action")!, { CallUUID: callUuid, InputType: "speech", Speech: "stale words" });
    await fake.webhook(attr(keys.xml, "action")!, { CallUUID: callUuid, InputType: "dtmf", Digits: "4711" });
    expect((await code).transcript).toBe("[DTMF 4711]");
    await manager().endCall(callId);
    expect(fake.made("DELETE", new RegExp(`/Call/${callUuid}/$`))).toHaveLength(1);
  }, 30_000);

  it("greets an allowed caller with Speak once Plivo has the call up (a Transfer before that is tried again)", async () => {
    const callUuid = "c0ffee00-0000-4000-8000-0000000000a1";
    // Not live while Plivo fetches the answer XML: a Transfer now finds no call (404).
    const answer = await fake.webhook(`${webhookUrl}?type=answer`, { CallUUID: callUuid, Direction: "inbound", From: CALLER, To: OURS, CallStatus: "ringing" });
    expect(answer.body).toMatch(/<Wait length="\d+"\/>/);
    await new Promise((r) => setTimeout(r, 300));
    fake.calls.set(callUuid, "live");
    const refused = await waitFor(() => fake.made("POST", new RegExp(`/Call/${callUuid}/$`)).length > 1 || undefined, "the Transfer tried again");
    expect(refused).toBe(true);
    const greeting = await nextDocument(callUuid, fake.made("POST", new RegExp(`/Call/${callUuid}/$`)).length - 1);
    expect(greeting.xml).toContain("<Speak>Hello, Plivo speaking.</Speak>");
    const call = manager().listCalls().find((c) => c.providerCallId === callUuid)!;
    await manager().endCall(call.callId);
  }, 30_000);
});

