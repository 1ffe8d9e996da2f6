import { afterEach, describe, expect, it } from "vitest";
import { VoiceCallClient } from "../src/server/client.js";
import { createLogger } from "../src/log.js";
import { startService, type RunningService } from "../src/server/service.js";
import { makeConfig, waitFor } from "./helpers.js";

let service: RunningService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

async function start(raw: Record<string, unknown> = {}): Promise<RunningService> {
  service = await startService(makeConfig({ serve: { port: 0 }, mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0 }, ...raw }), createLogger("silent"));
  return service;
}

async function post(s: RunningService, body: unknown, token: string | null = s.token): Promise<{ status: number; json: any }> {
  const res = await fetch(`${s.url}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

describe("control API", () => {
  it("needs the bearer token", async () => {
    const s = await start();
    expect(s.tokenGenerated).toBe(true);
    for (const token of [null, "wrong-token-wrong-token"]) {
      const { status, json } = await post(s, { method: "voicecall.list", params: {} }, token);
      expect(status).toBe(401);
      expect(json).toEqual({ ok: false, error: { code: "UNAUTHORIZED", message: expect.stringContaining("bearer token") } });
    }
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it("answers bad requests with a code and the field, never a stack", async () => {
    const s = await start();
    const unknown = await post(s, { method: "voicecall.dial", params: {} });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe("UNKNOWN_METHOD");
    const missing = await post(s, { method: "voicecall.initiate", params: { to: "+15550001234", mode: "shout" } });
    expect(missing.status).toBe(400);
    expect(missing.json.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(["message", "mode"]);
    const extra = await post(s, { method: "voicecall.status", params: { callId: "x", callSid: "y" } });
    expect(extra.json.error.issues).toEqual([{ path: "callSid", message: "unknown key" }]);
    const notJson = await post(s, "{nope");
    expect(notJson.json.error).toMatchObject({ code: "INVALID_PARAMS", message: "body: not valid JSON" });
    for (const r of [unknown, missing, extra, notJson]) expect(JSON.stringify(r.json)).not.toMatch(/\.ts:\d+|\.js:\d+/);
  });

  it("runs a conversation through the same methods the gateway registers", async () => {
    const s = await start({ mock: { ringMs: 5, replyDelayMs: 5, speakMsPerChar: 0, replies: ["hello back", "bye"] } });
    const client = new VoiceCallClient({ url: s.url, token: s.token });
    const events: any[] = [];
    const controller = new AbortController();
    const tail = (async () => {
      for await (const e of client.events(controller.signal)) events.push(e);
    })();
    const { callId } = (await client.call("voicecall.initiate", { to: "+15550001234", message: "hi there", mode: "conversation" })) as { callId: string };
    await waitFor(() => events.some((e) => e.type === "transcript" && e.entry.text === "hello back"), "reply to the opening");
    const reply = await client.call("voicecall.continue", { callId, message: "how are you?" });
    expect(reply).toEqual({ success: true, transcript: "bye" });
    await client.call("voicecall.speak", { callId, message: "goodbye" });
    expect(await client.call("voicecall.end", { callId })).toEqual({ success: true, state: "hangup-bot" });
    const status = (await client.call("voicecall.status", { callId })) as { found: boolean; call: any };
    expect(status.found).toBe(true);
    expect(status.call.transcript.map((t: any) => t.text)).toEqual(["hi there", "hello back", "how are you?", "bye", "goodbye"]);
    expect(await client.call("voicecall.status", { callId: "unknown" })).toEqual({ found: false });
    await waitFor(() => events.some((e) => e.type === "call" && e.call.state === "hangup-bot"), "tail sees the end");
    expect(events.filter((e) => e.type === "transcript").map((e) => e.entry.text)).toContain("bye");
    controller.abort();
    await tail;
  });

  it("reports a call on an ended call as CALL_ENDED", async () => {
    const s = await start({ mock: { outcome: "busy", ringMs: 5 } });
    const client = new VoiceCallClient({ url: s.url, token: s.token });
    const { callId } = (await client.call("voicecall.initiate", { to: "+15550001234", message: "hi" })) as { callId: string };
    await expect(client.call("voicecall.continue", { callId, message: "hello?" })).rejects.toMatchObject({ code: "CALL_ENDED" });
  });
});
