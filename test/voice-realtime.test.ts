/**
 * The realtime pipeline on a call's audio port (a socketless transport on
 * the shared pacer), with our OpenAI GA client against the local protocol
 * server: the caller's audio reaches the model, the model's audio goes out
 * at the line's pace, a caller cutting in stops it and truncates the model's
 * item at the milliseconds that went out, speak() has the model say a line,
 * tools run and answer, a closed model session is reported.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { VoiceCallConfigSchema } from "../src/config/schema.js";
import { createLogger } from "../src/log.js";
import { OpenAiRealtime, OpenAiRealtimeOptions } from "../src/realtime/openai.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import type { VoiceEvent } from "../src/voice/pipeline.js";
import { RealtimePipeline, RealtimeVoices } from "../src/voice/realtime.js";
import { LoopTransport } from "./fakes/loop-transport.js";
import { FakeRealtimeVoice, type AnswerCause } from "./fakes/realtime.js";
import { GOOD_KEY } from "./fakes/vendors.js";
import { waitFor } from "./helpers.js";

const LONG = "Here is a long answer. It has many sentences in it. It goes on for quite a while. And then there is some more.";
const wordForWord = (cause: AnswerCause) => ("instructions" in cause && cause.instructions ? { say: cause.instructions.slice(cause.instructions.lastIndexOf(": ") + 2) } : undefined);

describe("realtime pipeline", () => {
  let fake: FakeRealtimeVoice;
  let speech8k: Int16Array;
  let speech16k: Int16Array;
  /** How long LONG plays. */
  let longMs: number;
  const open: Array<{ close(waitMs?: number): Promise<void> }> = [];
  const log = createLogger("silent");

  const start = async (rate: 8000 | 16000, extra: Partial<Parameters<typeof RealtimePipeline.start>[0]> = {}) => {
    const transport = new LoopTransport(rate);
    const events: VoiceEvent[] = [];
    const voice = new OpenAiRealtime(OpenAiRealtimeOptions.parse({ apiKey: GOOD_KEY, baseUrl: fake.baseUrl }));
    const pipeline = await RealtimePipeline.start({ providerCallId: "call-1", transport, narrowband: rate === 8000, inbandDtmf: false, log, emit: (e) => events.push(e), voice, instructions: "Be brief.", tools: [], ...extra });
    open.push(pipeline);
    return { transport, events, pipeline, session: () => fake.sessions.at(-1)! };
  };

  beforeAll(async () => {
    fake = await FakeRealtimeVoice.start();
    const flite = new FliteSynthesizer();
    speech8k = await synthesizeAll(flite, "I would like to book a table.", 8000);
    speech16k = await synthesizeAll(flite, "I would like to book a table.", 16000);
    longMs = ((await synthesizeAll(flite, LONG, 8000)).length / 8000) * 1000;
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((p) => p.close(500)));
    fake.answer = (cause) => ("heard" in cause ? { say: `You said: ${cause.heard}.` } : undefined);
  });
  afterAll(() => fake.close());

  it("on an 8 kHz line: the caller's audio reaches the model as mu-law, its answer goes out at the line's pace, both sides' words are reported", async () => {
    fake.script = ["I would like to book a table"];
    const { transport, events, session } = await start(8000);
    const fed = performance.now();
    transport.feed(speech8k);
    transport.feed(new Int16Array(8000 * 0.8));
    await waitFor(() => events.find((e) => e.type === "said"), "the model's answer", 20_000);
    const spoken = session().spoken[0]!;
    const whole = Math.ceil(spoken.audioMs / 20) * 20;
    await waitFor(() => transport.ourMsAfter(fed) >= whole, "the answer played", 20_000);
    expect(session().updates[0]!.audio.input.format).toEqual({ type: "audio/pcmu" });
    // What the model heard: the whole sentence and the silence after it, one mu-law byte a sample.
    expect(session().audioInBytes).toBeGreaterThanOrEqual(speech8k.length + 6400);
    expect(events.map((e) => e.type).filter((t) => t !== "speech-end")).toEqual(["speech-start", "speech", "said"]);
    expect(events.find((e) => e.type === "speech")).toMatchObject({ text: "I would like to book a table", isFinal: true, answered: true });
    expect(events.find((e) => e.type === "said")).toMatchObject({ text: "You said: I would like to book a table." });
    // Sent twice as fast as it plays, it went out in real time: its first and last frame ~ its length apart,
    // and it was speech (not silence or noise).
    const ours = transport.sent.filter((s) => s.at >= fed && s.frame);
    expect(ours.at(-1)!.at - ours[0]!.at).toBeGreaterThan(spoken.audioMs * 0.8);
    expect(ours.filter((s) => s.frame!.pcm.some((v) => Math.abs(v) > 1000)).length * 20).toBeGreaterThan(spoken.audioMs * 0.5);
    expect(transport.playedMs(spoken.itemId)).toBe(whole);
  });

  it("a caller cutting in: the model's audio stops and its item is truncated at the milliseconds that went out", async () => {
    fake.script = ["tell me everything", "wait"];
    fake.answer = (cause) => ("heard" in cause && cause.heard !== "wait" ? { say: LONG } : undefined);
    const { transport, events, session } = await start(8000);
    const fed = performance.now();
    transport.feed(speech8k);
    transport.feed(new Int16Array(8000 * 0.8));
    await waitFor(() => transport.ourMsAfter(fed) >= 1200, "1.2 s of the answer played", 20_000);
    const cutAt = performance.now();
    transport.feed(speech8k);
    const truncate = await waitFor(() => session().truncates[0], "the truncate", 5000);
    const itemId = session().spoken[0]!.itemId;
    // At what had gone out of that item when the cut came: within a frame or two of what we counted at the line.
    const playedAtCut = transport.ourMsAfter(fed);
    expect(truncate.item_id).toBe(itemId);
    expect(Math.abs(truncate.audio_end_ms - playedAtCut)).toBeLessThanOrEqual(60);
    expect(truncate.audio_end_ms).toBeLessThan(longMs - 1000);
    // Nothing more of it plays; the model's own detector cut it, so we sent no response.cancel.
    await new Promise((r) => setTimeout(r, 300));
    expect(transport.ourMsAfter(cutAt + 100)).toBe(0);
    expect(session().cancels).toBe(0);
    expect(events.filter((e) => e.type === "speech-start")).toHaveLength(2);
  });

  it("speak(): the model says the line; an abort of ours stops it, cancels the response and truncates the item", async () => {
    fake.answer = wordForWord;
    const { transport, pipeline, session } = await start(8000);
    const said = await pipeline.speak("Hello, thanks for calling.", {});
    expect(said.interrupted).toBe(false);
    expect(said.heard).toBe("Hello, thanks for calling.");
    expect(Math.abs(said.playedMs! - session().spoken[0]!.audioMs)).toBeLessThanOrEqual(40);

    const controller = new AbortController();
    const saying = pipeline.speak(LONG, { signal: controller.signal });
    const since = performance.now();
    await waitFor(() => transport.ourMsAfter(since) >= 600, "part of it played", 20_000);
    controller.abort();
    const cut = await saying;
    expect(cut.interrupted).toBe(true);
    expect(cut.playedMs!).toBeGreaterThanOrEqual(600);
    expect(cut.playedMs!).toBeLessThan(longMs - 1000);
    await waitFor(() => session().cancels === 1 && session().truncates.length === 1, "the cancel and the truncate");
    expect(session().truncates[0]).toMatchObject({ item_id: session().spoken[1]!.itemId, audio_end_ms: cut.playedMs });
  });

  it("on a 16 kHz line: PCM16 at 24 kHz both ways, resampled; the answer goes out as 16 kHz frames", async () => {
    fake.script = ["I would like to book a table"];
    const { transport, events, session } = await start(16000);
    const fed = performance.now();
    transport.feed(speech16k);
    transport.feed(new Int16Array(16000 * 0.8));
    await waitFor(() => events.find((e) => e.type === "said"), "the model's answer", 20_000);
    await waitFor(() => transport.ourMsAfter(fed) >= session().spoken[0]!.audioMs - 100, "the answer played", 20_000);
    expect(session().updates[0]!.audio.output.format).toEqual({ type: "audio/pcm", rate: 24000 });
    // 2 bytes a sample at 24 kHz for what 16 kHz frames carried (and the line's idle silence since).
    expect(session().audioInBytes / 48).toBeGreaterThanOrEqual(((speech16k.length + 12800) / 16000) * 1000 - 20);
    expect(transport.sent.filter((s) => s.frame).every((s) => s.frame!.sampleRate === 16000 && s.frame!.pcm.length === 320)).toBe(true);
  });

  it("a tool the model calls runs, its result goes back and the model answers with it; a failing one answers with its error", async () => {
    fake.script = ["what time is it", "and the weather"];
    fake.answer = (cause) =>
      "heard" in cause
        ? { toolCall: { name: cause.heard === "what time is it" ? "lookup_time" : "weather", arguments: { zone: "UTC" } } }
        : "toolOutput" in cause
          ? { say: `Result ${cause.toolOutput}.` }
          : undefined;
    const calls: Array<[string, unknown]> = [];
    const { transport, events, session } = await start(8000, {
      tools: [{ name: "lookup_time", description: "the time", parameters: { type: "object" } }],
      onToolCall: async (name, args) => {
        calls.push([name, args]);
        if (name === "weather") throw new Error("no weather service");
        return { time: "noon" };
      },
    });
    transport.feed(speech8k);
    transport.feed(new Int16Array(8000 * 0.8));
    await waitFor(() => events.find((e) => e.type === "said"), "the answer with the tool's result", 20_000);
    transport.feed(speech8k);
    transport.feed(new Int16Array(8000 * 0.8));
    await waitFor(() => events.filter((e) => e.type === "said").length === 2, "the second answer", 20_000);
    expect(calls).toEqual([["lookup_time", { zone: "UTC" }], ["weather", { zone: "UTC" }]]);
    expect(session().toolOutputs.map((o) => JSON.parse(o.output))).toEqual([{ time: "noon" }, { error: "no weather service" }]);
  });

  it("realtime.tools: offered as configured; each runs by POSTing the call and the arguments to its url (with its token), the JSON answer back to the model; no url, or a failing endpoint: an error naming it", async () => {
    const hits: Array<{ path?: string; auth?: string; body: unknown }> = [];
    const endpoint = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        hits.push({ path: req.url, auth: req.headers.authorization, body: JSON.parse(body) });
        if (req.url === "/down") return res.writeHead(503).end("maintenance");
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ available: true, tables: 3 }));
      });
    });
    await new Promise<void>((r) => endpoint.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
    try {
      const config = VoiceCallConfigSchema.parse({
        realtime: {
          enabled: true,
          tools: [
            { name: "check_booking", description: "is a table free", parameters: { type: "object", properties: { day: { type: "string" } } }, url: `${url}/booking`, token: "tool-token" },
            { name: "no_handler", description: "nothing runs it" },
            { name: "down", url: `${url}/down` },
          ],
        },
      });
      const voices = new RealtimeVoices(config, new OpenAiRealtime(OpenAiRealtimeOptions.parse({ apiKey: GOOD_KEY, baseUrl: fake.baseUrl })));
      voices.callOf = (id) => ({ callId: `call-of-${id}`, direction: "inbound", from: "+15550001234", to: "+15550009999", provider: "twilio" });
      const transport = new LoopTransport(8000);
      const events: VoiceEvent[] = [];
      open.push(await voices.start({ providerCallId: "carrier-7", transport, narrowband: true, inbandDtmf: false, log, emit: (e) => events.push(e) }));
      const asks: Record<string, string> = { "is a table free": "check_booking", "without a handler": "no_handler", "while it is down": "down" };
      fake.script = Object.keys(asks);
      fake.answer = (cause) => ("heard" in cause ? { toolCall: { name: asks[cause.heard]!, arguments: { day: "friday" } } } : "toolOutput" in cause ? { say: "Noted." } : undefined);
      for (let i = 1; i <= 3; i++) {
        transport.feed(speech8k);
        transport.feed(new Int16Array(8000 * 0.8));
        await waitFor(() => events.filter((e) => e.type === "said").length >= i, `answer ${i}`, 20_000);
      }
      const session = fake.sessions.at(-1)!;
      expect(session.updates[0]!.tools.map((t: { name: string }) => t.name)).toEqual(["openclaw_end_call", "openclaw_agent_consult", "check_booking", "no_handler", "down"]);
      expect(session.updates[0]!.tools[2]).toMatchObject({ description: "is a table free", parameters: { properties: { day: { type: "string" } } } });
      expect(hits[0]).toEqual({
        path: "/booking",
        auth: "Bearer tool-token",
        body: { tool: "check_booking", arguments: { day: "friday" }, call: { callId: "call-of-carrier-7", direction: "inbound", from: "+15550001234", to: "+15550009999", provider: "twilio" } },
      });
      expect(session.toolOutputs.map((o) => JSON.parse(o.output))).toEqual([
        { available: true, tables: 3 },
        { error: "tool no_handler has no handler here (realtime.tools[1].url is not set)" },
        { error: "tool down failed: HTTP 503 maintenance" },
      ]);
    } finally {
      endpoint.close();
    }
  });

  it("a line that brings no caller audio for noMediaMs (and a 2 s grace) is reported gone; one whose audio keeps coming is not", async () => {
    const quiet = await start(8000, { noMediaMs: 300 });
    const talking = await start(8000, { noMediaMs: 300 });
    quiet.transport.feed(speech8k.subarray(0, 1600));
    const feeding = setInterval(() => talking.transport.feed(new Int16Array(800)), 100);
    try {
      const gone = await waitFor(() => quiet.events.find((e) => e.type === "voice-closed"), "the quiet line reported", 5000);
      expect(gone).toEqual({ type: "voice-closed", reason: "no caller audio for 300 ms" });
      await new Promise((r) => setTimeout(r, 500));
      expect(talking.events.filter((e) => e.type === "voice-closed")).toEqual([]);
    } finally {
      clearInterval(feeding);
    }
  });

  it("a model session that closes is reported, with its reason", async () => {
    const { events, session, pipeline } = await start(8000);
    await waitFor(() => session().updates[0], "session.update");
    fake.dropSessions(1011, "server error");
    expect(await waitFor(() => events.find((e) => e.type === "voice-closed"), "voice-closed")).toEqual({ type: "voice-closed", reason: "OpenAI realtime closed the session (1011 server error)" });
    // Nothing can be said any more: speak() says so at once instead of waiting for ever.
    expect(await pipeline.speak("Are you still there?", {})).toEqual({ interrupted: true, heard: "", playedMs: 0 });
    // Closed by us (the call's media ended): not reported as the model going away.
    const ours = await start(8000);
    await waitFor(() => ours.session().updates[0], "session.update");
    await ours.pipeline.close(500);
    await new Promise((r) => setTimeout(r, 100));
    expect(ours.events.filter((e) => e.type === "voice-closed")).toEqual([]);
  });
});
