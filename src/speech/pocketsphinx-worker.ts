/**
 * The recognition worker thread: owns every call's pocketsphinx decoder and
 * answers each request with the events it produced, in order per stream.
 */
import { parentPort } from "node:worker_threads";
import { SphinxDecoder } from "./pocketsphinx-decoder.js";
import type { WorkerReply, WorkerRequest } from "./pocketsphinx.js";

const decoders = new Map<number, SphinxDecoder>();
const port = parentPort!;

port.on("message", (msg: WorkerRequest) => {
  const reply = (r: Omit<WorkerReply, "id">) => port.postMessage({ id: msg.id, ...r } satisfies WorkerReply);
  try {
    switch (msg.op) {
      case "open":
        decoders.set(msg.id, new SphinxDecoder(msg.args));
        return reply({ events: [], opened: true });
      case "chunk": {
        const events = decoders.get(msg.id)?.process(msg.pcm) ?? [];
        if (events.length > 0) reply({ events });
        return;
      }
      case "expect":
        return reply({ events: decoders.get(msg.id)?.expect(msg.grammar) ?? [] });
      case "flush":
        return reply({ events: decoders.get(msg.id)?.endUtterance() ?? [] });
      case "end":
        return reply({ events: decoders.get(msg.id)?.endUtterance() ?? [], done: true });
      case "free":
        decoders.get(msg.id)?.free();
        decoders.delete(msg.id);
        return;
    }
  } catch (err) {
    reply({ events: [], done: true, error: err instanceof Error ? err.message : String(err) });
  }
});
