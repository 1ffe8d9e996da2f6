/**
 * Part of `npm run bench` (run with tsx: it drives the real OpenClaw gateway
 * with the test fakes): inside the gateway, a Twilio caller says a sentence
 * and the gateway's agent answers in three sentences that a fake model writes
 * with fixed delays. Measured per turn: the caller's last word -> the first
 * answer audio at the phone, once with the agent's sentences spoken as they
 * are written (the default) and once with the answer spoken only after the
 * whole run (VOICECALL_AGENT_SPEAK_EARLY=0), on the same model, voices and
 * recogniser (the gateway's tts-local-cli running flite; its Deepgram
 * provider pointed at the local vendor fake).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SETTLE_MS } from "../src/gateway/sentence-feed.js";
import { VoiceCallClient } from "../src/server/client.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { percentile } from "../src/util/stats.js";
import { FakeAgentModel } from "../test/fakes/agent-model.js";
import { Gateway, GATEWAY_NODE_VERSION, OPENCLAW_VERSION, ensureGateway } from "../test/fakes/openclaw.js";
import { ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, callSid, isLoud, ringTwilio } from "../test/fakes/twilio.js";
import { FakeVendors, GOOD_KEY } from "../test/fakes/vendors.js";
import { freePort, tempDir } from "../test/helpers.js";

const TURNS = Number(process.env.BENCH_AGENT_TURNS ?? 8);
/** The fake model: first words after THINK_MS, each further sentence GAP_MS later. */
const THINK_MS = 300;
const GAP_MS = 700;
const ANSWER = ["Of course, I can book that for you. ", "Which day would you like to come? ", "And how many people will there be?"];
const LINE = "+15550009999";

interface Turn {
  /** Caller's last word -> first loud answer frame at the phone. */
  firstAudioMs: number;
  /** Caller's last word -> the model's request (recognition, endpointing, the run's start). */
  toModelMs: number;
}

async function measure(mode: "early" | "whole", speech: Int16Array): Promise<Turn[]> {
  const model = await FakeAgentModel.start();
  const vendors = await FakeVendors.start();
  const twilio = await FakeTwilio.start();
  let asked = 0;
  model.script = (r) => {
    const words = r.messages.filter((m) => m.role === "user" && !m.text.startsWith("<<<")).at(-1)?.text ?? "";
    if (!/book a table/.test(words) || r.messages.slice(-1)[0]?.role === "tool") return undefined;
    asked = performance.now();
    return { pieces: ANSWER, delayMs: THINK_MS, gapMs: GAP_MS };
  };
  vendors.script = ["I would like to book a table for two"];
  const script = join(tempDir("voicecall-bench-tts-"), "say.sh");
  writeFileSync(script, `#!/bin/sh\nexec flite -voice slt -t "$1" -o "$2"\n`, { mode: 0o755 });
  const servePort = await freePort();
  const webhookUrl = `http://127.0.0.1:${servePort}/voice/webhook`;
  const controlToken = "control-token-for-the-bench";
  if (mode === "whole") process.env.VOICECALL_AGENT_SPEAK_EARLY = "0";
  else delete process.env.VOICECALL_AGENT_SPEAK_EARLY;
  const gateway = await Gateway.start({
    home: tempDir("voicecall-bench-gateway-"),
    port: await freePort(),
    token: "gateway-token-for-the-bench",
    modelBaseUrl: model.baseUrl,
    pluginConfig: {
      provider: "mock",
      numbers: { [LINE]: { provider: "twilio" } },
      publicUrl: webhookUrl,
      serve: { port: servePort, bind: "127.0.0.1" },
      store: tempDir(),
      control: { token: controlToken },
      twilio: { accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN },
      fromNumber: LINE,
      inboundPolicy: "open",
      inboundGreeting: "Hello.",
      streaming: { provider: "deepgram", providers: { deepgram: { apiKey: GOOD_KEY, baseUrl: `http://127.0.0.1:${vendors.port}/v1` } } },
    },
    gatewayConfig: {
      tts: { provider: "tts-local-cli", providers: { "tts-local-cli": { command: script, args: ["{{Text}}", "{{OutputPath}}"], outputFormat: "wav" } } },
    },
  });
  const service = new VoiceCallClient({ url: `http://127.0.0.1:${servePort}`, token: controlToken });
  const turns: Turn[] = [];
  try {
    for (let i = 0; i < TURNS + 1; i += 1) {
      // A new caller each turn (a session of its own, as long as every other); the first turn warms the gateway up.
      const { stream, callId } = await ringTwilio(twilio, { webhookUrl, service, sid: callSid(0x9000 + i), from: `+1555000${String(3000 + i)}`, to: LINE });
      asked = 0;
      await stream.play(speech);
      const lastWord = performance.now();
      const quiet = stream.silence(GAP_MS * ANSWER.length + 6000);
      let first: number | undefined;
      while (first === undefined && performance.now() - lastWord < 15_000) {
        first = stream.mediaAfter(lastWord).find((m) => isLoud(m.pcm))?.at;
        if (first === undefined) await new Promise((r) => setTimeout(r, 10));
      }
      stream.close();
      await quiet;
      await service.call("voicecall.end", { callId }).catch(() => undefined);
      if (first === undefined) throw new Error(`turn ${i}: no answer audio within 15 s`);
      if (i > 0) turns.push({ firstAudioMs: first - lastWord, toModelMs: asked - lastWord });
    }
  } finally {
    await gateway.stop();
    await model.close();
    await vendors.close();
    await twilio.close();
  }
  return turns;
}

const unavailable = await ensureGateway();
if (unavailable) {
  console.log(`inside the gateway: skipped (${unavailable})`);
} else {
  console.log("");
  console.log(
    `Inside the gateway (openclaw ${OPENCLAW_VERSION}, Node ${GATEWAY_NODE_VERSION}): a Twilio caller's last word -> first answer audio at the phone, ${TURNS} turns each; ` +
      `the agent's fake model writes ${ANSWER.length} sentences, the first ${THINK_MS} ms after the request, then one every ${GAP_MS} ms; gateway TTS tts-local-cli (flite), its Deepgram provider on the vendor fake`,
  );
  const speech = await synthesizeAll(new FliteSynthesizer(), "I would like to book a table for two.", 8000);
  const early = await measure("early", speech);
  const whole = await measure("whole", speech);
  const row = (name: string, t: Turn[]) => {
    const audio = t.map((x) => x.firstAudioMs);
    const toModel = t.map((x) => x.toModelMs);
    console.log(
      `${name}: first answer audio p50 ${percentile(audio, 0.5).toFixed(0)} ms, p95 ${percentile(audio, 0.95).toFixed(0)} ms ` +
        `(of which last word -> model request p50 ${percentile(toModel, 0.5).toFixed(0)} ms: recognition, endpointing, the run's start)`,
    );
    return percentile(audio, 0.5);
  };
  const a = row("sentences spoken as written (default)", early);
  const b = row("answer spoken after the whole run   ", whole);
  // The floor: no word can be said before the model has written it.
  const floor = percentile(early.map((t) => t.toModelMs + THINK_MS), 0.5);
  console.log(
    `early speech / whole run: ${(a / b).toFixed(2)}x at p50 (the model took ${THINK_MS + GAP_MS * (ANSWER.length - 1)} ms to write the whole answer); ` +
      `floor (the model request + its first sentence written) p50 ${floor.toFixed(0)} ms: early speech ${(a / floor).toFixed(2)}x the floor ` +
      `(the rest: ${SETTLE_MS} ms waiting for more text after a sentence's end, the gateway's TTS of one sentence, the stream)`,
  );
}
