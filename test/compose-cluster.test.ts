/**
 * The cluster deployment as a user runs it: docker-compose.cluster.yml brings
 * up PostgreSQL, two Asterisks, Kamailio in front of them and two service
 * instances on the one store, each connected to both Asterisks. Two lab
 * phones (from the host, authenticating as 6001 through Kamailio, which
 * sends each challenge's answer back to the Asterisk that made it) call at
 * once: Kamailio puts one on each Asterisk, both are greeted, and every
 * instance lists the calls by their Asterisk. Skips, saying why, without a
 * Docker engine, a compose command or the images (.ci/docker.sh builds them,
 * with a PostgreSQL stand-in where there is no registry for postgres:15).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LAB_IMAGE, labImageTools } from "../src/lab/container.js";
import { labCall } from "../src/lab/phone.js";
import { VoiceCallClient } from "../src/server/client.js";
import { transcribePcm } from "../src/speech/pocketsphinx.js";
import { wordErrorRate } from "../src/speech/wer.js";
import { ROOT, composeCommand, composeUnavailableReason, run, until } from "./compose.js";

/** The registry's postgres:15 where it can be pulled; here the stand-in .ci/docker.sh builds. */
const POSTGRES_IMAGE = run("docker", ["image", "inspect", "local/postgres:15"], {}, 10_000).code === 0 ? "local/postgres:15" : "postgres:15-bookworm";
const IMAGES = ["voicecall:local", "voicecall-asterisk:local", "voicecall-kamailio:local", POSTGRES_IMAGE, LAB_IMAGE];
const COMPOSE = composeCommand();
const unavailable = composeUnavailableReason(COMPOSE, IMAGES);
if (unavailable) console.warn(`skipping the docker-compose cluster test: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("docker-compose cluster: Kamailio, two Asterisks, two instances, PostgreSQL", () => {
  // Ports of their own (and apart from the single-machine compose test's), so nothing else is touched.
  const ports = {
    SIP_PORT: "25160",
    ASTERISK_A_SIP_PORT: "25170",
    ASTERISK_B_SIP_PORT: "25180",
    ASTERISK_A_ARI_PORT: "28188",
    ASTERISK_B_ARI_PORT: "28189",
    VOICECALL_A_PORT: "23434",
    VOICECALL_B_PORT: "23435",
    PG_PORT: "25432",
  };
  const secrets = {
    ARI_PASSWORD: randomBytes(16).toString("hex"),
    LAB_PHONE_PASSWORD: randomBytes(12).toString("hex"),
    PG_PASSWORD: randomBytes(16).toString("hex"),
    VOICECALL_TOKEN: randomBytes(24).toString("hex"),
  };
  // The shipped config with this test's ARI ports (the file names 8088 and 8089), readable by the container's user.
  const dir = mkdtempSync(join(tmpdir(), "voicecall-cluster-"));
  chmodSync(dir, 0o755);
  const config = join(dir, "voicecall.cluster.json5");
  const shipped = readFileSync(join(ROOT, "asterisk/voicecall.cluster.json5"), "utf8");
  writeFileSync(config, shipped.replace("127.0.0.1:8088", `127.0.0.1:${ports.ASTERISK_A_ARI_PORT}`).replace("127.0.0.1:8089", `127.0.0.1:${ports.ASTERISK_B_ARI_PORT}`));
  chmodSync(config, 0o644);
  const env = { ...ports, ...secrets, POSTGRES_IMAGE, VOICECALL_CLUSTER_CONFIG: config, COMPOSE_PROJECT_NAME: `voicecall-cluster-test-${process.pid}` };
  const compose = (args: string[], timeoutMs?: number) => run(COMPOSE![0]!, [...COMPOSE!.slice(1), "-f", "docker-compose.cluster.yml", ...args], env, timeoutMs);
  const containerOf = (service: string) => compose(["ps", "-q", service]).out.trim();
  const health = (service: string) => run("docker", ["inspect", "-f", "{{.State.Health.Status}}", containerOf(service)]).out.trim();
  const SERVICES = ["postgres", "kamailio", "asterisk-a", "asterisk-b", "voicecall-a", "voicecall-b"];
  const instances = [ports.VOICECALL_A_PORT, ports.VOICECALL_B_PORT].map((port) => new VoiceCallClient({ url: `http://127.0.0.1:${port}`, token: secrets.VOICECALL_TOKEN }));
  const ariApps = async (port: string) => {
    const auth = { authorization: `Basic ${Buffer.from(`voicecall:${secrets.ARI_PASSWORD}`).toString("base64")}` };
    return ((await (await fetch(`http://127.0.0.1:${port}/ari/applications`, { headers: auth })).json()) as Array<{ name: string }>).map((a) => a.name).sort();
  };

  afterAll(() => {
    const down = compose(["down", "-v", "-t", "10"]);
    if (down.code !== 0) console.warn(`[compose cluster] down: ${down.out.slice(-800)}`);
    rmSync(dir, { recursive: true, force: true });
  });

  it("comes up: all six healthy; each instance has its own app on both Asterisks, and one holds the entry", async () => {
    const started = performance.now();
    const up = compose(["up", "-d"], 180_000);
    expect(up.code, up.out).toBe(0);
    await until(async () => (SERVICES.every((s) => health(s) === "healthy") ? true : undefined), "all six healthy", 120_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${SERVICES.map((s) => `${s} ${health(s)}`).join(", ")}\n${compose(["logs", "--tail", "30"]).out.slice(-4000)}`);
    });
    console.log(`[compose cluster] ${COMPOSE!.join(" ")}: all six healthy ${Math.round(performance.now() - started)} ms after up`);
    for (const port of [ports.ASTERISK_A_ARI_PORT, ports.ASTERISK_B_ARI_PORT]) {
      // voicecall: the entry the dialplan sends callers to (held by one instance), voicecall-<nodeId>: each instance's own.
      await until(async () => ((await ariApps(port)).join(",") === "voicecall,voicecall-a,voicecall-b" ? true : undefined), `the three apps on the Asterisk at ARI ${port}`, 30_000);
    }
  }, 240_000);

  it("two phones calling Kamailio at once land one on each Asterisk, both greeted; both instances answer for both calls", async () => {
    type Listed = { callId: string; providerCallId?: string; direction: string; from?: string; state: string };
    const listed = async () => (await Promise.all(instances.map(async (c) => ((await c.call("voicecall.list", {})) as { calls: Listed[] }).calls))).flat();
    const tools = labImageTools();
    try {
      const phone = () =>
        labCall({ ...tools, info: { sipPort: Number(ports.SIP_PORT) } }, "100", {
          holdMs: 8000,
          auth: { username: "6001", password: secrets.LAB_PHONE_PASSWORD },
          viaProxy: true,
        });
      const phones = Promise.all([phone(), phone()]);
      // While both are up: the carrier's call ids name their Asterisk (<name>/<channel>), and either instance answers status for either call.
      const calls = await until(async () => {
        const live = (await listed()).filter((c) => c.state === "listening");
        return live.length === 2 ? live : undefined;
      }, "both calls greeted and listening", 20_000);
      expect(calls.map((c) => c.providerCallId?.split("/")[0]).sort()).toEqual(["a", "b"]);
      expect(calls.every((c) => c.direction === "inbound" && c.from === "6001")).toBe(true);
      for (const call of calls) {
        for (const client of instances) {
          const status = (await client.call("voicecall.status", { callId: call.callId })) as { found: boolean; call?: { callId: string } };
          expect(status, `status of ${call.callId}`).toMatchObject({ found: true, call: { callId: call.callId } });
        }
      }
      for (const h of await phones) {
        expect(h.code, h.output.slice(-1500)).toBe(0);
        const words = await transcribePcm(h.heard, 8000);
        expect(wordErrorRate("Hello, you reached the voice agent.", words), words).toBeLessThanOrEqual(0.4);
      }
    } finally {
      tools.close();
    }
  }, 90_000);
});
