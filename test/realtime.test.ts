/**
 * Our OpenAI GA Realtime client against a local server speaking the protocol
 * (test/fakes/realtime.ts): the session it configures, the caller's audio in
 * and the model's audio out in the line's format, what both sides said as
 * text, a caller cutting in (the item truncated at the milliseconds we say
 * were heard), tool calls and their results, refusals and closes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeG711 } from "../src/audio/g711.js";
import { OpenAiRealtime, OpenAiRealtimeOptions } from "../src/realtime/openai.js";
import type { RealtimeEvent, RealtimeVoiceSession } from "../src/realtime/types.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { FakeRealtimeVoice } from "./fakes/realtime.js";
import { GOOD_KEY } from "./fakes/vendors.js";
import { runSetup } from "../src/setup.js";
import { makeConfig, waitFor } from "./helpers.js";

const tools = [{ name: "openclaw_end_call", description: "Hang up", parameters: { type: "object", properties: {} } }];

/** Reads a session's events into an array as they come. */
function collect(session: RealtimeVoiceSession): RealtimeEvent[] {
  const seen: RealtimeEvent[] = [];
  void (async () => {
    for await (const e of session.events()) seen.push(e);
  })();
  return seen;
}

describe("OpenAI GA realtime client", () => {
  let fake: FakeRealtimeVoice;
  let speech8k: Buffer;
  const silence8k = Buffer.alloc(8000 * 0.8, 0xff); // 800 ms of mu-law silence
  const voice = (extra: Record<string, unknown> = {}) => new OpenAiRealtime(OpenAiRealtimeOptions.parse({ apiKey: GOOD_KEY, baseUrl: fake.baseUrl, ...extra }));

  beforeAll(async () => {
    fake = await FakeRealtimeVoice.start();
    speech8k = Buffer.from(encodeG711("ulaw", await synthesizeAll(new FliteSynthesizer(), "I would like to book a table.", 8000)));
  });
  afterAll(() => fake.close());

  it("configures the session: the model in the URL, G.711 mu-law both ways on an 8 kHz line, semantic VAD that answers and can be cut in on, the caller transcribed, our tools", async () => {
    const session = await voice({ model: "gpt-realtime-test", voice: "cedar" }).open({ instructions: "Be brief.", tools, audio: "pcmu" });
    await waitFor(() => fake.sessions.at(-1)?.updates[0], "session.update");
    const log = fake.sessions.at(-1)!;
    expect(log.url).toBe("/v1/realtime?model=gpt-realtime-test");
    expect(log.updates[0]).toMatchObject({
      type: "realtime",
      instructions: "Be brief.",
      output_modalities: ["audio"],
      audio: {
        input: { format: { type: "audio/pcmu" }, transcription: { model: "gpt-4o-mini-transcribe" }, turn_detection: { type: "semantic_vad", eagerness: "auto", create_response: true, interrupt_response: true } },
        output: { format: { type: "audio/pcmu" }, voice: "cedar" },
      },
      tools: [{ type: "function", name: "openclaw_end_call", description: "Hang up", parameters: { type: "object", properties: {} } }],
    });
    session.close();
    // The reference's silenceDurationMs keeps its meaning: the fixed-silence server VAD.
    const fixed = await voice({ silenceDurationMs: 700 }).open({ instructions: "Be brief.", tools, audio: "pcmu" });
    await waitFor(() => fake.sessions.at(-1)?.updates[0] && fake.sessions.at(-1) !== log ? true : undefined, "the second session.update");
    expect((fake.sessions.at(-1)!.updates[0] as { audio: { input: { turn_detection: unknown } } }).audio.input.turn_detection).toEqual({
      type: "server_vad",
      threshold: 0.5,
      silence_duration_ms: 700,
      create_response: true,
      interrupt_response: true,
    });
    fixed.close();
  });

  it("the caller's words reach the model as audio; its answer comes back as mu-law audio with both sides' words as text", async () => {
    fake.script = ["I would like to book a table"];
    const session = await voice().open({ instructions: "", tools: [], audio: "pcmu" });
    const seen = collect(session);
    session.appendAudio(speech8k);
    session.appendAudio(silence8k);
    await waitFor(() => seen.find((e) => e.type === "response_done"), "the answer", 20_000);
    const types = seen.map((e) => e.type).filter((t, i, all) => t !== all[i - 1]);
    expect(types).toEqual(["speech_started", "speech_stopped", "input_transcript", "audio", "output_transcript", "response_done"]);
    expect(seen.find((e) => e.type === "input_transcript")).toMatchObject({ text: "I would like to book a table" });
    expect(seen.find((e) => e.type === "output_transcript")).toMatchObject({ text: "You said: I would like to book a table." });
    // As much audio as the fake made for the answer: 8,000 mu-law bytes a second.
    const audioBytes = seen.filter((e) => e.type === "audio").reduce((n, e) => n + (e as { audio: Buffer }).audio.length, 0);
    expect(audioBytes / 8).toBeCloseTo(fake.sessions.at(-1)!.spoken[0]!.audioMs, -1);
    expect(fake.sessions.at(-1)!.audioInBytes).toBe(speech8k.length + silence8k.length);
    session.close();
  });

  it("a caller cutting in: speech_started while the model speaks, the response ends cancelled, and the item is truncated where we say it was heard", async () => {
    fake.script = ["tell me everything"];
    fake.answer = (cause) => ("heard" in cause ? { say: "Here is a long answer. It has many sentences. It goes on for a while. And then some more." } : undefined);
    const session = await voice().open({ instructions: "", tools: [], audio: "pcmu" });
    const seen = collect(session);
    session.appendAudio(speech8k);
    session.appendAudio(silence8k);
    const first = await waitFor(() => seen.find((e) => e.type === "audio") as { itemId: string } | undefined, "the answer's audio", 20_000);
    const startsBefore = seen.filter((e) => e.type === "speech_started").length;
    session.appendAudio(speech8k);
    await waitFor(() => seen.filter((e) => e.type === "speech_started").length > startsBefore, "the cut-in heard");
    session.truncate(first.itemId, 640.4);
    await waitFor(() => seen.find((e) => e.type === "response_done" && e.status === "cancelled"), "the response cancelled");
    await waitFor(() => fake.sessions.at(-1)!.truncates[0], "the truncate");
    expect(fake.sessions.at(-1)!.truncates).toEqual([{ item_id: first.itemId, content_index: 0, audio_end_ms: 640 }]);
    expect(fake.sessions.at(-1)!.spoken[0]).toMatchObject({ cut: true });
    session.close();
  });

  it("a tool call arrives with its arguments; its result goes back and the model answers with it", async () => {
    fake.script = ["what time is it"];
    fake.answer = (cause) => ("heard" in cause ? { toolCall: { name: "lookup_time", arguments: { zone: "UTC" } } } : "toolOutput" in cause ? { say: `It is ${JSON.parse(cause.toolOutput).time}.` } : undefined);
    const session = await voice().open({ instructions: "", tools: [{ name: "lookup_time", description: "the time", parameters: { type: "object" } }], audio: "pcmu" });
    const seen = collect(session);
    session.appendAudio(speech8k);
    session.appendAudio(silence8k);
    const call = await waitFor(() => seen.find((e) => e.type === "tool_call") as Extract<RealtimeEvent, { type: "tool_call" }> | undefined, "the tool call", 20_000);
    expect(call).toMatchObject({ name: "lookup_time", arguments: JSON.stringify({ zone: "UTC" }) });
    session.toolResult(call.callId, { time: "noon" });
    await waitFor(() => seen.find((e) => e.type === "output_transcript"), "the answer", 20_000);
    expect(fake.sessions.at(-1)!.toolOutputs[0]).toMatchObject({ call_id: call.callId, output: JSON.stringify({ time: "noon" }) });
    expect(seen.find((e) => e.type === "output_transcript")).toMatchObject({ text: "It is noon." });
    session.close();
  });

  it("the model speaks first when asked (a greeting), in PCM16 at 24 kHz on a wideband line", async () => {
    fake.answer = (cause) => ("instructions" in cause ? { say: "Hello, how can I help?" } : undefined);
    const session = await voice().open({ instructions: "", tools: [], audio: "pcm24k" });
    const seen = collect(session);
    session.respond("Greet the caller.");
    await waitFor(() => seen.find((e) => e.type === "response_done"), "the greeting", 20_000);
    const log = fake.sessions.at(-1)!;
    expect(log.updates[0]).toMatchObject({ audio: { input: { format: { type: "audio/pcm", rate: 24000 } }, output: { format: { type: "audio/pcm", rate: 24000 } } } });
    const audioBytes = seen.filter((e) => e.type === "audio").reduce((n, e) => n + (e as { audio: Buffer }).audio.length, 0);
    expect(audioBytes / 48).toBeCloseTo(log.spoken[0]!.audioMs, -1); // 2 bytes x 24 samples a ms
    session.close();
  });

  it("a refused key is named with the HTTP status, never echoing the key; a session the server closes ends with the reason", async () => {
    const refused = (await voice({ apiKey: "sk-wrong-secret" }).open({ instructions: "", tools: [], audio: "pcmu" }).catch((err: unknown) => err)) as Error;
    expect(refused.message).toBe("OpenAI realtime refused the API key (HTTP 401): check the key in the config or environment");
    expect(refused.message).not.toContain("sk-wrong-secret");
    const session = await voice().open({ instructions: "", tools: [], audio: "pcmu" });
    const seen = collect(session);
    await waitFor(() => fake.sessions.at(-1)?.updates[0], "session.update");
    fake.dropSessions(1011, "server error");
    const closed = await waitFor(() => seen.find((e) => e.type === "closed"), "the close");
    expect(closed).toEqual({ type: "closed", reason: "OpenAI realtime closed the session (1011 server error)" });
    // Nothing follows the close; sending after it is harmless.
    session.appendAudio(silence8k);
    session.close();
    expect(seen.filter((e) => e.type === "closed")).toHaveLength(1);
  });

  it("voicecall setup names the realtime model as what speaks and listens, and opens a session to check its key (never printing it)", async () => {
    const config = (apiKey: string) =>
      makeConfig({ provider: "asterisk", asterisk: { ari: { url: "http://127.0.0.1:1", password: "x" } }, realtime: { enabled: true, providers: { openai: { apiKey, baseUrl: fake.baseUrl } } } });
    const ok = (await runSetup(config(GOOD_KEY), [])).findings.find((f) => f.check === "speech");
    expect(ok).toEqual({
      check: "speech",
      status: "ok",
      detail:
        "speech out: realtime:openai, realtime.enabled: the speech-to-speech model gpt-realtime hears the caller and speaks; " +
        "speech in: realtime:openai, realtime.enabled: the speech-to-speech model gpt-realtime hears the caller and speaks; the model's service accepted a session",
    });
    const refused = await runSetup(config("sk-wrong-secret"), []);
    expect(refused.findings.find((f) => f.check === "speech")).toMatchObject({ status: "fail", detail: expect.stringContaining("OpenAI realtime refused the API key (HTTP 401)") });
    expect(JSON.stringify(refused)).not.toContain("sk-wrong-secret");
  });
});
