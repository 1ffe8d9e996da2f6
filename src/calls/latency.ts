/**
 * Turn latency from the store: for every reply we gave, the time from the
 * caller's last words before it (their final transcript line) to the moment
 * our reply started (its transcript line, written as speaking begins). Turns
 * whose reply was interrupted count too; replies with no caller words
 * before them (greetings, notify messages) do not, and neither do lines the
 * service says by itself (the notice that nobody can answer): those are not
 * replies anyone waited for.
 */
import { percentile } from "../util/stats.js";
import type { LoadedStore } from "../store/records.js";
import type { TranscriptEntry } from "./types.js";

import { UNATTENDED_MESSAGE } from "./session.js";

/** Not the service's own notice (in logs written before lines carried their origin, recognised by its words). */
const isReply = (e: TranscriptEntry) => e.origin !== "service" && !(e.origin === undefined && e.text === UNATTENDED_MESSAGE);

export interface LatencyReport {
  calls: number;
  turns: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function turnLatencies(loaded: LoadedStore): { calls: number; samples: number[] } {
  const samples: number[] = [];
  let calls = 0;
  for (const entries of loaded.transcripts.values()) {
    let callerAt: number | undefined;
    let counted = false;
    for (const entry of entries) {
      if (entry.speaker === "caller" && entry.kind === "speech") callerAt = Date.parse(entry.at);
      else if (entry.speaker === "bot" && entry.kind === "speech" && isReply(entry) && callerAt !== undefined) {
        samples.push(Math.max(0, Date.parse(entry.at) - callerAt));
        callerAt = undefined;
        counted = true;
      }
    }
    if (counted) calls += 1;
  }
  return { calls, samples };
}

export function latencyReport(loaded: LoadedStore): LatencyReport {
  const { calls, samples } = turnLatencies(loaded);
  return {
    calls,
    turns: samples.length,
    p50Ms: percentile(samples, 0.5),
    p95Ms: percentile(samples, 0.95),
    p99Ms: percentile(samples, 0.99),
    maxMs: samples.length ? Math.max(...samples) : 0,
  };
}
