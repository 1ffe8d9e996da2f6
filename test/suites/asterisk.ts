/**
 * The Asterisk provider against a real Asterisk 22 (the PBX lab) with sipp
 * as the phone. One suite, run once per lab back-end by its own test file
 * (asterisk-chroot.test.ts, asterisk-container.test.ts), each on its own lab
 * slot so the two run side by side. A back-end that cannot run here is
 * skipped, saying why.
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runSetup } from "../../src/setup.js";
import { concatPcm } from "../../src/audio/frame.js";
import { encodeG711 } from "../../src/audio/g711.js";
import { toneRatio } from "../../src/audio/goertzel.js";
import type { CallView } from "../../src/calls/types.js";
import { Lab, labUnavailableReason, type LabBackend } from "../../src/lab/lab.js";
import { createLogger } from "../../src/log.js";
import type { AsteriskProvider } from "../../src/providers/asterisk/provider.js";
import { ARI_OPERATIONS } from "../../src/providers/asterisk/ari.js";
import { createRuntime, type VoiceCallRuntime } from "../../src/runtime.js";
import { FliteSynthesizer } from "../../src/speech/flite.js";
import { transcribePcm } from "../../src/speech/pocketsphinx.js";
import { synthesizeAll } from "../../src/speech/types.js";
import { readWavPcm16 } from "../../src/speech/wav.js";
import { wordErrorRate } from "../../src/speech/wer.js";
import { freePort, makeConfig, tempDir, waitFor } from "../helpers.js";
import { ACCOUNT_SID as TWILIO_ACCOUNT, AUTH_TOKEN as TWILIO_TOKEN, FakeTwilio, MediaStreamClient, streamOf } from "../fakes/twilio.js";
import { startService } from "../../src/server/service.js";
import { VoiceCallClient } from "../../src/server/client.js";
import { PhoneAudio } from "../../src/lab/phone-audio.js";
import { labAnswer } from "../../src/lab/phone.js";
import { FakeVendors } from "../fakes/vendors.js";
import { callerScenario, calleeScenario, runSipp } from "../../src/lab/sipp.js";


/** What a phone heard, as words: its recording through the offline recogniser. */
const transcribe = (audio: Int16Array) => transcribePcm(audio, 8000);
/** flite speech at 8 kHz, as one buffer (what the phone says). */
const fliteSpeech = (text: string) => synthesizeAll(new FliteSynthesizer(), text, 8000);

/** The suite on one back-end, on lab slot `slot` (its ports, and the phones' ports below, its own). */
export function asteriskSuite(backend: LabBackend, slot: number): void {
const unavailable = labUnavailableReason(backend);
if (unavailable) console.warn(`skipping the PBX tests on the ${backend} lab: ${unavailable}`);
describe.skipIf(unavailable !== undefined)(`Asterisk provider on a real Asterisk 22 (${backend} lab)`, () => {
  let lab: Lab;
  let rt: VoiceCallRuntime;
  let ast: AsteriskProvider;
  // The phones' SIP, RTP and sipp media ports: a range per slot, so suites on two slots never meet.
  let sipPort = 15080 + 2000 * slot;
  let mediaPort = 16100 + 2000 * slot;
  let sippMediaPort = 20000 + 2000 * slot;

  const calls = (): CallView[] => rt.manager.listCalls().map((c) => rt.manager.getCall(c.callId)!);
  const newInbound = async (known: Set<string>) =>
    waitFor(() => calls().find((c) => c.direction === "inbound" && !known.has(c.callId)), "an inbound call", 10_000);
  const stateOf = (callId: string) => rt.manager.getCall(callId)?.state;
  const dial = (scenario: string, extension: string) =>
    runSipp(lab, `call-${sipPort}`, scenario, ["-s", extension, "-p", String(sipPort++), "-mp", String((sippMediaPort += 4)), "-i", "127.0.0.1", `127.0.0.1:${lab.info.sipPort}`]);

  let vendors: FakeVendors;

  /** A phone (with our ear and mouth on it) dials `extension` and stays; resolves once it has been greeted. */
  const greetedCaller = async (extension: string) => {
    const known = new Set(calls().map((c) => c.callId));
    const ear = await PhoneAudio.open(mediaPort);
    const phone = dial(callerScenario({ extension, holdMs: "wait", mediaPort: mediaPort++ }), extension);
    const call = await newInbound(known);
    await waitFor(() => stateOf(call.callId) === "listening", "greeting played");
    return { ear, phone, call };
  };

  /** A second service on the lab, on ARI app `app` (the suite's runtime never sees its calls), conversation calls out. */
  const serviceOfItsOwn = (app: string, asterisk: Record<string, unknown>) =>
    createRuntime(
      makeConfig(
        {
          provider: "asterisk",
          outbound: { defaultMode: "conversation" },
          asterisk: { ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app }, ...asterisk },
        },
        tempDir(),
      ),
      createLogger("warn"),
    );

  beforeAll(async () => {
    // Other test files use the lab too: wait for theirs to stop rather than fail.
    lab = await Lab.start({ backend, slot, onProgress: (l) => console.log(`[lab ${backend}] ${l}`), waitForLabMs: 600_000 });
    // Callers no test drives are answered by a response model (a local chat server), never hung up on.
    vendors = await FakeVendors.start();
    vendors.chatReply = () => '{"spoken": "I see."}';
    const pcm = new Int16Array(8000 * 2);
    for (let i = 0; i < pcm.length; i += 1) pcm[i] = Math.round(10000 * Math.sin((2 * Math.PI * 1000 * i) / 8000));
    writeFileSync(lab.hostPath("tmp/tone-1k.ulaw"), encodeG711("ulaw", pcm));
    const config = makeConfig(
      {
        provider: "asterisk",
        inboundPolicy: "open",
        inboundGreeting: "Hello from the lab",
        responseModel: "lab-model",
        responseBaseUrl: vendors.httpUrl,
        outbound: { defaultMode: "conversation" },
        asterisk: {
          ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: lab.info.ariApp },
          dialTemplate: "PJSIP/{to}@lab-uas",
        },
      },
      tempDir(),
    );
    // The product's own offline speech: flite speaks, pocketsphinx listens.
    rt = await createRuntime(config, createLogger("warn"));
    ast = rt.providers.get("asterisk") as AsteriskProvider;
  }, 900_000);

  afterAll(async () => {
    await rt?.stop();
    await vendors?.close();
    await lab?.stop();
  });

  it("setup's check: ARI answers with the configured credentials, and a wrong password is named", async () => {
    expect(await ast.check()).toEqual([{ check: "asterisk-ari", status: "ok", detail: expect.stringMatching(/^ARI at http:\/\/\S+ answers \(Asterisk 22\./) }]);
    const wrong = await runSetup(makeConfig({ provider: "asterisk", asterisk: { ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: "not-the-password", app: "setup-check" } } }), []);
    expect(wrong.findings.find((f) => f.check === "asterisk-ari")).toMatchObject({ status: "fail", detail: expect.stringContaining("HTTP 401"), fix: expect.stringContaining("asterisk.ari.password") });
    expect(JSON.stringify(wrong)).not.toContain("not-the-password");
  });

  it("uses only operations and parameters that this Asterisk's /ari/api-docs declare", async () => {
    const auth = lab.ariHeaders;
    const apis: Array<{ path: string; operations: Array<{ httpMethod: string; parameters?: Array<{ name: string }> }> }> = [];
    for (const resource of ["channels", "bridges", "recordings", "asterisk"]) {
      const res = await fetch(`${lab.info.ariUrl}/ari/api-docs/${resource}.json`, { headers: auth });
      apis.push(...((await res.json()) as { apis: typeof apis }).apis);
    }
    for (const [name, op] of Object.entries(ARI_OPERATIONS)) {
      const declared = apis.find((a) => a.path === op.path)?.operations.find((o) => o.httpMethod === op.method);
      expect(declared, `${name}: ${op.method} ${op.path}`).toBeDefined();
      const params = new Set(declared!.parameters?.map((p) => p.name));
      for (const q of op.query) expect(params.has(q), `${name}: parameter ${q}`).toBe(true);
    }
  });

  it("answers an inbound call: caller audio arrives as frames, DTMF in order, caller hang-up ends it", async () => {
    const known = new Set(calls().map((c) => c.callId));
    const phone = dial(callerScenario({ extension: "100", audioFile: "/tmp/tone-1k.ulaw", dtmf: "147", holdMs: 800 }), "100");
    const call = await newInbound(known);
    expect(call).toMatchObject({ from: "sipp", to: "100", provider: "asterisk" });
    await waitFor(() => ast.media(call.providerCallId!), "media");
    const heard: Int16Array[] = [];
    const reading = (async () => {
      for await (const frame of ast.media(call.providerCallId!)!.frames()) heard.push(frame.pcm);
    })();
    const { code, output } = await phone.done;
    expect(code, output).toBe(0);
    await waitFor(() => stateOf(call.callId) === "hangup-user", "caller hang-up");
    await reading;
    const audio = concatPcm(heard);
    // The 2 s tone the phone streamed: most of the energy at 1 kHz, none at 440 Hz.
    expect(audio.length).toBeGreaterThan(8000);
    let best = 0;
    for (let i = 0; i + 1600 <= audio.length; i += 1600) best = Math.max(best, toneRatio(audio.subarray(i, i + 1600), 8000, 1000));
    expect(best).toBeGreaterThan(0.4);
    const view = rt.manager.getCall(call.callId)!;
    // One answer: the keys in order, completed by the caller hanging up before the inter-digit pause.
    expect(view.transcript.filter((t) => t.kind === "dtmf").map((t) => t.text)).toEqual(["147"]);
    expect(view.transcript[0]).toMatchObject({ speaker: "bot", text: "Hello from the lab" });
  });

  it("hears what the caller says: a spoken sentence becomes the caller's transcript line", async () => {
    const sentence = "Please call me back tomorrow morning at nine.";
    writeFileSync(lab.hostPath("tmp/sentence.ulaw"), encodeG711("ulaw", await fliteSpeech(sentence)));
    const known = new Set(calls().map((c) => c.callId));
    const phone = dial(callerScenario({ extension: "150", audioFile: "/tmp/sentence.ulaw", holdMs: 2500 }), "150");
    const call = await newInbound(known);
    const { code, output } = await phone.done;
    expect(code, output).toBe(0);
    const heard = await waitFor(
      () => rt.manager.getCall(call.callId)!.transcript.filter((t) => t.speaker === "caller" && t.kind === "speech").map((t) => t.text).join(" ") || undefined,
      "the caller's words",
      5000,
    );
    expect(wordErrorRate(sentence, heard), heard).toBeLessThanOrEqual(0.2);
  });

  it("plays our audio to the phone and ends the call from our side", async () => {
    const { ear, phone, call } = await greetedCaller("200");
    const sentence = "Please call me back tomorrow morning at nine.";
    await rt.manager.speak(call.callId, sentence);
    await rt.manager.endCall(call.callId);
    const { code, output } = await phone.done;
    expect(code, output).toBe(0);
    ear.close();
    // The phone heard the greeting and the sentence, as words our recogniser can read back.
    const heard = await transcribe(ear.audio());
    expect(wordErrorRate(`Hello from the lab. ${sentence}`, heard), heard).toBeLessThanOrEqual(0.2);
    expect(stateOf(call.callId)).toBe("hangup-bot");
  });

  it("stops talking within 300 ms of the caller cutting in, and records the turn as interrupted", async () => {
    const { ear, phone, call } = await greetedCaller("500");
    const callerWords = "Please call me back tomorrow morning at nine.";
    const callerAudio = await fliteSpeech(callerWords);
    const answer =
      "Our opening hours are from nine in the morning to five in the afternoon, Monday to Friday. " +
      "On Saturdays we open at ten and close at two. We are closed on Sundays and on public holidays.";
    const asked = performance.now();
    const reply = rt.manager.continueCall(call.callId, answer);
    const started = await waitFor(() => ear.firstLoud(asked), "the answer at the phone", 5000);
    await new Promise((r) => setTimeout(r, 1000 - (performance.now() - started)));
    const onset = await ear.say(callerAudio);
    const { transcript } = await reply;
    // Our answer was still playing just before the caller spoke, and stopped soon after.
    expect(ear.lastLoud(onset - 200)).toBeDefined();
    const stoppedAfter = ear.lastLoud(started)! - onset;
    console.log(`[barge-in] our audio stopped ${stoppedAfter.toFixed(0)} ms after the caller's speech onset (at the phone)`);
    expect(stoppedAfter).toBeLessThanOrEqual(300);
    // The caller's words answer the turn they interrupted.
    expect(wordErrorRate(callerWords, transcript), transcript).toBeLessThanOrEqual(0.2);
    const view = rt.manager.getCall(call.callId)!;
    const turn = view.transcript.find((t) => t.text === answer)!.turn;
    expect(view.transcript.filter((t) => t.turn === turn).map((t) => [t.speaker, t.kind])).toEqual([
      ["bot", "speech"],
      ["bot", "interrupted"],
      ["caller", "speech"],
    ]);
    await rt.manager.endCall(call.callId);
    expect((await phone.done).code).toBe(0);
    ear.close();
  });

  it("a digits prompt in grammar mode gets the spoken digits right", async () => {
    const { ear, phone, call } = await greetedCaller("510");
    const reply = rt.manager.continueCall(call.callId, "Please say your account number.", { expect: "digits" });
    await waitFor(() => stateOf(call.callId) === "listening", "prompt played", 5000);
    await ear.say(await fliteSpeech("Four seven zero one nine."));
    await ear.say(new Int16Array(8000));
    expect((await reply).transcript).toBe("47019");
    // The next turn is open speech again.
    const next = rt.manager.continueCall(call.callId, "Thank you. Anything else?");
    await waitFor(() => stateOf(call.callId) === "listening", "prompt played", 5000);
    await ear.say(await fliteSpeech("Please call me back tomorrow morning at nine."));
    await ear.say(new Int16Array(8000));
    const words = (await next).transcript;
    expect(wordErrorRate("Please call me back tomorrow morning at nine.", words), words).toBeLessThanOrEqual(0.2);
    await rt.manager.endCall(call.callId);
    expect((await phone.done).code).toBe(0);
    ear.close();
  });

  it("places an outbound call: it rings, is answered, carries audio and DTMF, and ends", async () => {
    const ear = await PhoneAudio.open(mediaPort);
    const callee = runSipp(lab, "uas-answer", calleeScenario({ ringMs: 600, mediaPort: mediaPort++ }), [
      "-p",
      String(lab.info.uasPort),
      "-i",
      "127.0.0.1",
    ]);
    await new Promise((r) => setTimeout(r, 300));
    const reminder = "This is your reminder to water the plants today.";
    const { callId } = await rt.manager.initiateCall({ to: "300", message: reminder });
    await waitFor(() => stateOf(callId) === "ringing", "ringing", 5000);
    await waitFor(() => stateOf(callId) === "listening", "answered and message played", 15_000);
    await rt.manager.sendDtmf(callId, "42#");
    await waitFor(() => ear.dtmf().length === 3, "DTMF at the phone", 5000);
    expect(ear.dtmf()).toBe("42#");
    await rt.manager.endCall(callId);
    const { code, output } = await callee.done;
    expect(code, output).toBe(0);
    ear.close();
    const heard = await transcribe(ear.audio());
    expect(wordErrorRate(reminder, heard), heard).toBeLessThanOrEqual(0.2);
    expect(rt.manager.getCall(callId)!.transcript[0]).toMatchObject({ speaker: "bot", text: reminder });
  });

  it("the lab phone answers the service's call: each side hears the other's sentence", async () => {
    const reminder = "Hello, this is a reminder about your appointment tomorrow at nine.";
    const reply = "Yes, I will be there at nine.";
    const answered = labAnswer(lab, { say: await fliteSpeech(reply), waitMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    const { callId } = await rt.manager.initiateCall({ to: "302", message: reminder, mode: "conversation" });
    const heardBack = await waitFor(() => rt.manager.getCall(callId)!.transcript.find((t) => t.speaker === "caller")?.text, "the phone's answer", 20_000);
    await rt.manager.endCall(callId);
    const phone = await answered;
    expect(phone.code, phone.output).toBe(0);
    const heard = await transcribe(phone.heard);
    expect(wordErrorRate(reminder, heard), heard).toBeLessThanOrEqual(0.2);
    expect(wordErrorRate(reply, heardBack), heardBack).toBeLessThanOrEqual(0.2);
  });

  it("wideband over the WebSocket media transport: a second service (its own app) speaks and hears slin16, and leaves the first service's calls alone", async () => {
    const known = new Set(calls().map((c) => c.callId));
    const first = dial(callerScenario({ extension: "520", holdMs: "wait" }), "520");
    const firstCall = await newInbound(known);
    await waitFor(() => stateOf(firstCall.callId) === "listening", "first service's call up");
    const wide = await serviceOfItsOwn("voicecall-wideband", { media: { transport: "websocket", codec: "slin16" }, dialTemplate: "PJSIP/{to}@lab-uas" });
    try {
      // Starting (and its clean-up of leftovers) did not touch the other service's call.
      expect(stateOf(firstCall.callId)).toBe("listening");
      const reminder = "Hello, this is a reminder about your appointment tomorrow at nine.";
      const reply = "Yes, I will be there at nine.";
      const answered = labAnswer(lab, { say: await fliteSpeech(reply), waitMs: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
      const { callId } = await wide.manager.initiateCall({ to: "303", message: reminder });
      const heardBack = await waitFor(() => wide.manager.getCall(callId)!.transcript.find((t) => t.speaker === "caller")?.text, "the phone's answer", 20_000).catch((err) => {
        throw new Error(`${err.message}: ${JSON.stringify(wide.manager.getCall(callId))}`);
      });
      const media = (wide.providers.get("asterisk") as AsteriskProvider).media(wide.manager.getCall(callId)!.providerCallId!)!;
      expect(media.sampleRate).toBe(16000);
      await wide.manager.endCall(callId);
      const phone = await answered;
      expect(phone.code, phone.output).toBe(0);
      const heard = await transcribe(phone.heard);
      expect(wordErrorRate(reminder, heard), heard).toBeLessThanOrEqual(0.2);
      expect(wordErrorRate(reply, heardBack), heardBack).toBeLessThanOrEqual(0.2);
    } finally {
      await wide.stop();
    }
    expect(stateOf(firstCall.callId)).toBe("listening");
    await rt.manager.endCall(firstCall.callId);
    expect((await first.done).code).toBe(0);
  }, 60_000);

  it("one service routes +1 numbers to Twilio and 3-digit extensions to the lab Asterisk", async () => {
    const twilioApi = await FakeTwilio.start();
    const port = await freePort();
    const webhookUrl = `http://127.0.0.1:${port}/voice/webhook`;
    const routed = await startService(
      makeConfig(
        {
          provider: "asterisk",
          fromNumber: "+15550009999",
          publicUrl: webhookUrl,
          serve: { port, bind: "127.0.0.1" },
          outbound: { defaultMode: "conversation" },
          routing: { rules: [{ prefix: "+1", provider: "twilio" }, { pattern: "[0-9]{3}", provider: "asterisk" }] },
          twilio: { accountSid: TWILIO_ACCOUNT, authToken: TWILIO_TOKEN },
          asterisk: {
            ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: "voicecall-routed" },
            dialTemplate: "PJSIP/{to}@lab-uas",
          },
        },
        tempDir(),
      ),
      createLogger("warn"),
      { apiBaseUrls: { twilio: twilioApi.baseUrl } },
    );
    const manager = routed.runtime.manager;
    try {
      const cloud = await manager.initiateCall({ to: "+15550001234", message: "Hello over the cloud." });
      expect(cloud.provider).toBe("twilio");
      const sid = manager.getCall(cloud.callId)!.providerCallId!;
      expect(twilioApi.made("POST", /Calls\.json$/).at(-1)?.form.To).toBe("+15550001234");
      const twiml = await twilioApi.webhook(`${webhookUrl}?type=voice`, twilioApi.voiceParams(sid, "outbound-api"));
      const target = streamOf(twiml.body)!;
      const stream = await MediaStreamClient.connect(target.url, { callSid: sid, token: target.token });

      const reply = "Yes, I will be there at nine.";
      const answered = labAnswer(lab, { say: await fliteSpeech(reply), waitMs: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
      const pbx = await manager.initiateCall({ to: "304", message: "Hello over the PBX." });
      expect(pbx.provider).toBe("asterisk");
      const heardBack = await waitFor(() => manager.getCall(pbx.callId)!.transcript.find((t) => t.speaker === "caller")?.text, "the phone's answer", 20_000);
      expect(wordErrorRate(reply, heardBack), heardBack).toBeLessThanOrEqual(0.2);

      // Both calls ran at once in one manager; the cloud callee heard its message.
      await waitFor(() => manager.getCall(cloud.callId)?.state === "listening" || undefined, "cloud message played", 15_000);
      const heardCloud = await transcribe(concatPcm(stream.mediaAfter(0).map((m) => m.pcm!)));
      expect(wordErrorRate("hello over the cloud", heardCloud), heardCloud).toBeLessThanOrEqual(0.35);
      expect(manager.listCalls({ activeOnly: true }).map((c) => c.provider).sort()).toEqual(["asterisk", "twilio"]);
      await manager.endCall(pbx.callId);
      await manager.endCall(cloud.callId);
      stream.close();
      expect((await answered).code).toBe(0);
    } finally {
      await routed.close();
      await twilioApi.close();
    }
  }, 60_000);

  it("voicecall lab call: the lab phone calls in, says its sentence, records and reads back what it heard", async () => {
    const known = new Set(calls().map((c) => c.callId));
    const record = join(tempDir(), "heard.wav");
    const cli = spawn(process.execPath, [join(import.meta.dirname, "..", "..", "dist", "cli.js"), "lab", "call", "--slot", String(slot), "--to", "120", "--say", "Please call me back tomorrow morning at nine.", "--record", record, "--hold", "9"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    cli.stdout!.on("data", (d) => (out += d));
    cli.stderr!.on("data", (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => cli.on("exit", resolve));
    expect(code, out).toBe(0);
    const call = await newInbound(known);
    // The service heard the phone's sentence; the phone heard the greeting (and the reply).
    const words = rt.manager.getCall(call.callId)!.transcript.filter((t) => t.speaker === "caller").map((t) => t.text).join(" ");
    expect(wordErrorRate("Please call me back tomorrow morning at nine.", words), words).toBeLessThanOrEqual(0.2);
    const heard = /the phone heard: (.*)/.exec(out)?.[1] ?? "";
    expect(wordErrorRate("Hello from the lab", heard.split(" ").slice(0, 4).join(" ")), heard).toBeLessThanOrEqual(0.25);
    const wav = readWavPcm16(readFileSync(record));
    expect(wav.sampleRate).toBe(8000);
    expect(wav.pcm.length / 8000).toBeGreaterThan(7);
  }, 30_000);

  it("maps a busy callee to state busy", async () => {
    const callee = runSipp(lab, "uas-busy", calleeScenario({ ringMs: 200, status: 486 }), ["-p", String(lab.info.uasPort), "-i", "127.0.0.1"]);
    await new Promise((r) => setTimeout(r, 300));
    const { callId } = await rt.manager.initiateCall({ to: "301", message: "hi" });
    await waitFor(() => stateOf(callId) === "busy", "busy", 10_000);
    await callee.done;
  });

  it("ends calls with a reason when Asterisk dies, reconnects, and takes a new call", async () => {
    const known = new Set(calls().map((c) => c.callId));
    const phone = dial(callerScenario({ extension: "400", holdMs: "wait" }), "400");
    const call = await newInbound(known);
    await waitFor(() => stateOf(call.callId) === "listening", "call up");
    await lab.kill();
    phone.child.kill("SIGKILL");
    await lab.boot();
    await waitFor(() => stateOf(call.callId) === "error", "the call to end after the restart", 15_000);
    expect(rt.manager.getCall(call.callId)!.endReason).toMatch(/Asterisk/);
    await waitFor(() => ast.ari.isConnected, "ARI reconnected", 10_000);

    const again = new Set(calls().map((c) => c.callId));
    const next = dial(callerScenario({ extension: "401", holdMs: 500 }), "401");
    const second = await newInbound(again);
    const { code, output } = await next.done;
    expect(code, output).toBe(0);
    await waitFor(() => stateOf(second.callId) === "hangup-user", "second call ends normally");
  }, 60_000);

  it("a service killed with -9 mid-call takes the call back when it starts again: the phone hears it, and it ends normally", async () => {
    const dir = tempDir();
    const token = "restart-test-token-0123456789";
    const configFile = join(dir, "voicecall.json");
    writeFileSync(
      configFile,
      JSON.stringify({
        provider: "asterisk",
        store: join(dir, "store"),
        serve: { port: 0 },
        control: { token },
        log: { level: "warn" },
        outbound: { defaultMode: "conversation" },
        asterisk: {
          // Its own app: the test's runtime never sees (or cleans up) this service's calls.
          ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: "vcrestart" },
          dialTemplate: "PJSIP/{to}@lab-uas",
        },
      }),
    );
    const serveOnce = async () => {
      const child = spawn(process.execPath, [join(import.meta.dirname, "..", "..", "dist", "cli.js"), "--config", configFile, "serve"], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stderr!.on("data", (d) => (err += d));
      child.stdout!.resume();
      const url = await waitFor(() => /serving on (http:\/\/\S+)/.exec(err)?.[1], "the service to listen", 15_000);
      return { child, client: new VoiceCallClient({ url, token }) };
    };
    const phone = labAnswer(lab, { waitMs: 60_000 });
    const first = await serveOnce();
    const { callId } = (await first.client.call("voicecall.initiate", { to: "300", message: "Before the restart." })) as { callId: string };
    const stateVia = async (client: VoiceCallClient) => ((await client.call("voicecall.status", { callId })) as { call: CallView }).call;
    const deadline = Date.now() + 15_000;
    while ((await stateVia(first.client)).state !== "listening" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));

    const second = await serveOnce();
    try {
      const restored = await stateVia(second.client);
      expect(restored.state, restored.endReason).not.toMatch(/completed|error|hangup/);
      await second.client.call("voicecall.speak", { callId, message: "After the restart, I can still talk to you." });
      await second.client.call("voicecall.end", { callId });
      const heard = await phone;
      expect(heard.code, heard.output.slice(-1500)).toBe(0);
      const words = await transcribe(heard.heard);
      expect(words).toMatch(/restart/);
      expect(wordErrorRate("Before the restart. After the restart, I can still talk to you.", words)).toBeLessThanOrEqual(0.35);
      expect(await stateVia(second.client)).toMatchObject({ state: "hangup-bot", endReason: "ended by request" });
    } finally {
      second.child.kill("SIGTERM");
      await new Promise((r) => second.child.once("exit", r));
    }
  }, 90_000);

  it("a phone that goes away without hanging up is hung up once its audio has stopped (rtp_timeout), not left listening", async () => {
    // Its own app: the suite's runtime never sees this call. The lab's endpoint with a 3 s rtp_timeout (30 s deployed).
    const gone = await serviceOfItsOwn("vcgone", { dialTemplate: "PJSIP/{to}@lab-uas-gone" });
    try {
      const phone = labAnswer(lab, { say: await fliteSpeech("Yes."), waitMs: 30_000 });
      const { callId } = await gone.manager.initiateCall({ to: "300", message: "Are you there?" });
      const said = await waitFor(() => gone.manager.getCall(callId)?.transcript.find((t) => t.speaker === "caller"), "the phone's words", 15_000);
      // The phone says nothing more and sends no audio: as one whose network went.
      const ended = await waitFor(() => {
        const call = gone.manager.getCall(callId);
        return call?.endedAt ? call : undefined;
      }, "the call to end", 15_000);
      expect(ended.state).toBe("hangup-user");
      expect(Date.parse(ended.endedAt!) - Date.parse(said.at)).toBeLessThan(10_000);
      await phone;
    } finally {
      await gone.stop();
    }
  }, 60_000);

  it("leaves no channel and no bridge behind", async () => {
    await new Promise((r) => setTimeout(r, 500));
    expect(await ast.ari.channels.list()).toEqual([]);
    expect(await ast.ari.bridges.list()).toEqual([]);
  });

  // Last: it stops this suite's lab. What `voicecall serve --lab` does when the service before it was killed. On the
  // container lab only: its slot is this suite's alone, while other files wait for the chroot root's lab, and one
  // of them takes it the moment a killed start leaves it (the chroot takeover was tried by hand: docs/lab.md).
  it.skipIf(backend !== "container")("a lab whose process was killed is taken over with what it holds; one on another config is restarted", async () => {
    await lab.stop();
    const labStarter = (extra: Record<string, unknown>) => {
      const script = `import { Lab } from ${JSON.stringify(join(import.meta.dirname, "..", "..", "dist", "lab", "lab.js"))};
        const lab = await Lab.start({ backend: ${JSON.stringify(backend)}, slot: ${slot}, adoptLeftover: true, onProgress: (l) => console.log(l), ...${JSON.stringify(extra)} });
        console.log("lab ready");
        process.once("SIGTERM", async () => { await lab.stop(); process.exit(0); });
        setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout!.on("data", (d) => (out += d));
      child.stderr!.on("data", (d) => (out += d));
      const exited = new Promise((r) => child.once("exit", r));
      return { child, exited, output: () => out, ready: () => waitFor(() => out.includes("lab ready") || child.exitCode !== null, "the lab to start", 30_000).then(() => expect(out).toContain("lab ready")) };
    };
    const ari = (path: string, method = "GET") => fetch(`${lab.info.ariUrl}/ari${path}`, { method, headers: lab.ariHeaders });
    const bridgeIds = async () => ((await (await ari("/bridges")).json()) as Array<{ id: string }>).map((b) => b.id);

    const first = labStarter({});
    await first.ready();
    expect((await ari("/bridges?bridgeId=left-by-a-killed-run&type=mixing", "POST")).status).toBe(200);
    first.child.kill("SIGKILL");
    await first.exited;
    // What the killed process held is still up.
    expect(await bridgeIds()).toContain("left-by-a-killed-run");

    const second = labStarter({});
    await second.ready();
    expect(second.output()).toMatch(backend === "chroot" ? /took over the Asterisk an earlier run left running \(pid \d+\)/ : /took over the lab container an earlier run left running/);
    expect(await bridgeIds()).toContain("left-by-a-killed-run");
    second.child.kill("SIGKILL");
    await second.exited;

    // Another config (the lab phone's password): a fresh Asterisk, nothing of the old one's.
    const third = labStarter({ labPhonePassword: "another-lab-password" });
    await third.ready();
    expect(third.output()).not.toMatch(/took over/);
    expect(await bridgeIds()).not.toContain("left-by-a-killed-run");
    third.child.kill("SIGTERM");
    await third.exited;
    await expect(ari("/asterisk/info")).rejects.toThrow();
  }, 120_000);
});
}
