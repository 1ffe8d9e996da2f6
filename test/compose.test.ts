/**
 * The Docker deployment as a user runs it: docker-compose.yml (with
 * `docker compose` or `docker-compose`, whichever is here) brings up
 * Asterisk and the service from the images .ci/docker.sh builds; ARI
 * answers, both containers report healthy, the lab phone (from the host,
 * authenticating as phone 6001) calls in and hears the greeting; an
 * unauthenticated INVITE, also one claiming to be the lab's test caller, is
 * refused and makes no call; on `down` both stop on SIGTERM, not killed.
 * Skips, saying why, without a Docker engine, a compose command or the images.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { LAB_IMAGE, labImageTools } from "../src/lab/container.js";
import { labCall } from "../src/lab/phone.js";
import { transcribePcm } from "../src/speech/pocketsphinx.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { VoiceCallClient } from "../src/server/client.js";
import { composeCommand, composeUnavailableReason, run, until } from "./compose.js";
import { probeInvite } from "./fakes/sip-probe.js";

const IMAGES = ["voicecall:local", "voicecall-asterisk:local", LAB_IMAGE];
const COMPOSE = composeCommand();
const unavailable = composeUnavailableReason(COMPOSE, IMAGES);
if (unavailable) console.warn(`skipping the docker-compose test: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("docker-compose deployment", () => {
  // Ports of their own, so a user's deployment on the defaults is never touched.
  const ports = { SIP_PORT: "25060", ARI_PORT: "28088", VOICECALL_PORT: "23334" };
  const secrets = { ARI_PASSWORD: randomBytes(16).toString("hex"), LAB_PHONE_PASSWORD: randomBytes(12).toString("hex"), VOICECALL_TOKEN: randomBytes(24).toString("hex") };
  const env = { ...ports, ...secrets, SIP_BIND: "127.0.0.1", COMPOSE_PROJECT_NAME: `voicecall-test-${process.pid}` };
  const compose = (args: string[], timeoutMs?: number) => run(COMPOSE![0]!, [...COMPOSE!.slice(1), ...args], env, timeoutMs);
  const ariUrl = `http://127.0.0.1:${ports.ARI_PORT}`;
  const ariAuth = { authorization: `Basic ${Buffer.from(`voicecall:${secrets.ARI_PASSWORD}`).toString("base64")}` };
  const client = new VoiceCallClient({ url: `http://127.0.0.1:${ports.VOICECALL_PORT}`, token: secrets.VOICECALL_TOKEN });
  const containerOf = (service: string) => compose(["ps", "-q", service]).out.trim();
  const health = (service: string) => run("docker", ["inspect", "-f", "{{.State.Health.Status}}", containerOf(service)]).out.trim();
  const callCount = async () => ((await client.call("voicecall.list", {})) as { calls: unknown[] }).calls.length;
  let down = false;

  afterAll(() => {
    if (!down) compose(["down", "-v", "-t", "5"]);
  });

  it("comes up: ARI answers, both containers healthy, the service reaches Asterisk", async () => {
    const started = performance.now();
    const up = compose(["up", "-d"]);
    expect(up.code, up.out).toBe(0);
    await until(async () => ((await fetch(`${ariUrl}/ari/asterisk/info`, { headers: ariAuth })).ok ? true : undefined), "ARI", 60_000);
    const ariMs = performance.now() - started;
    await until(async () => (health("asterisk") === "healthy" && health("voicecall") === "healthy" ? true : undefined), "both containers healthy", 90_000);
    console.log(`[compose] ${COMPOSE!.join(" ")}: ARI answered ${Math.round(ariMs)} ms after up, both healthy after ${Math.round(performance.now() - started)} ms`);
    const apps = (await (await fetch(`${ariUrl}/ari/applications`, { headers: ariAuth })).json()) as Array<{ name: string }>;
    expect(apps.map((a) => a.name)).toContain("voicecall");
  }, 120_000);

  it("the lab phone, authenticating as 6001 from the host, is answered and hears the greeting", async () => {
    const tools = labImageTools();
    try {
      const heard = await labCall({ ...tools, info: { sipPort: Number(ports.SIP_PORT) } }, "100", {
        holdMs: 6000,
        auth: { username: "6001", password: secrets.LAB_PHONE_PASSWORD },
      });
      expect(heard.code, heard.output.slice(-1500)).toBe(0);
      const words = await transcribePcm(heard.heard, 8000);
      expect(wordErrorRate("Hello, you reached the voice agent.", words), words).toBeLessThanOrEqual(0.4);
    } finally {
      tools.close();
    }
    const calls = (await client.call("voicecall.list", {})) as { calls: Array<{ from?: string; direction: string }> };
    expect(calls.calls).toEqual([expect.objectContaining({ direction: "inbound", from: "6001" })]);
  }, 60_000);

  it("refuses an unauthenticated INVITE, also one from the lab's test caller, and makes no call", async () => {
    const before = await callCount();
    for (const fromUser of ["6001", "sipp", "lab-uas", "anonymous"]) {
      const answer = await probeInvite({ port: Number(ports.SIP_PORT), fromUser, to: "100" });
      expect([401, 403], `${fromUser}: ${answer.statusLine ?? "no answer"}`).toContain(answer.status);
    }
    await new Promise((r) => setTimeout(r, 500));
    const channels = (await (await fetch(`${ariUrl}/ari/channels`, { headers: ariAuth })).json()) as unknown[];
    expect(channels).toEqual([]);
    expect(await callCount()).toBe(before);
  }, 30_000);

  it("calling phone 6001 while it is not registered fails naming the endpoint and the likely cause", async () => {
    const failed = await client.call("voicecall.initiate", { to: "6001", message: "Hello." }).then(
      () => undefined,
      (err: Error) => err.message,
    );
    expect(failed).toContain("Asterisk could not dial PJSIP/6001");
    expect(failed).toContain("is the phone registered?");
  }, 30_000);

  it("goes down without waiting out the grace period: both containers stop on SIGTERM (exit 0)", async () => {
    // `docker wait` reports each exit code even though down removes the containers.
    const exitCode = (service: string) =>
      new Promise<string>((resolve) => {
        const wait = spawn("docker", ["wait", containerOf(service)], { stdio: ["ignore", "pipe", "ignore"] });
        let out = "";
        wait.stdout.on("data", (d) => (out += d));
        wait.on("exit", () => resolve(out.trim()));
      });
    const exited = [exitCode("voicecall"), exitCode("asterisk")];
    const started = performance.now();
    const removed = compose(["down", "-v"]);
    const downMs = performance.now() - started;
    down = true;
    expect(removed.code, removed.out).toBe(0);
    console.log(`[compose] down took ${Math.round(downMs)} ms`);
    // A process that ignored SIGTERM would be killed (137) after stop_grace_period (5 s).
    expect(await Promise.all(exited)).toEqual(["0", "0"]);
    expect(downMs).toBeLessThan(5000);
    expect(run("docker", ["ps", "-aq", "--filter", `label=com.docker.compose.project=${env.COMPOSE_PROJECT_NAME}`]).out.trim()).toBe("");
  }, 30_000);
});
