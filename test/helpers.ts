import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CallManager } from "../src/calls/manager.js";
import { JsonlStore } from "../src/store/jsonl.js";
import { resolveConfig } from "../src/configure.js";
import type { ProviderId, VoiceCallConfig } from "../src/config/schema.js";
import { VoiceCallError } from "../src/errors.js";
import { createLogger } from "../src/log.js";
import { createProviders } from "../src/providers/index.js";
import { MockProvider } from "../src/providers/mock/provider.js";
import { startService, type RunningService } from "../src/server/service.js";

export function tempDir(prefix = "voicecall-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function makeConfig(raw: Record<string, unknown> = {}, storeDir = tempDir()): VoiceCallConfig {
  return resolveConfig({ store: storeDir, log: { level: "silent" }, ...raw }).config;
}

export interface Harness {
  manager: CallManager;
  mock: MockProvider;
  config: VoiceCallConfig;
  storeDir: string;
}

/** A started CallManager over the Mock carrier with its own store folder. */
export async function startManager(raw: Record<string, unknown> = {}, storeDir = tempDir()): Promise<Harness> {
  const config = makeConfig(raw, storeDir);
  const providers = createProviders(config, { logger: createLogger("silent") });
  const { store, loaded } = JsonlStore.open(storeDir);
  const manager = new CallManager({ config, providers, store, loaded, logger: createLogger("silent") });
  await manager.start();
  return { manager, mock: providers.get("mock") as MockProvider, config, storeDir };
}

export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probed = probe();
    const value = await probed;
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    // A probe that asks a server (a promise) is not sent a hundred times a second.
    await new Promise((r) => setTimeout(r, probed instanceof Promise ? 100 : 10));
  }
}

/** The typed error a promise rejects with (fails the test when it resolves, or rejects with anything else). */
export async function errorOf(p: Promise<unknown>): Promise<VoiceCallError> {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof VoiceCallError)) throw new Error(`expected a VoiceCallError, got ${String(err)}`);
    return err;
  }
  throw new Error("expected a rejection");
}

/** A loopback port free right now (for a service whose public URL must name its port before it listens). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * A service for one cloud carrier whose SDK talks to a local fake of its API
 * (`apiBaseUrl`), with its webhook on a free loopback port; `raw` adds the
 * carrier's keys and the test's settings.
 */
export async function startCloudService(
  provider: ProviderId,
  apiBaseUrl: string,
  raw: Record<string, unknown>,
  storeDir = tempDir(),
): Promise<{ service: RunningService; webhookUrl: string }> {
  const port = await freePort();
  const webhookUrl = `http://127.0.0.1:${port}/voice/webhook`;
  const config = makeConfig({ provider, publicUrl: webhookUrl, serve: { port, bind: "127.0.0.1" }, ...raw }, storeDir);
  const service = await startService(config, createLogger("silent"), { apiBaseUrls: { [provider]: apiBaseUrl } });
  return { service, webhookUrl };
}

/** Resolves once `line` has been said on the call and it is listening again. */
export function saidAndListening(manager: CallManager, callId: string, line: string): Promise<true> {
  return waitFor(() => {
    const call = manager.getCall(callId);
    return call?.state === "listening" && call.transcript.some((l) => l.speaker === "bot" && l.text === line) ? true : undefined;
  }, `"${line}" played`, 15_000);
}
