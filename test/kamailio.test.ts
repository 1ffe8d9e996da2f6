/**
 * Kamailio in front of two lab Asterisks (the chroot lab on slot 0 and the
 * container lab on slot 3), one service reaching both (asterisk.ari as a
 * list). Twenty lab phones dial Kamailio's address at once: the dispatcher's
 * call-load algorithm spreads them over both Asterisks, and each phone hears
 * its greeting and has its words transcribed. One Asterisk stopped: new calls
 * go to the other. Skipped with the reason where Kamailio or either lab
 * cannot run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kamailioUnavailableReason, LocalKamailio } from "../src/lab/kamailio.js";
import { Lab, labUnavailableReason } from "../src/lab/lab.js";
import { runLoad, type LoadCall } from "../src/lab/load.js";
import { createLogger } from "../src/log.js";
import { VoiceCallClient } from "../src/server/client.js";
import { startService, type RunningService } from "../src/server/service.js";
import { FliteSynthesizer } from "../src/speech/flite.js";
import { synthesizeAll } from "../src/speech/types.js";
import { freePort, makeConfig, waitFor } from "./helpers.js";

const unavailable = kamailioUnavailableReason() ?? labUnavailableReason("chroot") ?? labUnavailableReason("container");
if (unavailable) console.warn(`skipping the Kamailio tests: ${unavailable}`);

const SENTENCE = "I would like to book a table for four people.";
const TOKEN = "kamailio-test-token-0123";

describe.skipIf(unavailable !== undefined)("Kamailio in front of two lab Asterisks", () => {
  let one: Lab;
  let two: Lab;
  let twoStopped = false;
  let kamailio: LocalKamailio;
  let service: RunningService;
  let client: VoiceCallClient;

  beforeAll(async () => {
    // In slot order, as every test file takes its labs: no two files wait on each other's.
    one = await Lab.start({ backend: "chroot", slot: 0, onProgress: (l) => console.log(`[lab chroot] ${l}`), waitForLabMs: 900_000 });
    two = await Lab.start({ backend: "container", slot: 3, onProgress: (l) => console.log(`[lab container] ${l}`), waitForLabMs: 900_000 });
    kamailio = await LocalKamailio.start({
      port: await freePort(),
      destinations: [
        { uri: `sip:127.0.0.1:${one.info.sipPort}`, name: "ast1" },
        { uri: `sip:127.0.0.1:${two.info.sipPort}`, name: "ast2" },
      ],
    });
    const ari = (lab: Lab, name: string) => ({ name, url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: lab.info.ariApp });
    service = await startService(
      makeConfig({
        provider: "asterisk",
        inboundPolicy: "open",
        inboundGreeting: "Hello, you reached the voice agent.",
        maxConcurrentCalls: 30,
        serve: { port: 0 },
        control: { token: TOKEN },
        asterisk: { ari: [ari(one, "ast1"), ari(two, "ast2")] },
      }),
      createLogger("silent"),
    );
    client = new VoiceCallClient({ url: service.url, token: TOKEN });
  }, 1_200_000);

  afterAll(async () => {
    await service?.close();
    await kamailio?.stop();
    if (!twoStopped) await two?.stop();
    await one?.stop();
  });

  const onAsterisk = (calls: LoadCall[], name: string) => calls.filter((c) => c.providerCallId?.startsWith(`${name}/`)).length;
  const failures = (calls: LoadCall[]) =>
    calls.filter((c) => !c.completed || !c.greeted || c.wordError === undefined || c.wordError > 0.5).map((c) => `${c.extension} on ${c.providerCallId}: completed ${c.completed}, greeted ${c.greeted}, heard "${c.transcript}" (${c.unrecognised ?? "no reason given"})`);

  it("spreads twenty phones dialling Kamailio over both Asterisks, each greeted and heard; with one Asterisk stopped, new calls go to the other", async () => {
    const say = await synthesizeAll(new FliteSynthesizer(), SENTENCE, 8000);
    const load = await runLoad(one, client, { calls: 20, say, sayText: SENTENCE, holdMs: 12_000, proxyPort: kamailio.port, onProgress: (l) => console.log(`[kamailio] ${l}`) });
    const spread = { ast1: onAsterisk(load.calls, "ast1"), ast2: onAsterisk(load.calls, "ast2") };
    console.log(`[kamailio] 20 phones: ${spread.ast1} on the first Asterisk, ${spread.ast2} on the second; greeting p50 ${load.greetingMs.p50} ms, p95 ${load.greetingMs.p95} ms`);
    expect(failures(load.calls)).toEqual([]);
    // Call-load distribution: the one with fewer calls in progress gets the next, so twenty at once split about evenly.
    expect(spread.ast1 + spread.ast2).toBe(20);
    expect(Math.min(spread.ast1, spread.ast2)).toBeGreaterThanOrEqual(7);

    // The second Asterisk goes away: its OPTIONS go unanswered and Kamailio marks it down.
    await two.stop();
    twoStopped = true;
    const stoppedAt = Date.now();
    await waitFor(async () => (await kamailio.destinations()).find((d) => d.uri.endsWith(`:${two.info.sipPort}`))?.flags.startsWith("I"), "Kamailio to mark the stopped Asterisk down", 15_000);
    console.log(`[kamailio] the stopped Asterisk marked down ${Date.now() - stoppedAt} ms after it stopped`);
    const after = await runLoad(one, client, { calls: 4, say, sayText: SENTENCE, holdMs: 10_000, proxyPort: kamailio.port, firstExtension: 7100 });
    expect(failures(after.calls)).toEqual([]);
    expect(onAsterisk(after.calls, "ast1")).toBe(4);
  }, 300_000);
});
