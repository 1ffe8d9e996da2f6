/**
 * Opens the store the config names: the JSONL log in a folder (the default),
 * or a PostgreSQL database shared by several instances.
 */
import { nodeIdOf, storeSettings } from "../config/load.js";
import type { VoiceCallConfig } from "../config/schema.js";
import { JsonlStore } from "./jsonl.js";
import { PostgresStore } from "./postgres.js";
import type { LoadedStore, OpenedStore, StoreOptions } from "./records.js";

export type { CallRepository, LoadedStore, OpenedStore, StoreHealth, StoreOptions } from "./records.js";
export { JsonlStore } from "./jsonl.js";
export { PostgresStore } from "./postgres.js";

export async function openStore(config: VoiceCallConfig, options: StoreOptions = {}): Promise<OpenedStore> {
  const settings = storeSettings(config);
  if (settings.kind === "jsonl") return JsonlStore.open(settings.dir, options);
  return PostgresStore.open(settings, { ...options, nodeId: nodeIdOf(config) });
}

/** What the store holds, read only (for reports): nothing is created or migrated in a folder. */
export async function readStore(config: VoiceCallConfig): Promise<LoadedStore> {
  const settings = storeSettings(config);
  return settings.kind === "jsonl" ? JsonlStore.read(settings.dir) : PostgresStore.read(settings, config.keepEndedCalls);
}
