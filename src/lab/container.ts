/**
 * The PBX lab's container back-end: the lab image (asterisk/lab/Dockerfile:
 * the project's Asterisk image plus the lab's test endpoints and sipp) run
 * through testcontainers on the host network, for machines with a Docker
 * engine. The lab's tools run in the container (docker exec); a host folder
 * is its /tmp, so files the tests write there are the container's.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { acquireLabLock, type LabLock } from "./lock.js";
import { ariHeaders, ariUnanswered, labInfo, labLockPath, labSlot, labVariables, waitForAri, type LabInfo, type LabOptions } from "./config.js";
import type { ExecResult, Lab, LabTools } from "./lab.js";

/** The lab image .ci/docker.sh builds (asterisk/lab/Dockerfile on the project's Asterisk image). */
export const LAB_IMAGE = "voicecall-asterisk-lab:local";
/** Containers this back-end starts carry this label (a lab another process started is found by it). */
/** Marks lab containers; its value is the container's slot. */
export const LAB_LABEL = "openclaw-voice-call.lab";

function docker(args: string[], timeoutMs = 30_000): ExecResult {
  const r = spawnSync("docker", args, { encoding: "utf8", timeout: timeoutMs });
  if (r.error) return { code: null, stdout: "", stderr: r.error.message };
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Why the container back-end cannot run here, or undefined when it can. */
export function containerUnavailableReason(image = LAB_IMAGE): string | undefined {
  try {
    createRequire(import.meta.url).resolve("testcontainers");
  } catch {
    return "the testcontainers package is not installed (a development dependency: npm install in a clone)";
  }
  const info = docker(["info", "--format", "{{.ServerVersion}}"], 10_000);
  if (info.code === null) return `no docker command (${info.stderr.trim()})`;
  if (info.code !== 0) return `no Docker engine answers${process.env.DOCKER_HOST ? ` at DOCKER_HOST=${process.env.DOCKER_HOST}` : ""} (${lastLine(info.stderr)})`;
  if (docker(["image", "inspect", image], 10_000).code !== 0) return `the lab image ${image} is not built (bash .ci/docker.sh up builds it)`;
  return undefined;
}

/** The host folder a lab container has as its /tmp ("" when it has none). */
function sharedTmpOf(id: string): string {
  return docker(["inspect", "-f", '{{range .Mounts}}{{if eq .Destination "/tmp"}}{{.Source}}{{end}}{{end}}', id]).stdout.trim();
}

/** `inside` (under /tmp) in the host folder mounted there. */
function sharedTmpPath(tmp: string, inside: string): string {
  const rest = relative("tmp", inside.replace(/^\/+/, ""));
  if (rest.startsWith("..")) throw new Error(`only paths under /tmp are shared with the lab container, not ${inside}`);
  return join(tmp, rest);
}

/**
 * The lab's tools (sipp) in one-off containers of the lab image on the host
 * network, for a PBX the lab did not start (a docker-compose deployment):
 * the lab phone then calls it from the host.
 */
export function labImageTools(image = LAB_IMAGE): LabTools & { close(): void } {
  const tmp = mkdtempSync(join(tmpdir(), "voicecall-phone-"));
  return {
    hostPath: (inside) => sharedTmpPath(tmp, inside),
    spawn: (command, args) =>
      spawn("docker", ["run", "--rm", "-i", "--network", "host", "-v", `${tmp}:/tmp`, "--entrypoint", command, image, ...args], { stdio: ["pipe", "pipe", "pipe"] }),
    close: () => rmSync(tmp, { recursive: true, force: true }),
  };
}

function lastLine(text: string): string {
  return text.trim().split("\n").pop() ?? "";
}

export class ContainerLab implements Lab {
  readonly backend = "container" as const;
  readonly info: LabInfo;
  private readonly id: string;
  private readonly tmp: string;
  private readonly stopContainer: () => Promise<unknown>;
  private lock: LabLock | null = null;
  private stopped = false;

  private constructor(id: string, tmp: string, info: LabInfo, stopContainer: () => Promise<unknown>) {
    this.id = id;
    this.tmp = tmp;
    this.info = info;
    this.stopContainer = stopContainer;
  }

  /** Starts the lab image (host network, the lab's ports), waits for ARI and for every module to load. */
  static async start(options: LabOptions = {}): Promise<ContainerLab> {
    const image = options.image ?? LAB_IMAGE;
    const slot = labSlot(options);
    const lock = await acquireLabLock(labLockPath(slot), options.waitForLabMs ?? 0, (pid) =>
      options.onProgress?.(`waiting for the lab that process ${pid} runs to stop`),
    );
    const tmp = mkdtempSync(join(tmpdir(), "voicecall-lab-"));
    try {
      const info = labInfo("container", options, "");
      // We hold the lab lock: a lab container still here was left by a process that died, and holds the lab's ports.
      const leftover = docker(["ps", "-aq", "--filter", `label=${LAB_LABEL}=${slot}`]).stdout.trim().split("\n").filter(Boolean);
      if (options.adoptLeftover && leftover.length === 1) {
        const adopted = await ContainerLab.adopt(leftover[0]!, info, options.onProgress);
        if (adopted) {
          rmSync(tmp, { recursive: true, force: true });
          adopted.lock = lock;
          return adopted;
        }
      }
      if (leftover.length) docker(["rm", "-f", ...leftover]);
      // The lab cleans up after itself (above, and at stop), so testcontainers' reaper (an image pulled from a
      // registry) is not needed; the lab uses the host network, so the engine's address is never looked up
      // (on a machine that is itself a container, testcontainers would otherwise look for a bridge network).
      process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";
      process.env.TESTCONTAINERS_HOST_OVERRIDE ??= "localhost";
      const { GenericContainer, Wait } = await import("testcontainers");
      options.onProgress?.(`starting ${image} (host network)`);
      const t0 = performance.now();
      const started = await new GenericContainer(image)
        // No bridge on the machines this runs on, so no port mapping: the lab's loopback ports, as the chroot lab's.
        .withNetworkMode("host")
        .withEnvironment(labVariables(info))
        .withBindMounts([{ source: tmp, target: "/tmp", mode: "rw" }])
        .withLabels({ [LAB_LABEL]: String(slot) })
        .withWaitStrategy(Wait.forLogMessage("Asterisk Ready."))
        .withStartupTimeout(60_000)
        .start()
        .catch((err: Error) => {
          throw new Error(`the lab container did not start (${image}): ${err.message}`);
        });
      const lab = new ContainerLab(started.getId(), tmp, info, () => started.stop({ timeout: 5000 }));
      lab.lock = lock;
      try {
        await lab.ready();
        options.onProgress?.(`${lab.info.version} answering ARI ${Math.round(performance.now() - t0)} ms after the start`);
      } catch (err) {
        await lab.stop();
        throw err;
      }
      return lab;
    } catch (err) {
      lock.release();
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Takes over the lab container a process that died left running: only when
   * it runs on exactly this lab's variables and its ARI answers with this
   * lab's credentials. Stopping it then removes it, as for one we started.
   */
  private static async adopt(id: string, info: LabInfo, onProgress?: (line: string) => void): Promise<ContainerLab | undefined> {
    if (docker(["inspect", "-f", "{{.State.Running}}", id]).stdout.trim() !== "true") return undefined;
    const env = new Set(docker(["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", id]).stdout.split("\n"));
    if (!Object.entries(labVariables(info)).every(([key, value]) => env.has(`${key}=${value}`))) return undefined;
    const tmp = sharedTmpOf(id);
    if (!tmp || (await ariUnanswered(info, 2000)) !== undefined) return undefined;
    const lab = new ContainerLab(id, tmp, info, async () => {
      docker(["stop", "-t", "5", id]);
      docker(["rm", "-f", id]);
    });
    lab.info.version = lab.asteriskVersion();
    onProgress?.(`took over the lab container an earlier run left running (${id.slice(0, 12)}), with its calls`);
    return lab;
  }

  /** The lab container another process started on this machine, if one runs. */
  static attach(options: LabOptions = {}): ContainerLab | undefined {
    if (docker(["info", "--format", "{{.ServerVersion}}"], 10_000).code !== 0) return undefined;
    const id = docker(["ps", "-q", "--filter", `label=${LAB_LABEL}=${labSlot(options)}`]).stdout.trim().split("\n")[0];
    if (!id) return undefined;
    const tmp = sharedTmpOf(id);
    if (!tmp) return undefined;
    const lab = new ContainerLab(id, tmp, labInfo("container", options, ""), async () => {});
    lab.info.version = lab.asteriskVersion();
    return lab;
  }

  async boot(): Promise<void> {
    const r = docker(["start", this.id]);
    if (r.code !== 0) throw new Error(`docker start ${this.id} failed: ${r.stderr.trim()}`);
    await this.ready();
  }

  async kill(): Promise<void> {
    docker(["kill", "--signal", "KILL", this.id]);
    docker(["wait", this.id]);
  }

  /** Stops and removes the container (a second stop does nothing). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.stopContainer();
    } finally {
      rmSync(this.tmp, { recursive: true, force: true });
      this.lock?.release();
      this.lock = null;
    }
  }

  exec(command: string, args: string[], options: { timeoutMs?: number } = {}): ExecResult {
    return docker(["exec", this.id, command, ...args], options.timeoutMs ?? 30_000);
  }

  spawn(command: string, args: string[]): ChildProcess {
    return spawn("docker", ["exec", "-i", this.id, command, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  }

  cli(command: string, timeoutMs?: number): string {
    return this.exec("asterisk", ["-C", "/etc/asterisk/asterisk.conf", "-rx", command], { timeoutMs }).stdout;
  }

  /** Paths under tmp/ are the container's /tmp (a host folder); nothing else of the container is on the host. */
  hostPath(inside: string): string {
    return sharedTmpPath(this.tmp, inside);
  }

  get log(): string {
    const r = docker(["logs", "--tail", "200", this.id]);
    return r.stdout + r.stderr;
  }

  get ariHeaders(): { authorization: string } {
    return ariHeaders(this.info);
  }

  private async ready(): Promise<void> {
    const running = () => (docker(["inspect", "-f", "{{.State.Running}}", this.id]).stdout.trim() === "true" ? undefined : "the lab container exited during start");
    await waitForAri(this.info, 20_000, running, () => this.log);
    // ARI can answer before every module (SIP among them) has loaded.
    this.cli("core waitfullybooted", 20_000);
    this.info.version = this.asteriskVersion();
  }

  private asteriskVersion(): string {
    return this.exec("asterisk", ["-V"]).stdout.trim();
  }
}
