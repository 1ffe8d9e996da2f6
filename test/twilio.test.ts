/**
 * Twilio's own protocol on loopback: the real SDK against a local server
 * speaking Twilio's Calls API, webhooks signed with the SDK's own helper,
 * TwiML, a dropped stream coming back through the Redirect, the webhook's
 * limits. What every carrier shares (audio, barge-in, keys, hang-ups,
 * restore) is in the carrier suite (test/suites/carriers.ts).
 */
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningService } from "../src/server/service.js";
import { DtmfDetector } from "../src/audio/dtmf.js";
import { concatPcm } from "../src/audio/frame.js";
import { decodeG711, encodeG711 } from "../src/audio/g711.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { writeWavPcm16 } from "../src/speech/wav.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, MediaStreamClient, callSid, loudMs, streamOf } from "./fakes/twilio.js";
import { saidAndListening, startCloudService, tempDir, waitFor } from "./helpers.js";

describe("Twilio carrier (SDK against a local Twilio API, signed webhooks, Media Streams)", () => {
  let fake: FakeTwilio;
  let service: RunningService;
  let webhookUrl: string;
  const storeDir = tempDir();
  const manager = () => service.runtime.manager;

  beforeAll(async () => {
    fake = await FakeTwilio.start();
    ({ service, webhookUrl } = await startCloudService(
      "twilio",
      fake.baseUrl,
      {
        fromNumber: "+15550009999",
        twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
        outbound: { defaultMode: "conversation" },
        inboundPolicy: "allowlist",
        allowFrom: ["+15550001234"],
        inboundGreeting: "Hello, you reached the test line.",
        numbers: { "+15550008888": { tts: { providers: { flite: { voice: "kal" } } } } },
        streaming: { preStartTimeoutMs: 1000, maxPendingConnectionsPerIp: 4 },
      },
      storeDir,
    ));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  const said = (callId: string, line: string) => saidAndListening(manager(), callId, line);

  /** Places a call and plays Twilio's part up to a started media stream. */
  async function connectedCall(message: string, options: { record?: boolean } = {}): Promise<{ callId: string; sid: string; stream: MediaStreamClient; token: string; url: string }> {
    const { callId } = await manager().initiateCall({ to: "+15550001234", message, ...options });
    const sid = manager().getCall(callId)!.providerCallId!;
    const twiml = await fake.webhook(webhookUrl + "?type=voice", fake.voiceParams(sid, "outbound-api"));
    expect(twiml.status).toBe(200);
    const target = streamOf(twiml.body);
    expect(target, twiml.body).toBeDefined();
    const stream = await MediaStreamClient.connect(target!.url, { callSid: sid, token: target!.token });
    await said(callId, message);
    return { callId, sid, stream, token: target!.token, url: target!.url };
  }

  it("places a call through the SDK with our webhook, status callback and ring timeout", async () => {
    const before = fake.made("POST", /Calls\.json$/).length;
    const { callId } = await manager().initiateCall({ to: "+15550001234", message: "Hi" });
    const created = fake.made("POST", /Calls\.json$/)[before]!;
    expect(created.form).toMatchObject({ To: "+15550001234", From: "+15550009999", Url: `${webhookUrl}?type=voice`, Method: "POST", StatusCallback: `${webhookUrl}?type=status` });
    expect(created.form.StatusCallbackEvent).toEqual(["initiated", "ringing", "answered", "completed"]);
    const sid = manager().getCall(callId)!.providerCallId!;
    await manager().endCall(callId);
    // Not answered yet: canceled, not completed.
    expect(fake.made("POST", new RegExp(`${sid}\\.json$`)).at(-1)?.form.Status).toBe("canceled");
  });

  it("answering machines: a call asking for detection has Twilio's own (async AMD); the opening message waits for its AnsweredBy, kept in the call record", async () => {
    const before = fake.made("POST", /Calls\.json$/).length;
    const { callId } = await manager().initiateCall({ to: "+15550001234", message: "Hello from the test.", amd: true });
    const created = fake.made("POST", /Calls\.json$/)[before]!;
    expect(created.form).toMatchObject({ MachineDetection: "Enable", AsyncAmd: "true", AsyncAmdStatusCallback: `${webhookUrl}?type=amd`, AsyncAmdStatusCallbackMethod: "POST", MachineDetectionTimeout: "5" });
    const sid = manager().getCall(callId)!.providerCallId!;
    const target = streamOf((await fake.webhook(webhookUrl + "?type=voice", fake.voiceParams(sid, "outbound-api"))).body)!;
    const stream = await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token });
    await waitFor(() => manager().getCall(callId)!.state === "answered" || undefined, "answered");
    await new Promise((r) => setTimeout(r, 300));
    // Nothing said before the verdict.
    expect(manager().getCall(callId)!.transcript.filter((t) => t.speaker === "bot" && t.kind === "speech")).toEqual([]);
    const amd = await fake.webhook(webhookUrl + "?type=amd", { ...fake.voiceParams(sid, "outbound-api"), AnsweredBy: "machine_start", MachineDetectionDuration: "1800" });
    expect(amd.status).toBe(204);
    await said(callId, "Hello from the test.");
    expect(manager().getCall(callId)!.amd).toEqual({ outcome: "machine", ms: 1800, reason: "Twilio: machine_start" });
    // A call that does not ask has none.
    const { callId: plain } = await manager().initiateCall({ to: "+15550001234", message: "Hi" });
    expect(fake.made("POST", /Calls\.json$/).at(-1)!.form.MachineDetection).toBeUndefined();
    await manager().endCall(plain);
    await manager().endCall(callId);
    stream.close();
  });

  it("keeps the call when the stream drops and comes back within the grace window; a second call works after", async () => {
    const first = await connectedCall("Hello again.");
    first.stream.drop();
    await new Promise((r) => setTimeout(r, 500));
    expect(manager().getCall(first.callId)?.state).toBe("listening");
    // Twilio runs the <Redirect> after the stream: a signed resume fetch, then a new stream.
    const resumed = await fake.webhook(webhookUrl + "?type=resume", fake.voiceParams(first.sid, "outbound-api"));
    const target = streamOf(resumed.body)!;
    const again = await MediaStreamClient.connect(target.url, { callSid: first.sid, token: target.token });
    const since = performance.now();
    await manager().speak(first.callId, "Still here.");
    expect(again.mediaAfter(since).length).toBeGreaterThan(10);
    // Keys go out as tones on the stream; the call's TwiML is never replaced.
    const before = fake.made("POST", new RegExp(`${first.sid}\\.json$`)).length;
    const keysAt = performance.now();
    await manager().sendDtmf(first.callId, "42#");
    const detector = new DtmfDetector();
    const keys = again.mediaAfter(keysAt).map((m) => detector.push({ pcm: m.pcm!, sampleRate: 8000 }) ?? "").join("");
    expect(keys).toBe("42#");
    expect(fake.made("POST", new RegExp(`${first.sid}\\.json$`)).length).toBe(before);
    await manager().endCall(first.callId);
    again.close();

    const second = await connectedCall("This is the second call.");
    expect(second.stream.mediaAfter(0).length).toBeGreaterThan(20);
    // A stream credential is bound to its CallSid: the first call's token does not open the second.
    const stolen = await MediaStreamClient.connect(second.url, { callSid: second.sid, token: first.token });
    await waitFor(() => stolen.closed || undefined, "stolen token refused");
    await manager().endCall(second.callId);
    second.stream.close();
  }, 90_000);

  it("transfer (blind): the call's TwiML becomes a Dial of the person; busy brings the caller back on a new stream; answered, the call ends transferred", async () => {
    const call = await connectedCall("Let me put you through.");
    const updates = () => fake.made("POST", new RegExp(`${call.sid}\\.json$`));
    const before = updates().length;
    const busy = manager().transferCall(call.callId, { to: "+15550004444" });
    const update = await waitFor(() => updates()[before], "the call's TwiML replaced");
    const dial = String(update.form.Twiml);
    expect(dial).toMatch(new RegExp(`<Dial action="${webhookUrl}\\?type=transfer-end" method="POST" timeout="\\d+" callerId="\\+15550009999">`));
    expect(dial).toContain(`<Number statusCallback="${webhookUrl}?type=transfer-leg" statusCallbackEvent="answered" statusCallbackMethod="POST">+15550004444</Number>`);
    // The new TwiML ends our stream; the call waits for the dial (well past the 5 s a dropped stream is given).
    call.stream.drop();
    await new Promise((r) => setTimeout(r, 5500));
    expect(manager().getCall(call.callId)!.state).toBe("listening");
    const back = await fake.webhook(`${webhookUrl}?type=transfer-end`, { ...fake.voiceParams(call.sid, "outbound-api"), DialCallStatus: "busy" });
    expect(await busy).toMatchObject({ transferred: false, outcome: "busy", reason: "Twilio's Dial ended busy", state: "listening" });
    // The caller is back with us, on a new stream of the same call.
    const target = streamOf(back.body)!;
    const again = await MediaStreamClient.connect(target.url, { callSid: call.sid, token: target.token });
    const since = performance.now();
    await manager().speak(call.callId, "Sorry, that line is busy.");
    expect(again.mediaAfter(since).length).toBeGreaterThan(10);

    const answered = manager().transferCall(call.callId, { to: "+15550005555" });
    await waitFor(() => updates()[before + 1], "the second Dial");
    again.drop();
    const leg = callSid(0xabcdef);
    await fake.webhook(`${webhookUrl}?type=transfer-leg`, { AccountSid: ACCOUNT_SID, CallSid: leg, ParentCallSid: call.sid, CallStatus: "in-progress", Direction: "outbound-dial" });
    expect(await answered).toMatchObject({ transferred: true, outcome: "connected", legId: leg, state: "transferred" });
    // When the two hang up, Twilio asks the Dial's action what next: the call is over; its end changes nothing.
    expect((await fake.webhook(`${webhookUrl}?type=transfer-end`, { ...fake.voiceParams(call.sid, "outbound-api"), DialCallStatus: "completed" })).body).toContain("<Hangup/>");
    await fake.webhook(`${webhookUrl}?type=status`, { ...fake.voiceParams(call.sid, "outbound-api"), CallStatus: "completed" });
    await new Promise((r) => setTimeout(r, 100));
    expect(manager().getCall(call.callId)).toMatchObject({ state: "transferred", transfers: [{ outcome: "busy" }, { outcome: "connected", legId: leg }] });
  }, 30_000);

  it("transfer (warm): the caller holds on our stream while the person, a call of ours, hears the briefing alone; a voicemail and a 2 leave the caller with us; a 1 joins both in one Conference, which Twilio records and we fetch", async () => {
    const call = await connectedCall("One moment please.", { record: true });
    const briefing = "Ann is calling about her order.";
    /** Plays Twilio's part of the person's call: answered, streamed to us, Twilio's AMD verdict. */
    const person = async (to: string, answeredBy: string) => {
      const created = await waitFor(() => fake.made("POST", /Calls\.json$/).find((r) => r.form.To === to), `the call to ${to}`);
      expect(created.form).toMatchObject({ From: "+15550009999", MachineDetection: "Enable", AsyncAmd: "true" });
      const sid = [...fake.calls.values()].find((c) => c.to === to)!.sid;
      const twiml = await fake.webhook(`${webhookUrl}?type=voice`, fake.voiceParams(sid, "outbound-api", "+15550009999", to));
      const target = streamOf(twiml.body)!;
      const stream = await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token });
      const at = performance.now();
      await fake.webhook(`${webhookUrl}?type=amd`, { ...fake.voiceParams(sid, "outbound-api"), AnsweredBy: answeredBy, MachineDetectionDuration: "900" });
      return { sid, stream, at };
    };
    const hungUp = (sid: string) => waitFor(() => fake.made("POST", new RegExp(`${sid}\\.json$`)).find((r) => r.form.Status === "completed"), `${sid} hung up`);

    // A voicemail answers: the person's call is hung up, unbriefed.
    const voicemail = manager().transferCall(call.callId, { to: "+15550006001", mode: "warm", message: briefing });
    const machine = await person("+15550006001", "machine_end_beep");
    expect(await voicemail).toMatchObject({ transferred: false, mode: "warm", outcome: "voicemail", legId: machine.sid, state: "listening" });
    await hungUp(machine.sid);
    expect(loudMs(machine.stream.mediaAfter(0))).toBe(0);

    // The person hears the briefing alone and presses 2; the caller hears the hold chime meanwhile.
    const since = performance.now();
    const declined = manager().transferCall(call.callId, { to: "+15550006002", mode: "warm", message: briefing });
    const no = await person("+15550006002", "human");
    await waitFor(() => loudMs(no.stream.mediaAfter(no.at)) > 1500 || undefined, "the briefing played to the person", 20_000);
    expect(loudMs(call.stream.mediaAfter(since))).toBeGreaterThan(200);
    no.stream.dtmf("2");
    expect(await declined).toMatchObject({ transferred: false, outcome: "declined", reason: "the person pressed 2", state: "listening" });
    await hungUp(no.sid);
    const back = performance.now();
    await manager().speak(call.callId, "They cannot take the call.");
    expect(loudMs(call.stream.mediaAfter(back))).toBeGreaterThan(300);

    // Pressing 1: both calls move to one Conference named after the caller, recorded.
    const accepted = manager().transferCall(call.callId, { to: "+15550006003", mode: "warm", message: briefing });
    const yes = await person("+15550006003", "human");
    await waitFor(() => loudMs(yes.stream.mediaAfter(yes.at)) > 1500 || undefined, "the briefing played", 20_000);
    yes.stream.dtmf("1");
    expect(await accepted).toMatchObject({ transferred: true, mode: "warm", outcome: "connected", legId: yes.sid, state: "transferred" });
    const room = (sid: string) => String(fake.made("POST", new RegExp(`${sid}\\.json$`)).find((r) => r.form.Twiml)?.form.Twiml);
    const callback = `${webhookUrl}?type=recording&amp;call=${call.sid}`;
    for (const sid of [yes.sid, call.sid]) {
      expect(room(sid)).toContain(`<Conference beep="false" startConferenceOnEnter="true" endConferenceOnExit="true" waitUrl="" record="record-from-start" recordingStatusCallback="${callback}" recordingStatusCallbackMethod="POST" recordingStatusCallbackEvent="completed">transfer-${call.sid}</Conference>`);
    }
    // The person's events never reached the calls' manager as a call of its own.
    expect(manager().listCalls().some((c) => [machine.sid, no.sid, yes.sid].includes(c.providerCallId ?? ""))).toBe(false);
    expect(manager().getCall(call.callId)!.transfers?.map((t) => t.outcome)).toEqual(["voicemail", "declined", "connected"]);

    // The conference ends: Twilio's recording is fetched beside ours.
    const recordingSid = `RE${"7".repeat(32)}`;
    fake.recordings.set(recordingSid, writeWavPcm16(new Int16Array(8000 * 3), 8000));
    const recorded = { AccountSid: ACCOUNT_SID, ConferenceSid: `CF${"2".repeat(32)}`, RecordingSid: recordingSid, RecordingStatus: "completed", RecordingDuration: "3", RecordingChannels: "1" };
    // A callback naming a file elsewhere is not fetched with the account's credentials.
    const elsewhere = await fake.webhook(`${webhookUrl}?type=recording&call=${call.sid}`, { ...recorded, RecordingUrl: `https://example.com/2010-04-01/Accounts/${ACCOUNT_SID}/Recordings/${recordingSid}` });
    expect(elsewhere.status).toBe(204);
    const failed = await waitFor(() => manager().getCall(call.callId)!.recording?.afterTransfer, "the refused recording noted");
    expect(failed.failed).toMatch(/named no recording of this account/);
    fake.recordings.clear();
  }, 90_000);

  it("transfer recording: a recorded call's blind Dial is recorded dual-channel by Twilio; its WAV is fetched beside ours with its duration", async () => {
    const call = await connectedCall("Putting you through.", { record: true });
    const transfer = manager().transferCall(call.callId, { to: "+15550006010" });
    const update = await waitFor(() => fake.made("POST", new RegExp(`${call.sid}\\.json$`)).find((r) => r.form.Twiml), "the Dial");
    expect(String(update.form.Twiml)).toContain(`record="record-from-answer-dual" recordingStatusCallback="${webhookUrl}?type=recording&amp;call=${call.sid}"`);
    call.stream.drop();
    await fake.webhook(`${webhookUrl}?type=transfer-leg`, { AccountSid: ACCOUNT_SID, CallSid: callSid(0xfeed), ParentCallSid: call.sid, CallStatus: "in-progress", Direction: "outbound-dial" });
    expect(await transfer).toMatchObject({ transferred: true, outcome: "connected" });
    const recordingSid = `RE${"8".repeat(32)}`;
    const wav = writeWavPcm16(new Int16Array(8000 * 2), 8000);
    fake.recordings.set(recordingSid, wav);
    await fake.webhook(`${webhookUrl}?type=recording&call=${call.sid}`, {
      AccountSid: ACCOUNT_SID,
      CallSid: call.sid,
      RecordingSid: recordingSid,
      RecordingUrl: `https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT_SID}/Recordings/${recordingSid}`,
      RecordingStatus: "completed",
      RecordingDuration: "2",
      RecordingChannels: "2",
    });
    const record = manager().getCall(call.callId)!;
    const after = await waitFor(() => manager().getCall(call.callId)!.recording?.afterTransfer, "the transferred call's recording");
    expect(after).toMatchObject({ path: record.recording!.path.replace(/\.wav$/, ".transferred.wav"), durationMs: 2000, bytes: wav.length });
    expect(readFileSync(after.path).equals(wav)).toBe(true);
  }, 30_000);

  it("ends the call when the stream does not come back", async () => {
    const call = await connectedCall("Short one.");
    call.stream.drop();
    await waitFor(() => (manager().getCall(call.callId)?.state === "error" ? true : undefined), "call ended after the grace window", 10_000);
    expect(manager().getCall(call.callId)!.endReason).toMatch(/media stream dropped/);
  }, 30_000);

  it("maps status callbacks to call states", async () => {
    const { callId } = await manager().initiateCall({ to: "+15550001234", message: "Hi" });
    const sid = manager().getCall(callId)!.providerCallId!;
    await fake.webhook(webhookUrl + "?type=status", { AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: "ringing", Direction: "outbound-api" });
    expect(manager().getCall(callId)!.state).toBe("ringing");
    await fake.webhook(webhookUrl + "?type=status", { AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: "busy", Direction: "outbound-api" });
    await waitFor(() => (manager().getCall(callId)!.state === "busy" ? true : undefined), "busy");
  });

  it("answers an allowed inbound caller with a stream and greets them; refuses others with <Reject>", async () => {
    const sid = callSid(0xabc001);
    const reply = await fake.webhook(webhookUrl, fake.voiceParams(sid, "inbound", "+15550001234", "+15550009999"));
    const target = streamOf(reply.body)!;
    expect(target).toBeDefined();
    const stream = await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token });
    const call = await waitFor(() => manager().listCalls().find((c) => c.providerCallId === sid && c.state === "listening"), "greeted", 15_000);
    expect(manager().getCall(call.callId)!.transcript[0]?.text).toBe("Hello, you reached the test line.");
    await manager().endCall(call.callId);
    stream.close();

    const stranger = callSid(0xabc002);
    const refused = await fake.webhook(webhookUrl, fake.voiceParams(stranger, "inbound", "+15557770000", "+15550009999"));
    expect(refused.body).toContain("<Reject");
    expect(manager().listCalls().find((c) => c.providerCallId === stranger)?.endReason).toMatch(/allowFrom/);
  }, 30_000);

  it("greets a caller who dialled a number with its own voice in that voice (numbers.<n>.tts), the others in the default", async () => {
    const greeting = "Hello, you reached the test line.";
    /** What a caller on `to` hears of the greeting, from its first loud sample on. */
    const hear = async (n: number, to: string) => {
      const sid = callSid(n);
      const target = streamOf((await fake.webhook(webhookUrl, fake.voiceParams(sid, "inbound", "+15550001234", to))).body)!;
      const stream = await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token });
      const call = await waitFor(() => manager().listCalls().find((c) => c.providerCallId === sid && c.state === "listening"), "greeted", 15_000);
      await manager().endCall(call.callId);
      stream.close();
      return fromLoud(concatPcm(stream.received.filter((r) => r.event === "media").map((r) => r.pcm!)));
    };
    /** `voice` saying the greeting as a mu-law line carries it. */
    const line = async (voice: string) => fromLoud(decodeG711("ulaw", encodeG711("ulaw", await synthesizeAll(new FliteSynthesizer({ voice }), greeting, 8000))));
    const [kal, rms] = [await line("kal"), await line("rms")];
    const same = (a: Int16Array, b: Int16Array) => a.subarray(0, 4000).every((v, i) => v === b[i]);
    const ownLine = await hear(0xabc010, "+15550008888");
    expect(same(ownLine, kal)).toBe(true);
    expect(same(ownLine, rms)).toBe(false);
    expect(same(await hear(0xabc011, "+15550009999"), rms)).toBe(true);
  }, 30_000);

  describe("webhook security", () => {
    const statusOf = (sid: string) => ({ AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: "ringing", Direction: "outbound-api" });

    it("refuses a missing signature before reading the body, a tampered body and a wrong URL", async () => {
      const sid = callSid(0xdead01);
      const missing = await fake.webhook(webhookUrl + "?type=status", statusOf(sid), { noSignature: true });
      expect(missing.status).toBe(401);
      expect(JSON.parse(missing.body).error.code).toBe("UNAUTHORIZED");
      const tampered = await fake.webhook(webhookUrl + "?type=status", { ...statusOf(sid), CallStatus: "completed" }, { signParams: statusOf(sid) });
      expect(tampered.status).toBe(401);
      const wrongUrl = await fake.webhook(webhookUrl + "?type=status", statusOf(sid), { signUrl: "https://evil.example/voice/webhook?type=status" });
      expect(wrongUrl.status).toBe(401);
      expect(manager().listCalls().some((c) => c.providerCallId === sid)).toBe(false);
    });

    it("acknowledges a replayed delivery without acting on it", async () => {
      const sid = callSid(0xbeef01);
      const params = fake.voiceParams(sid, "inbound", "+15550001234", "+15550009999");
      const first = await fake.webhook(webhookUrl, params);
      expect(first.body).toContain("<Stream");
      const count = manager().listCalls().filter((c) => c.providerCallId === sid).length;
      const replay = await fake.webhook(webhookUrl, params);
      expect(replay.status).toBe(200);
      expect(manager().listCalls().filter((c) => c.providerCallId === sid).length).toBe(count);
      const call = manager().listCalls().find((c) => c.providerCallId === sid)!;
      await manager().endCall(call.callId);
    });

    it("refuses a body over 64 KB and more than 8 requests in flight from one address", async () => {
      const big = await fetch(webhookUrl, { method: "POST", headers: { "x-twilio-signature": "x" }, body: "a=" + "b".repeat(70 * 1024) });
      expect(big.status).toBe(400);
      expect(((await big.json()) as { error: { message: string } }).error.message).toMatch(/64|65536/);
      // Eight senders that never finish their bodies hold the address's slots; the ninth is refused at once.
      const { port } = new URL(webhookUrl);
      const slow = Array.from({ length: 8 }, () => {
        const req = request({ host: "127.0.0.1", port: Number(port), path: "/voice/webhook", method: "POST", headers: { "x-twilio-signature": "x", "content-length": "100" } });
        req.on("error", () => undefined);
        req.write("a=1");
        return req;
      });
      await new Promise((r) => setTimeout(r, 200));
      const ninth = await fetch(webhookUrl, { method: "POST", headers: { "x-twilio-signature": "x" }, body: "a=1" });
      expect(ninth.status).toBe(429);
      expect(((await ninth.json()) as { error: { code: string } }).error.code).toBe("LIMIT_REACHED");
      for (const req of slow) req.destroy();
    });
  });
});

describe("Twilio with streaming off: Twilio speaks (Say), listens (Gather) and presses keys (Play) itself", () => {
  let fake: FakeTwilio;
  let service: RunningService;
  let webhookUrl: string;
  const manager = () => service.runtime.manager;

  beforeAll(async () => {
    fake = await FakeTwilio.start();
    ({ service, webhookUrl } = await startCloudService("twilio", fake.baseUrl, {
      fromNumber: "+15550009999",
      twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
      streaming: { enabled: false },
      inboundPolicy: "allowlist",
      allowFrom: ["+15550001234"],
      inboundGreeting: "Hello, Twilio speaking.",
    }));
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await fake?.close();
  });

  const params = (sid: string, extra: Record<string, string> = {}) => ({ ...fake.voiceParams(sid, "outbound-api"), ...extra });
  /** Plays Twilio's part of the next update: fetches the document the call was moved to. */
  const nextDocument = async (sid: string, seen: number) => {
    const moved = await waitFor(() => fake.made("POST", new RegExp(`/Calls/${sid}\\.json$`)).filter((r) => r.form.Url)[seen], `update ${seen + 1}`);
    expect(moved.form.Method).toBe("POST");
    const url = moved.form.Url as string;
    return { url, xml: (await fake.webhook(url, params(sid))).body };
  };
  const attr = (xml: string, name: string) => xml.match(new RegExp(`${name}="([^"]+)"`))?.[1]?.replace(/&amp;/g, "&");
  const back = (xml: string) => xml.match(/<Redirect[^>]*>([^<]+)<\/Redirect>/)![1]!.replace(/&amp;/g, "&");

  it("says each message with Say, hears the answer through Gather, presses keys with Play digits, never opening a stream", async () => {
    const { callId } = await manager().initiateCall({ to: "+15550001234", message: "Hello from Twilio's own voice.", mode: "conversation" });
    const sid = manager().getCall(callId)!.providerCallId!;
    fake.calls.get(sid)!.status = "in-progress";
    const answer = await fake.webhook(`${webhookUrl}?type=voice`, params(sid));
    expect(answer.body).toMatch(/<Pause length="\d+"\/>/);
    expect(answer.body).not.toContain("<Stream");

    let updates = 0;
    const opening = await nextDocument(sid, updates++);
    expect(opening.xml).toContain("<Say>Hello from Twilio's own voice.</Say>");
    await fake.webhook(back(opening.xml), params(sid));
    const listening = await nextDocument(sid, updates++);
    expect(listening.xml).toMatch(/<Gather [^>]*input="dtmf speech"/);
    await waitFor(() => manager().getCall(callId)!.state === "listening" || undefined, "listening");

    // Text that is not XML-safe stays text; an answer for an old turn is not taken for the new one.
    const reply = manager().continueCall(callId, "Fish & chips <today>: when should I call back?");
    const question = await nextDocument(sid, updates++);
    expect(question.xml).toContain("<Say>Fish &amp; chips &lt;today&gt;: when should I call back?</Say>");
    await fake.webhook(back(question.xml), params(sid));
    const input = await nextDocument(sid, updates++);
    await fake.webhook(attr(listening.xml, "action")!, params(sid, { SpeechResult: "stale words", Confidence: "0.9" }));
    await fake.webhook(attr(input.xml, "action")!, params(sid, { SpeechResult: "tomorrow at nine", Confidence: "0.9" }));
    expect((await reply).transcript).toBe("tomorrow at nine");

    // Keys in: Gather's Digits are one answer.
    const code = manager().continueCall(callId, "Your code, please.", { digits: 4 });
    await fake.webhook(back((await nextDocument(sid, updates++)).xml), params(sid));
    const keys = await nextDocument(sid, updates++);
    await fake.webhook(attr(keys.xml, "action")!, params(sid, { Digits: "4711" }));
    expect((await code).transcript).toBe("[DTMF 4711]");

    // Keys out: Play digits, then back to us.
    const pressing = manager().sendDtmf(callId, "42#");
    const press = await nextDocument(sid, updates++);
    expect(press.xml).toContain('<Play digits="42#"/>');
    await fake.webhook(back(press.xml), params(sid));
    await pressing;

    await manager().endCall(callId);
    expect(fake.calls.get(sid)!.status).toBe("completed");
  }, 30_000);

  it("answers an allowed caller with a Pause and greets them with Say once Twilio has the call up; a stranger gets <Reject>", async () => {
    const sid = callSid(900);
    // Still ringing while Twilio fetches the first TwiML: a redirect now is refused (21220).
    fake.calls.set(sid, { sid, status: "ringing" });
    const answer = await fake.webhook(webhookUrl, fake.voiceParams(sid, "inbound"));
    expect(answer.body).toMatch(/<Pause length="\d+"\/>/);
    await new Promise((r) => setTimeout(r, 300));
    fake.calls.get(sid)!.status = "in-progress";
    const greeting = await nextDocument(sid, 0);
    const refused = fake.made("POST", new RegExp(`/Calls/${sid}\\.json$`)).filter((r) => r.form.Url);
    expect(refused.length).toBeGreaterThan(1);
    expect(greeting.xml).toContain("<Say>Hello, Twilio speaking.</Say>");
    const stranger = await fake.webhook(webhookUrl, fake.voiceParams(callSid(901), "inbound", "+15557770000"));
    expect(stranger.body).toContain('<Reject reason="rejected"/>');
    const call = manager().listCalls().find((c) => c.providerCallId === sid)!;
    await manager().endCall(call.callId);
  }, 30_000);
});

/** From the first clearly loud sample on (leading silence differs between a line and a rendering). */
function fromLoud(pcm: Int16Array): Int16Array {
  const start = pcm.findIndex((v) => Math.abs(v) > 500);
  return start < 0 ? new Int16Array(0) : pcm.subarray(start);
}
