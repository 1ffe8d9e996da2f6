/**
 * A carrier's own recording of a transferred call (our audio has left it),
 * brought beside ours: fetched once the carrier says it is complete,
 * written where the call's record says, and the record told its duration
 * and size, or why not (the file then stays with the carrier).
 */
import { writeFile } from "node:fs/promises";
import { wavDurationMs } from "../speech/wav.js";
import type { TransferRequest } from "./types.js";

export type TransferRecording = NonNullable<TransferRequest["record"]>;

export async function keepCarrierRecording(record: TransferRecording, fetchWav: () => Promise<Buffer>, options: { carrier: string; durationMs?: number }): Promise<void> {
  let wav: Buffer;
  try {
    wav = await fetchWav();
  } catch (err) {
    return record.done({ failed: `could not fetch ${options.carrier}'s recording: ${(err as Error).message} (it stays with ${options.carrier})` });
  }
  try {
    await writeFile(record.path, wav);
  } catch (err) {
    return record.done({ failed: `could not write ${record.path}: ${(err as Error).message} (${options.carrier}'s recording stays with ${options.carrier})` });
  }
  const durationMs = wavDurationMs(wav) ?? options.durationMs;
  record.done({ ...(durationMs !== undefined ? { durationMs } : {}), bytes: wav.length });
}

/** GETs a recording's bytes; an HTTP error is thrown with its status. */
export async function fetchBytes(url: string, headers: Record<string, string> = {}): Promise<Buffer> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}
