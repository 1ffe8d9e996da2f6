/**
 * The recognition worker thread: a pool of pocketsphinx decoders lent to the
 * calls' utterances (see pocketsphinx-pool.ts); answers each stream with the
 * events it produced, in order per stream.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SphinxDecoder } from "./pocketsphinx-decoder.js";
import { DecoderPool } from "./pocketsphinx-pool.js";
import type { WorkerReply, WorkerRequest } from "./pocketsphinx.js";

const port = parentPort!;
const { decoders, maxWaitingSeconds } = workerData as { decoders: number; maxWaitingSeconds: number };
const pool = new DecoderPool({
  create: (args) => new SphinxDecoder(args),
  maxDecoders: decoders,
  maxWaitingSamples: maxWaitingSeconds * 16000,
  sampleRate: 16000,
  emit: (id, events, done) => port.postMessage({ id, events, ...(done ? { done } : {}) } satisfies WorkerReply),
});

port.on("message", (msg: WorkerRequest) => {
  try {
    switch (msg.op) {
      case "open":
        pool.open(msg.id, msg.args);
        port.postMessage({ id: msg.id, events: [], opened: true } satisfies WorkerReply);
        return;
      case "chunk":
        return pool.chunk(msg.id, msg.pcm);
      case "expect":
        return pool.expect(msg.id, msg.grammar);
      case "flush":
        return pool.flush(msg.id);
      case "end":
        return pool.end(msg.id);
      case "free":
        return pool.free(msg.id);
    }
  } catch (err) {
    port.postMessage({ id: msg.id, events: [], done: true, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply);
  }
});
