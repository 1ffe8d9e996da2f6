/**
 * What the docker-compose tests share: running a command, the compose
 * command this machine has (`docker compose` or `docker-compose`), why the
 * deployments cannot run here, and waiting for a probe.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { labUnavailableReason } from "../src/lab/lab.js";

export const ROOT = join(import.meta.dirname, "..");

export function run(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env }, timeout: timeoutMs });
  return { code: r.error ? null : r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? r.error.message : ""}` };
}

/** `docker compose` (v2) where the plugin is installed, else `docker-compose` (v1). */
export function composeCommand(): string[] | undefined {
  if (run("docker", ["compose", "version"], {}, 10_000).code === 0) return ["docker", "compose"];
  if (run("docker-compose", ["version"], {}, 10_000).code === 0) return ["docker-compose"];
  return undefined;
}

/** Why a deployment needing `images` cannot come up here, or undefined. */
export function composeUnavailableReason(compose: string[] | undefined, images: string[]): string | undefined {
  const engine = labUnavailableReason("container");
  // The lab image is one of the images checked below; a missing one is named there.
  if (engine && !engine.includes("is not built")) return engine;
  if (!compose) return "neither `docker compose` nor `docker-compose` is installed";
  const missing = images.filter((image) => run("docker", ["image", "inspect", image], {}, 10_000).code !== 0);
  if (missing.length) return `images not built: ${missing.join(", ")} (bash .ci/docker.sh up builds them)`;
  return undefined;
}

export async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
