/**
 * One running service per process. The gateway calls a plugin's register()
 * several times in one process (modes "full", "discovery", ...), each time on
 * a separately loaded copy of this module, so module state is not shared: the
 * service lives on globalThis under a registry symbol, and every copy's tool,
 * methods and background service find the same one.
 */
import type { RunningService } from "../server/service.js";

const KEY = Symbol.for("openclaw-voice-call.running-service");

interface Holder {
  running: Promise<RunningService> | null;
}

function holder(): Holder {
  const slot = globalThis as unknown as Record<symbol, Holder | undefined>;
  return (slot[KEY] ??= { running: null });
}

/** The process's service, started with `start` if none is running or starting. */
export function ensureService(start: () => Promise<RunningService>): Promise<RunningService> {
  const h = holder();
  if (!h.running) {
    const starting = start();
    h.running = starting;
    // A failed start leaves the slot free for the next attempt.
    starting.catch(() => {
      if (h.running === starting) h.running = null;
    });
  }
  return h.running;
}

/** Stops the process's service, once, whichever copy asks. */
export async function stopService(): Promise<void> {
  const h = holder();
  const current = h.running;
  h.running = null;
  if (!current) return;
  const service = await current.catch(() => null);
  await service?.close();
}
