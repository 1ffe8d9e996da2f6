/**
 * The carrier conformance suite (run by test/carriers-cloud.test.ts and
 * test/carriers-pbx.test.ts): one set of behaviour tests every cloud
 * carrier runs, each against its own protocol server (its REST API on
 * loopback, webhooks signed its way, its media stream's message names):
 * outbound, inbound (and refused), speak, listen, barge-in, keys in and out,
 * hang-up both ways, end states before an answer, restore after a restart.
 * A carrier joins by describing how its side of a call is played (a Kit),
 * and the far end of each call (a Leg): what it heard, what it says, the
 * keys it gets.
 */
import { readFileSync } from "node:fs";
import { DtmfDetector } from "../../src/audio/dtmf.js";
import { readWav } from "../../src/speech/wav.js";
import { amdSet } from "../../src/bench/amd-set.js";
import { concatPcm } from "../../src/audio/frame.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallManager } from "../../src/calls/manager.js";
import { createLogger } from "../../src/log.js";
import { startService, type RunningService } from "../../src/server/service.js";
import { FliteSynthesizer } from "../../src/speech/flite.js";
import { transcribePcm } from "../../src/speech/pocketsphinx.js";
import { synthesizeAll } from "../../src/speech/types.js";
import { wordErrorRate } from "../../src/speech/wer.js";
import { MediaStreamClient, PLIVO, TELNYX, TWILIO, type Received } from "../fakes/media-stream.js";
import type { MockProvider } from "../../src/providers/mock/provider.js";
import { Lab, labUnavailableReason } from "../../src/lab/lab.js";
import { PhoneAudio } from "../../src/lab/phone-audio.js";
import { callerScenario, calleeScenario, runSipp } from "../../src/lab/sipp.js";
import { AUTH_ID, AUTH_TOKEN as PLIVO_TOKEN, FakePlivo, plivoStreamOf } from "../fakes/plivo.js";
import { API_KEY, CONNECTION_ID, FakeTelnyx } from "../fakes/telnyx.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, callSid, streamOf } from "../fakes/twilio.js";
import { FakeRealtimeVoice } from "../fakes/realtime.js";
import { GOOD_KEY } from "../fakes/vendors.js";
import { freePort, makeConfig, saidAndListening, tempDir, waitFor } from "../helpers.js";

const CALLER = "+15550001234";
const OURS = "+15550009999";
const STRANGER = "+15557770000";
type Ending = "callee-hangup" | "busy" | "no-answer" | "failed";

/** The far end of one call. */
interface Leg {
  /** What the far end understood of everything we said so far. */
  heard(): Promise<string>;
  /** Our audio reached the far end after `since` (performance.now()). */
  hearsUsSince(since: number): boolean;
  /** When our audio first reached the far end after `since`, if it has. */
  firstHeardAfter(since: number): number | undefined;
  /** The far end says `text`; resolves with the time it started. */
  say(text: string): Promise<number>;
  /** The far end sends this audio (8 kHz); resolves when it has been sent. */
  play(pcm: Int16Array): Promise<void>;
  /** How long after `onset` our audio was cut off (barge-in), if it was. */
  cutAfter(onset: number): number | undefined;
  press(key: string): void;
  /** The keys we pressed, as the far end got them (w: a pause, which a tone listener does not see). */
  keysGot(): string;
  /** For carriers that stream audio: the media messages we sent and whether our markers went out. */
  wire?: { media(): Received[]; marked(): boolean };
  close(): void;
}

/** How one carrier's side of a call is played. */
interface Kit {
  id: "twilio" | "telnyx" | "plivo" | "mock" | "asterisk";
  /** Why this carrier cannot run here (the suite is skipped, saying so). */
  unavailable?: string;
  /** Sets up the far end of the next outbound call: it answers (and later hangs up itself), or ends as given. */
  prepare?(next: "answer" | "hangs-up" | Exclude<Ending, "callee-hangup">, holdMs?: number): Promise<void>;
  start(): Promise<{ baseUrl: string; close(): Promise<void> }>;
  /** The carrier's keys in the config. */
  keys(): Record<string, unknown>;
  /** The callee answers our call (the carrier opens its media). */
  answer(providerCallId: string): Promise<Leg>;
  /** A caller rings in; the leg when the service took the call. */
  ringIn(from: string): Promise<{ id: string; leg?: Leg }>;
  /** The carrier reports how the call ended. */
  report(providerCallId: string, how: Ending): Promise<void>;
  /** The service asked the carrier to hang this call up. */
  hungUp(providerCallId: string): Promise<boolean>;
  /** The call no longer exists at the carrier (what a restarted service should find when it asks). */
  gone(providerCallId: string): void;
}

let webhookUrl = "";
let mock: MockProvider | undefined;

const fliteSpeech = (text: string) => synthesizeAll(new FliteSynthesizer(), text, 8000);

/** The far end of a carrier's media stream; `keys` reads the keys we sent where that carrier delivers them. */
function streamLeg(stream: MediaStreamClient, keys: (stream: MediaStreamClient) => string): Leg {
  return {
    heard: () => transcribePcm(concatPcm(stream.mediaAfter(0).map((m) => m.pcm!)), 8000),
    hearsUsSince: (since) => stream.mediaAfter(since).length > 0,
    firstHeardAfter: (since) => stream.mediaAfter(since)[0]?.at,
    async say(text) {
      const onset = await stream.play(await fliteSpeech(text));
      await stream.silence(1200);
      return onset;
    },
    play: async (pcm) => void (await stream.play(pcm)),
    cutAfter(onset) {
      const clear = stream.firstAfter("clear", onset);
      return clear && clear.at - onset;
    },
    press: (key) => stream.dtmf(key),
    keysGot: () => keys(stream),
    wire: { media: () => stream.mediaAfter(0), marked: () => stream.received.some((r) => r.event === "mark") },
    close: () => stream.close(),
  };
}

/** Twilio: our keys are tones on the stream (changing the call's TwiML would drop the stream). */
function tones(stream: MediaStreamClient): string {
  const detector = new DtmfDetector();
  return stream.mediaAfter(0).map((m) => detector.push({ pcm: m.pcm!, sampleRate: 8000 }) ?? "").join("");
}

function twilioKit(): Kit {
  let fake: FakeTwilio;
  let seq = 0;
  const ended: Record<Ending, string> = { "callee-hangup": "completed", busy: "busy", "no-answer": "no-answer", failed: "failed" };
  return {
    id: "twilio",
    start: async () => (fake = await FakeTwilio.start()),
    keys: () => ({ twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN } }),
    async answer(sid) {
      const twiml = await fake.webhook(`${webhookUrl}?type=voice`, fake.voiceParams(sid, "outbound-api"));
      const target = streamOf(twiml.body)!;
      return streamLeg(await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token }, TWILIO), tones);
    },
    async ringIn(from) {
      const sid = callSid(0xc0f000 + (seq += 1));
      const reply = await fake.webhook(webhookUrl, fake.voiceParams(sid, "inbound", from, OURS));
      const target = streamOf(reply.body);
      return { id: sid, leg: target && streamLeg(await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token }, TWILIO), tones) };
    },
    async report(sid, how) {
      await fake.webhook(`${webhookUrl}?type=status`, { AccountSid: ACCOUNT_SID, CallSid: sid, CallStatus: ended[how], Direction: "outbound-api" });
    },
    hungUp: async (sid) => fake.made("POST", new RegExp(`${sid}\\.json$`)).some((r) => r.form.Status === "completed" || r.form.Status === "canceled"),
    gone: (sid) => void (fake.calls.get(sid)!.status = "completed"),
  };
}

function telnyxKit(): Kit {
  let fake: FakeTelnyx;
  const causes: Record<Ending, string> = { "callee-hangup": "normal_clearing", busy: "user_busy", "no-answer": "timeout", failed: "unallocated_number" };
  const event = (type: string, id: string, extra: Record<string, unknown> = {}) =>
    fake.event(type, { call_control_id: id, connection_id: CONNECTION_ID, from: CALLER, to: OURS, ...extra });
  const streamAfter = async (id: string, action: string) => {
    const started = await waitFor(() => fake.made("POST", new RegExp(`/calls/${id}/actions/${action}$`))[0], action);
    const stream = await MediaStreamClient.connect(started.body.stream_url, { callSid: id, token: Buffer.from(started.body.client_state, "base64").toString() }, TELNYX);
    return streamLeg(stream, () => fake.made("POST", new RegExp(`/calls/${id}/actions/send_dtmf$`)).map((r) => r.body.digits).join(""));
  };
  return {
    id: "telnyx",
    start: async () => (fake = await FakeTelnyx.start()),
    keys: () => ({ telnyx: { apiKey: API_KEY, connectionId: CONNECTION_ID, publicKey: fake.publicKey } }),
    async answer(id) {
      await fake.webhook(webhookUrl, event("call.answered", id));
      return streamAfter(id, "streaming_start");
    },
    async ringIn(from) {
      const id = fake.newCallId();
      fake.alive.set(id, true);
      await fake.webhook(webhookUrl, event("call.initiated", id, { direction: "incoming", from }));
      const action = await waitFor(() => fake.made("POST", new RegExp(`/calls/${id}/actions/(answer|reject)$`))[0], "answer or reject");
      return { id, leg: action.path.endsWith("answer") ? await streamAfter(id, "answer") : undefined };
    },
    async report(id, how) {
      await fake.webhook(webhookUrl, event("call.hangup", id, { hangup_cause: causes[how], hangup_source: "callee" }));
    },
    hungUp: async (id) => fake.made("POST", new RegExp(`/calls/${id}/actions/hangup$`)).length > 0,
    gone: (id) => void fake.alive.set(id, false),
  };
}

function plivoKit(): Kit {
  let fake: FakePlivo;
  let seq = 0;
  /** CallUUID by request_uuid, once answered. */
  const uuids = new Map<string, string>();
  const uuidOf = (id: string) => uuids.get(id) ?? id;
  const newUuid = () => `c0ffee00-0000-4000-8000-${(seq += 1).toString(16).padStart(12, "0")}`;
  const statuses: Record<Ending, string> = { "callee-hangup": "completed", busy: "busy", "no-answer": "no-answer", failed: "failed" };
  const connect = async (body: string, callUuid: string) => {
    const target = plivoStreamOf(body)!;
    const stream = await MediaStreamClient.connect(target.url, { callSid: callUuid, token: target.headers }, PLIVO);
    return streamLeg(stream, () => fake.made("POST", new RegExp(`/Call/${callUuid}/DTMF/$`)).map((r) => r.body.digits).join(""));
  };
  return {
    id: "plivo",
    start: async () => (fake = await FakePlivo.start()),
    keys: () => ({ plivo: { authId: AUTH_ID, authToken: PLIVO_TOKEN } }),
    async answer(requestUuid) {
      const callUuid = newUuid();
      uuids.set(requestUuid, callUuid);
      fake.calls.set(callUuid, "live");
      fake.calls.set(requestUuid, "ended");
      const reply = await fake.webhook(`${webhookUrl}?type=answer`, { CallUUID: callUuid, RequestUUID: requestUuid, Direction: "outbound", From: OURS, To: CALLER, CallStatus: "in-progress" });
      return connect(reply.body, callUuid);
    },
    async ringIn(from) {
      const callUuid = newUuid();
      fake.calls.set(callUuid, "live");
      const reply = await fake.webhook(`${webhookUrl}?type=answer`, { CallUUID: callUuid, Direction: "inbound", From: from, To: OURS, CallStatus: "ringing" });
      return { id: callUuid, leg: reply.body.includes("<Stream") ? await connect(reply.body, callUuid) : undefined };
    },
    async report(id, how) {
      await fake.webhook(`${webhookUrl}?type=hangup`, { CallUUID: uuidOf(id), RequestUUID: id, Direction: "outbound", CallStatus: statuses[how], HangupSource: "Callee" });
    },
    hungUp: async (id) => fake.made("DELETE", new RegExp(`/(Call/${uuidOf(id)}|Request/${id})/$`)).length > 0,
    gone: (id) => {
      fake.calls.set(id, "ended");
      fake.calls.set(uuidOf(id), "ended");
    },
  };
}

/** The mock carrier: its scripting API is the far end; words are exact, there is no audio. */
function mockKit(): Kit {
  const carrier = () => mock!;
  const leg = (id: string): Leg => ({
    heard: async () => carrier().spokenTo(id).join(" "),
    hearsUsSince: () => carrier().spokenTo(id).length > 0,
    firstHeardAfter: () => undefined,
    async say(text) {
      const onset = performance.now();
      carrier().simulateSpeechStart(id);
      await new Promise((r) => setTimeout(r, 300));
      carrier().simulateSpeech(id, text);
      carrier().simulateSpeechEnd(id);
      return onset;
    },
    play: async () => undefined,
    cutAfter(onset) {
      const cut = carrier().cutsOf(id).find((t) => t >= onset);
      return cut === undefined ? undefined : cut - onset;
    },
    press: (key) => carrier().simulateDtmf(id, key),
    keysGot: () => carrier().dtmfSentTo(id).join(""),
    close: () => undefined,
  });
  const ended: Record<Exclude<Ending, "callee-hangup">, string> = { busy: "the line is busy", "no-answer": "nobody answered", failed: "the call failed" };
  return {
    id: "mock",
    start: async () => ({ baseUrl: "", close: async () => undefined }),
    // Outbound calls ring 400 ms, then answer; each character takes 15 ms to say (so there is time to cut in).
    keys: () => ({ mock: { ringMs: 400, speakMsPerChar: 15, replies: [] } }),
    answer: async (id) => leg(id),
    async ringIn(from) {
      const id = carrier().simulateInbound(from, OURS);
      // Taken: the greeting starts; refused: the mock reports the call ended.
      for (let i = 0; i < 500; i += 1) {
        if (carrier().spokenTo(id).length > 0) return { id, leg: leg(id) };
        if ((await carrier().getCallStatus(id)).status === "ended") return { id };
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error("the mock call was neither answered nor refused");
    },
    async report(id, how) {
      if (how === "callee-hangup") carrier().simulateHangup(id);
      else carrier().simulateEnd(id, how, ended[how]);
    },
    hungUp: async (id) => {
      const status = await carrier().getCallStatus(id);
      return status.status === "ended" && status.state === "hangup-bot";
    },
    // A new mock carrier (the restarted service's) knows its calls died with the old process.
    gone: () => undefined,
  };
}

/**
 * The lab's Asterisk: a sipp phone is the far end (signalling), with our own
 * ear and mouth on its audio port (PhoneAudio): it hears, speaks and presses
 * keys as RFC 4733 events. Inbound callers assert their number (the lab
 * trusts P-Asserted-Identity from its test caller).
 */
function asteriskKit(): Kit {
  let lab: Lab;
  let mediaPort = 16300;
  let sipPort = 15300;
  let callee: { ear: PhoneAudio; done: Promise<{ code: number | null; output: string }>; child: { kill(): void; exitCode: number | null } } | undefined;
  const phoneLeg = (ear: PhoneAudio): Leg => ({
    heard: () => transcribePcm(ear.audio(), 8000),
    hearsUsSince: (since) => ear.firstLoud(since) !== undefined,
    firstHeardAfter: (since) => ear.firstLoud(since),
    async say(text) {
      const onset = await ear.say(await fliteSpeech(text));
      await ear.say(new Int16Array(8000 * 1.2));
      return onset;
    },
    async play(pcm) {
      // A phone talks back once Asterisk's audio has told it where to (right after the answer).
      await waitFor(() => ear.packets > 0 || undefined, "audio from Asterisk", 5000);
      await ear.say(pcm);
    },
    cutAfter(onset) {
      const last = ear.lastLoud(onset - 200);
      return last === undefined ? undefined : last - onset;
    },
    press: (key) => void ear.press(key),
    keysGot: () => ear.dtmf(),
    close: () => ear.close(),
  });
  const statuses = { busy: 486, failed: 503 } as const;
  return {
    id: "asterisk",
    unavailable: labUnavailableReason(),
    async start() {
      lab = await Lab.start({ onProgress: (l) => console.log(`[lab] ${l}`), waitForLabMs: 600_000 });
      return { baseUrl: "", close: () => lab.stop() };
    },
    keys: () => ({
      asterisk: { ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: lab.info.ariApp }, dialTemplate: "PJSIP/{to}@lab-uas" },
      ringTimeoutMs: 4000,
    }),
    async prepare(next, holdMs = 4000) {
      if (callee && callee.child.exitCode === null) {
        // The last call's BYE completes a moment after endCall returns: let that callee finish, then make room.
        await Promise.race([callee.done, new Promise((r) => setTimeout(r, 3000))]);
        callee.child.kill();
        await callee.done;
      }
      callee?.ear.close();
      // Each ear its own port: a callee that refuses keeps its ear open until the next one.
      const port = mediaPort++;
      const ear = await PhoneAudio.open(port);
      const scenario =
        next === "answer" || next === "hangs-up"
          ? calleeScenario({ ringMs: 300, mediaPort: port, holdMs: next === "hangs-up" ? holdMs : undefined })
          : next === "no-answer"
            ? calleeScenario({ ringMs: 10_000, mediaPort: port })
            : calleeScenario({ ringMs: 200, status: statuses[next] });
      const sipp = runSipp(lab, "conformance-callee", scenario, ["-p", String(lab.info.uasPort), "-i", "127.0.0.1"], 30);
      callee = { ear, done: sipp.done, child: sipp.child as never };
      await new Promise((r) => setTimeout(r, 300));
    },
    answer: async () => phoneLeg(callee!.ear),
    async ringIn(from) {
      const ear = await PhoneAudio.open(mediaPort);
      const phone = runSipp(lab, `conformance-caller-${sipPort}`, callerScenario({ extension: "100", holdMs: "wait", mediaPort: mediaPort++, from }), [
        "-s", "100", "-p", String(sipPort++), "-i", "127.0.0.1", `127.0.0.1:${lab.info.sipPort}`,
      ], 30);
      const since = performance.now();
      // Taken: the greeting reaches the phone; refused: the phone's call ends.
      const outcome = await Promise.race([
        waitFor(() => ear.firstLoud(since), "the greeting at the phone", 15_000).then(() => "taken" as const),
        phone.done.then(() => "refused" as const),
      ]);
      const calls = () => service().runtime.manager.listCalls();
      const call = await waitFor(() => calls().find((c) => c.direction === "inbound" && c.from === from && !seenInbound.has(c.callId)), "the inbound call");
      seenInbound.add(call.callId);
      if (outcome === "refused") ear.close();
      return { id: call.providerCallId!, leg: outcome === "taken" ? phoneLeg(ear) : undefined };
    },
    async report(_id, how) {
      // The far end was set up by prepare(): a callee hanging up does so on its own.
      if (how === "callee-hangup") await callee!.done;
    },
    hungUp: async () => (await callee!.done).code === 0,
    gone: () => undefined,
  };
}

/** Inbound calls already handed to a test (the lab kit finds its call by caller and newness). */
const seenInbound = new Set<string>();
let currentService: RunningService | undefined;
const service = () => currentService!;

const KITS = { mock: mockKit, twilio: twilioKit, telnyx: telnyxKit, plivo: plivoKit, asterisk: asteriskKit };

/** The suite on the carriers named (two files run it: the cloud carriers and the PBX, side by side). */
export function carrierSuite(ids: Array<keyof typeof KITS>): void {
describe.each(ids.map((id) => KITS[id]()))("carrier conformance: $id", (kit) => {
  if (kit.unavailable) {
    it.skip(`${kit.id} cannot run here: ${kit.unavailable}`, () => undefined);
    return;
  }
  let api: { baseUrl: string; close(): Promise<void> };
  let service: RunningService;
  let manager: CallManager;

  const config = (port: number, extra: Record<string, unknown> = {}) =>
    makeConfig({
      provider: kit.id,
      fromNumber: OURS,
      ...kit.keys(),
      publicUrl: `http://127.0.0.1:${port}/voice/webhook`,
      serve: { port, bind: "127.0.0.1" },
      inboundPolicy: "allowlist",
      allowFrom: [CALLER],
      inboundGreeting: "Hello, you reached the test line.",
      dtmfInterDigitTimeoutMs: 500,
      // Answering-machine detection only on calls that ask for it (amd: true); a machine gets our message after its beep.
      // Ours on every carrier (detector "bus"): Twilio's own detection is tested in twilio.test.ts.
      outbound: { defaultMode: "conversation", amd: { onMachine: "message", detector: "bus" } },
      ...extra,
    }, tempDir());

  beforeAll(async () => {
    api = await kit.start();
    const port = await freePort();
    webhookUrl = `http://127.0.0.1:${port}/voice/webhook`;
    service = await startService(config(port), createLogger("silent"), { apiBaseUrls: { [kit.id]: api.baseUrl } });
    manager = service.runtime.manager;
    currentService = service;
    mock = service.runtime.providers.get("mock") as MockProvider | undefined;
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await api?.close();
  });

  const said = (callId: string, line: string) => saidAndListening(manager, callId, line);

  async function outbound(message: string, extra: { dtmfSequence?: string; record?: boolean; amd?: boolean } = {}, far: "answer" | "hangs-up" = "answer") {
    await kit.prepare?.(far);
    const { callId } = await manager.initiateCall({ to: CALLER, message, mode: "conversation", ...extra });
    const id = manager.getCall(callId)!.providerCallId!;
    expect(manager.getCall(callId)!.answeredAt).toBeUndefined();
    const leg = await kit.answer(id);
    await said(callId, message);
    return { callId, id, leg };
  }

  it("outbound: answered once media flows; our message reaches the far end and is understood", async () => {
    const { callId, leg } = await outbound("Hello, this is a test call.");
    expect(wordErrorRate("hello this is a test call", await leg.heard())).toBeLessThanOrEqual(0.35);
    if (leg.wire) {
      // Streamed: 20 ms media messages paced in real time (not a burst), with markers.
      const media = leg.wire.media();
      expect(media.length).toBeGreaterThan(40);
      expect(media.at(-1)!.at - media[0]!.at).toBeGreaterThan((media.length - 1) * 20 * 0.8);
      expect(leg.wire.marked()).toBe(true);
    }
    expect(manager.getCall(callId)!.answeredAt).toBeDefined();
    await manager.endCall(callId);
    leg.close();
  }, 30_000);

  it("listens and takes barge-in: the caller's sentence answers continue_call; talking over us cuts our audio within 300 ms", async () => {
    const { callId, leg } = await outbound("Hi there.");
    const answer = manager.continueCall(callId, "What time should I call back?");
    await said(callId, "What time should I call back?");
    await leg.say("Please call me back tomorrow morning.");
    expect(wordErrorRate("please call me back tomorrow morning", (await answer).transcript)).toBeLessThanOrEqual(0.35);

    const asked = performance.now();
    const speaking = manager.speak(callId, "Our opening hours are from nine in the morning to five in the afternoon, Monday to Friday, and ten to two on Saturdays.");
    await waitFor(() => leg.hearsUsSince(asked) || undefined, "our audio at the far end", 10_000);
    await new Promise((r) => setTimeout(r, 800));
    const onset = await leg.say("Wait, stop please.");
    await speaking;
    const cut = leg.cutAfter(onset);
    expect(cut, "our audio cut off").toBeDefined();
    expect(cut!).toBeLessThan(300);
    // How long our message played before the cut: about as long as the far end heard it (800 ms and the cut's delay).
    const played = manager.getCall(callId)!.transcript.find((l) => l.kind === "interrupted")?.playedMs;
    const heardFor = onset - asked;
    expect(played, "the interrupted line's playedMs").toBeGreaterThan(heardFor - 600);
    expect(played!).toBeLessThan(heardFor + 600);
    await manager.endCall(callId);
    leg.close();
  }, 60_000);

  it("keys both ways: pressed keys form one answer of the expected count; our keys reach the far end", async () => {
    const { callId, leg } = await outbound("Hi.");
    const code = manager.continueCall(callId, "Enter your code.", { digits: 4 });
    await said(callId, "Enter your code.");
    for (const key of "2468") leg.press(key);
    expect((await code).transcript).toBe("[DTMF 2468]");
    await manager.sendDtmf(callId, "42#");
    await waitFor(() => leg.keysGot() === "42#" || undefined, "keys at the far end", 5000);
    await manager.endCall(callId);
    leg.close();
  }, 30_000);

  it("dtmfSequence: the keys go out once the call connects", async () => {
    const { callId, leg } = await outbound("Connecting you now.", { dtmfSequence: "1w9#" });
    // Tone listeners see no pause character.
    await waitFor(() => ["1w9#", "19#"].includes(leg.keysGot()) || undefined, "the sequence at the far end", 5000);
    await manager.endCall(callId);
    leg.close();
  }, 30_000);

  it("hang-up both ways: ours reaches the carrier (hangup-bot); the callee's is reported (hangup-user)", async () => {
    const ours = await outbound("Goodbye soon.");
    await manager.endCall(ours.callId);
    expect(manager.getCall(ours.callId)!.state).toBe("hangup-bot");
    expect(await kit.hungUp(ours.id)).toBe(true);
    ours.leg.close();

    const theirs = await outbound("Still there?", {}, "hangs-up");
    await kit.report(theirs.id, "callee-hangup");
    await waitFor(() => manager.getCall(theirs.callId)!.state === "hangup-user" || undefined, "hangup-user");
    theirs.leg.close();
  }, 30_000);

  it("inbound: an allowed caller is answered and greeted; a stranger is refused", async () => {
    const { id, leg } = await kit.ringIn(CALLER);
    expect(leg).toBeDefined();
    const call = await waitFor(() => manager.listCalls().find((c) => c.providerCallId === id && c.state === "listening"), "greeted", 15_000);
    expect(call).toMatchObject({ direction: "inbound", from: CALLER });
    expect(manager.getCall(call.callId)!.transcript[0]).toMatchObject({ speaker: "bot", text: "Hello, you reached the test line." });
    await manager.endCall(call.callId);
    leg!.close();

    const stranger = await kit.ringIn(STRANGER);
    expect(stranger.leg).toBeUndefined();
    await waitFor(() => manager.listCalls().find((c) => c.providerCallId === stranger.id)?.endReason?.includes("allowFrom") || undefined, "refused");
  }, 30_000);

  it.each([["busy", "busy"], ["no-answer", "no-answer"], ["failed", "failed"]] as const)("an unanswered call the carrier reports %s ends %s", async (how, state) => {
    await kit.prepare?.(how);
    const { callId } = await manager.initiateCall({ to: CALLER, message: "hi" });
    await kit.report(manager.getCall(callId)!.providerCallId!, how);
    await waitFor(() => manager.getCall(callId)!.state === state || undefined, state, 10_000);
  }, 20_000);

  it.runIf(kit.id !== "mock")("recording: a call placed with record: true is a stereo WAV beside the call log, the far end's words on the left and ours on the right", async () => {
    const { callId, leg } = await outbound("This call is recorded for the test.", { record: true });
    await leg.say("Please call me back tomorrow morning.");
    await manager.endCall(callId);
    leg.close();
    const recording = await waitFor(() => {
      const r = manager.getCall(callId)!.recording;
      return r?.durationMs !== undefined ? r : undefined;
    }, "the recording closed", 10_000);
    expect(recording).toMatchObject({ channels: "stereo", sampleRate: 8000 });
    expect(recording.path.startsWith(service.runtime.storeDir)).toBe(true);
    const wav = readWav(readFileSync(recording.path));
    expect(wav.channels).toHaveLength(2);
    expect(recording.durationMs).toBeCloseTo((wav.channels[0]!.length / 8000) * 1000, -1);
    const [theirs, ours] = await Promise.all(wav.channels.map((pcm) => transcribePcm(pcm, 8000)));
    expect(wordErrorRate("please call me back tomorrow morning", theirs!), `left: ${theirs}`).toBeLessThanOrEqual(0.35);
    expect(wordErrorRate("this call is recorded for the test", ours!), `right: ${ours}`).toBeLessThanOrEqual(0.35);
  }, 60_000);

  it.runIf(kit.id !== "mock")("answering machines: a person answering at length is human and hears the message once they stop; a voicemail greeting is a machine, and the message comes after its beep, then we hang up", async () => {
    const set = await amdSet();
    // Told by its words while the person talks on; a short "hello?" and its pause: test/amd.test.ts and the bench.
    const human = set.find((g) => g.voice === "rms" && g.text.startsWith("Good afternoon, Smith and Partners"))!;
    // A short greeting with a beep after it.
    const machine = set.find((g) => g.voice === "rms" && g.text === "Leave a message." && g.beepHz)!;

    await kit.prepare?.("answer");
    const person = await manager.initiateCall({ to: CALLER, message: "Hello, this is a test call.", mode: "conversation", amd: true });
    const personLeg = await kit.answer(manager.getCall(person.callId)!.providerCallId!);
    const answering = performance.now();
    // The sample ends with 4 s of quiet: the person stops talking 4 s before its end.
    await personLeg.play(human.pcm.subarray(0, human.pcm.length - 8000 * 3));
    const answerEnd = answering + (human.pcm.length / 8000 - 4) * 1000;
    await said(person.callId, "Hello, this is a test call.");
    expect(manager.getCall(person.callId)!.amd).toMatchObject({ outcome: "human", reason: expect.stringMatching(/^a person's words/), talking: true });
    expect(personLeg.firstHeardAfter(answering)).toBeGreaterThan(answerEnd);
    const heardByPerson = await personLeg.heard();
    expect(wordErrorRate("hello this is a test call", heardByPerson), heardByPerson).toBeLessThanOrEqual(0.35);
    await manager.endCall(person.callId);
    personLeg.close();

    await kit.prepare?.("answer");
    const box = await manager.initiateCall({ to: CALLER, message: "Please call me back tomorrow morning.", mode: "conversation", amd: true });
    const boxLeg = await kit.answer(manager.getCall(box.callId)!.providerCallId!);
    const playing = performance.now();
    await boxLeg.play(machine.pcm.subarray(0, machine.pcm.length - 8000 * 2));
    const greetingEnd = playing + ((machine.pcm.length - 8000 * 3) / 8000) * 1000;
    const ended = await waitFor(() => {
      const c = manager.getCall(box.callId)!;
      return c.endedAt ? c : undefined;
    }, "the machine's call ended", 30_000);
    expect(ended).toMatchObject({ state: "hangup-bot", endReason: "message left on an answering machine", amd: { outcome: "machine" } });
    // Nothing of ours before the greeting and its beep were over; then the message, understood.
    expect(boxLeg.firstHeardAfter(playing)).toBeGreaterThan(greetingEnd - 300);
    const heardByBox = await boxLeg.heard();
    expect(wordErrorRate("please call me back tomorrow morning", heardByBox), heardByBox).toBeLessThanOrEqual(0.35);
    expect(ended.transcript.find((l) => l.kind === "amd")?.text).toMatch(/^answered by a machine: /);
    boxLeg.close();
  }, 90_000);

  // A blind transfer where the carrier has one (the cloud carriers' transfers are not built yet).
  it.runIf(kit.id === "mock" || kit.id === "asterisk")("transfer (blind): a person who is busy leaves the caller with us; one who answers gets the caller (they hear them) and the call ends transferred", async () => {
    const { id, leg } = await kit.ringIn(CALLER);
    const call = await waitFor(() => manager.listCalls().find((c) => c.providerCallId === id && c.state === "listening"), "greeted", 15_000);
    if (kit.id === "mock") {
      // The Mock's person answers as mock.transferOutcome says (connected by default).
      const done = await manager.transferCall(call.callId, { to: "201" });
      expect(done).toMatchObject({ transferred: true, outcome: "connected", to: "201", mode: "blind", state: "transferred" });
      expect(mock!.transfersOf(id)).toEqual(["201"]);
      expect(manager.getCall(call.callId)!.transcript.at(-1)).toMatchObject({ kind: "transfer", text: "transfer to 201: connected" });
      return;
    }
    await kit.prepare?.("busy");
    const busy = await manager.transferCall(call.callId, { to: "201" });
    expect(busy).toMatchObject({ transferred: false, outcome: "busy", to: "201", mode: "blind", state: "listening" });
    // The person answers, and hangs up 10 s later: the caller is hung up with them.
    await kit.prepare?.("hangs-up", 10_000);
    const person = await kit.answer("");
    const done = await manager.transferCall(call.callId, { to: "202", message: "Putting you through now." });
    expect(done).toMatchObject({ transferred: true, outcome: "connected", state: "transferred" });
    const record = manager.getCall(call.callId)!;
    expect(record.transfers?.map((t) => [t.to, t.outcome])).toEqual([["201", "busy"], ["202", "connected"]]);
    expect(record.transcript.filter((l) => l.kind === "transfer").map((l) => l.text)).toEqual([expect.stringMatching(/^transfer to 201: busy/), "transfer to 202: connected"]);
    expect(record.transcript.some((l) => l.text === "Putting you through now.")).toBe(true);
    await leg!.say("Hello, I would like to speak with a person please.");
    expect(wordErrorRate("hello i would like to speak with a person please", await person.heard())).toBeLessThanOrEqual(0.35);
    // The person hangs up: the caller's side goes too (Asterisk no longer has the channel).
    const asterisk = service.runtime.providers.get("asterisk")!;
    await waitFor(async () => ((await asterisk.getCallStatus(id)).status === "ended" ? true : undefined), "the caller hung up with the person", 20_000);
    leg!.close();
  }, 90_000);

  it.runIf(kit.id === "asterisk")("recording after a blind transfer: the PBX records the caller and the person once we leave, into a second WAV beside the first", async () => {
    // An inbound call (the lab's answering phone is the person), recorded as every call is with recording.enabled.
    const recording0 = service.runtime.config.recording.enabled;
    service.runtime.config.recording.enabled = true;
    let ringing: Awaited<ReturnType<Kit["ringIn"]>>;
    try {
      ringing = await kit.ringIn(CALLER);
    } finally {
      service.runtime.config.recording.enabled = recording0;
    }
    const leg = ringing.leg!;
    const { callId } = await waitFor(() => manager.listCalls().find((c) => c.providerCallId === ringing.id && c.state === "listening"), "greeted", 15_000);
    await kit.prepare?.("hangs-up", 8000);
    const transfer = manager.transferCall(callId, { to: "202" });
    const person = await kit.answer("");
    expect(await transfer).toMatchObject({ transferred: true, outcome: "connected", state: "transferred" });
    await leg.say("Hello, I would like to speak with a person please.");
    expect(wordErrorRate("hello i would like to speak with a person please", await person.heard())).toBeLessThanOrEqual(0.35);
    // The person hangs up: the bridge goes, and its recording comes from Asterisk's spool.
    const after = await waitFor(() => manager.getCall(callId)!.recording?.afterTransfer, "the transferred call's recording", 30_000);
    expect(after.failed, after.failed).toBeUndefined();
    const recording = manager.getCall(callId)!.recording!;
    expect(after.path).toBe(`${recording.path.slice(0, -".wav".length)}.transferred.wav`);
    const wav = readWav(readFileSync(after.path));
    expect(after.durationMs).toBeCloseTo((wav.channels[0]!.length / wav.sampleRate) * 1000, -1);
    const words = await transcribePcm(wav.channels[0]!, wav.sampleRate === 16000 ? 16000 : 8000);
    expect(wordErrorRate("hello i would like to speak with a person please", words), words).toBeLessThanOrEqual(0.5);
    leg.close();
  }, 90_000);

  it.runIf(kit.id === "asterisk")("warm transfer: the caller holds while the person hears the briefing alone; 2 declines and the caller stays with us; 1 accepts and the person gets the caller", async () => {
    const { id, leg } = await kit.ringIn(CALLER);
    const call = await waitFor(() => manager.listCalls().find((c) => c.providerCallId === id && c.state === "listening"), "greeted", 15_000);
    const briefing = "Hello, this is a test call.";
    for (const key of ["2", "1"]) {
      await kit.prepare?.("hangs-up", 20_000);
      const transfer = manager.transferCall(call.callId, { to: "203", mode: "warm", message: briefing });
      const person = await kit.answer("");
      // The person answers "hello?", hears the briefing (and how to answer it), and presses a key.
      await person.play((await amdSet(1)).find((g) => g.label === "human")!.pcm.subarray(0, 8000 * 1.5));
      await waitFor(() => person.hearsUsSince(0) || undefined, "the briefing at the person's phone", 15_000);
      await waitFor(async () => (/press/.test(await person.heard()) ? true : undefined), "the briefing's question", 20_000);
      // The rest of it ("to take the call, or two to decline") plays out before the key.
      await new Promise((r) => setTimeout(r, 3000));
      const briefed = await person.heard();
      expect(wordErrorRate("hello this is a test call press one to take the call or two to decline", briefed), briefed).toBeLessThanOrEqual(0.35);
      person.press(key);
      const result = await transfer;
      if (key === "2") {
        expect(result).toMatchObject({ transferred: false, mode: "warm", outcome: "declined", reason: "the person pressed 2", state: "listening" });
        // The caller heard the hold chime meanwhile, and nothing of the briefing.
        expect(await leg!.heard()).not.toMatch(/press|decline/);
        continue;
      }
      expect(result).toMatchObject({ transferred: true, mode: "warm", outcome: "connected", state: "transferred" });
      await leg!.say("Hello, I would like to speak with a person please.");
      const heard = await person.heard();
      expect(wordErrorRate("hello this is a test call press one to take the call or two to decline hello i would like to speak with a person please", heard), heard).toBeLessThanOrEqual(0.35);
    }
    expect(manager.getCall(call.callId)!.transfers?.map((t) => [t.mode, t.outcome])).toEqual([["warm", "declined"], ["warm", "connected"]]);
    leg!.close();
  }, 120_000);

  // Realtime voice on each carrier's stream (the PBX's: test/realtime-pbx.test.ts): a service of its own with a model on the line.
  it.runIf(["twilio", "telnyx", "plivo"].includes(kit.id))("realtime: the model's greeting and answer reach the far end, the caller's words reach the model; a cut-in truncates at what went out; keys both ways keep the call up", async () => {
    const model = await FakeRealtimeVoice.start();
    const port = await freePort();
    const ownUrl = webhookUrl;
    webhookUrl = `http://127.0.0.1:${port}/voice/webhook`;
    const realtime = await startService(config(port, { realtime: { enabled: true, providers: { openai: { apiKey: GOOD_KEY, baseUrl: model.baseUrl } } } }), createLogger("silent"), { apiBaseUrls: { [kit.id]: api.baseUrl } });
    const calls = realtime.runtime.manager;
    try {
      model.answer = (cause) => ("instructions" in cause && cause.instructions ? { say: cause.instructions.slice(cause.instructions.lastIndexOf(": ") + 2) } : undefined);
      const { callId } = await calls.initiateCall({ to: CALLER, message: "Hello from the model.", mode: "conversation" });
      const leg = await kit.answer(calls.getCall(callId)!.providerCallId!);
      await saidAndListening(calls, callId, "Hello from the model.");
      const session = model.sessions.at(-1)!;
      expect(session.updates[0]).toMatchObject({ audio: { input: { format: { type: "audio/pcmu" } } } });

      model.script = ["I would like to book a table", "tell me everything", "wait"];
      model.answer = (cause) => ("heard" in cause ? (cause.heard === "wait" ? undefined : { say: cause.heard === "tell me everything" ? "Here is a long answer. It has many sentences in it. It goes on for quite a while." : "Of course. For how many people?" }) : undefined);
      const asked = performance.now();
      await leg.say("I would like to book a table.");
      await waitFor(() => calls.getCall(callId)!.transcript.find((l) => l.origin === "model" && l.text === "Of course. For how many people?"), "the model's answer", 15_000);
      await waitFor(() => leg.hearsUsSince(asked + 1500) || undefined, "the answer at the far end", 10_000);
      expect(session.audioInBytes).toBeGreaterThan(8000);

      // The answer has played out (nothing sent for 400 ms) before the caller asks for more.
      await waitFor(() => (performance.now() - (leg.wire!.media().at(-1)?.at ?? 0) > 400 ? true : undefined), "the answer played out", 10_000);
      const told = await leg.say("Tell me everything.");
      await waitFor(() => leg.hearsUsSince(told) || undefined, "the long answer at the far end", 10_000);
      await new Promise((r) => setTimeout(r, 800));
      const onset = await leg.say("Wait.");
      const truncate = await waitFor(() => session.truncates[0], "the truncate", 5000);
      expect(session.spoken.find((s) => s.itemId === truncate.item_id)?.text).toContain("long answer");
      // What went out of the long answer before the cut (media messages are 20 ms each) is where the model's item was cut.
      const sentOfIt = leg.wire!.media().filter((m) => m.at > told).length * 20;
      expect(Math.abs(truncate.audio_end_ms - sentOfIt)).toBeLessThanOrEqual(100);
      expect(leg.wire!.media().filter((m) => m.at > onset + 300).length).toBe(0);

      leg.press("5");
      await calls.sendDtmf(callId, "42#");
      await waitFor(() => leg.keysGot() === "42#" || undefined, "keys at the far end", 5000);
      // The key pressed is an answer once dtmfInterDigitTimeoutMs (500 ms here) passes without another.
      await waitFor(() => calls.getCall(callId)!.transcript.find((l) => l.kind === "dtmf" && l.text === "5"), "the key pressed recorded", 5000);
      expect(calls.getCall(callId)!.state).toBe("listening");
      await calls.endCall(callId);
      leg.close();
    } finally {
      await realtime.close();
      await model.close();
      webhookUrl = ownUrl;
    }
  }, 90_000);

  it("restore: after a restart the carrier is asked; a call it no longer has ends and frees its slot", async () => {
    const port = await freePort();
    const cfg = config(port, { maxConcurrentCalls: 1 });
    const deps = { apiBaseUrls: { [kit.id]: api.baseUrl } };
    const first = await startService(cfg, createLogger("silent"), deps);
    await kit.prepare?.("answer");
    const { callId } = await first.runtime.manager.initiateCall({ to: CALLER, message: "Hi" });
    const id = first.runtime.manager.getCall(callId)!.providerCallId!;
    await first.close();
    kit.gone(id);
    const second = await startService(cfg, createLogger("silent"), deps);
    try {
      expect(second.runtime.manager.getCall(callId)).toMatchObject({ state: "completed" });
      await expect(second.runtime.manager.initiateCall({ to: CALLER, message: "Hi" })).resolves.toMatchObject({ provider: kit.id });
    } finally {
      await second.close();
    }
  }, 30_000);
});
}
