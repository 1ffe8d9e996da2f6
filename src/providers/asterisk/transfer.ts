/**
 * Blind transfers on Asterisk, over ARI: the person is dialled into our
 * Stasis app; once their channel enters it (they answered), it joins the
 * caller's bridge in place of our externalMedia channel, and the two talk
 * through Asterisk. Channels in an ARI bridge stay in the app, so this
 * keeps which two belong together and, when one of them leaves, hangs up
 * the other and removes the bridge. After a restart (the pairs were in
 * memory only) a pair's bridge is found by its transfer leg and left alone;
 * then, when one of them hangs up, the other stays in the silent bridge
 * until they hang up too. A warm transfer's person is briefed first, on a
 * line of their own (../warm-transfer.ts). A recorded call's bridge is recorded by
 * Asterisk once we leave it, and the file fetched when it goes.
 */
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import type { Logger } from "../../log.js";
import { wavDurationMs } from "../../speech/wav.js";
import type { TransferOutcome, TransferRequest } from "../types.js";
import { AriError, type AriClient } from "./ari.js";

/** A transferred call's recording stops after this long whatever happens (Asterisk's own bound). */
const MAX_RECORDING_SECONDS = 4 * 3600;

export type DialResult = { legId: string; answered: true } | { legId: string; answered: false; cause: number; causeText: string };

/** Q.850 causes of a dial that was not answered, as a transfer's outcome. */
export function transferOutcome(cause: number): TransferOutcome {
  if (cause === 17) return "busy";
  if (cause === 18 || cause === 19) return "no-answer";
  if (cause === 21) return "declined";
  return "failed";
}

export class AsteriskTransfers {
  /** Legs being dialled: told when the person answers or the dial ends. */
  private readonly dialling = new Map<string, (result: DialResult) => void>();
  /** Handed-over calls: each channel of a pair, with its bridge and the other channel. */
  private readonly pairs = new Map<string, { bridgeId: string; other: string }>();
  /** Bridges of recorded calls being recorded by Asterisk: the recording's name, and where its file goes. */
  private readonly recordings = new Map<string, { name: string; record: NonNullable<TransferRequest["record"]> }>();

  constructor(
    private readonly ari: AriClient,
    /** Ids of transfer legs start with this (ours, on a shared Asterisk). */
    readonly legPrefix: string,
    private readonly log: Logger,
  ) {}

  /** Dials `endpoint` into the app; resolves once the person answers or the dial ends (busy, unanswered, refused). */
  async dial(endpoint: string, options: { callerId?: string; timeoutSec: number }): Promise<DialResult> {
    const legId = `${this.legPrefix}${randomUUID()}`;
    const done = new Promise<DialResult>((resolve) => this.dialling.set(legId, resolve));
    try {
      await this.ari.channels.originate({ endpoint, channelId: legId, appArgs: "transfer", ...(options.callerId ? { callerId: options.callerId } : {}), timeoutSec: options.timeoutSec });
    } catch (err) {
      this.dialling.delete(legId);
      const status = err instanceof AriError ? err.status : 0;
      return { legId, answered: false, cause: 0, causeText: status === 500 ? `Asterisk could not dial ${endpoint} (no such endpoint, or it has no registered contact)` : (err as Error).message };
    }
    return done;
  }

  /** The person's channel entered the app: they answered. True when it was a transfer leg. */
  entered(channelId: string): boolean {
    const resolve = this.dialling.get(channelId);
    if (!resolve) return channelId.startsWith(this.legPrefix);
    this.dialling.delete(channelId);
    resolve({ legId: channelId, answered: true });
    return true;
  }

  /**
   * The caller and the person are in `bridgeId`, without us; a recorded call
   * goes on being recorded (the bridge's mix), from before the transfer is
   * reported done, so their first words are in it.
   */
  async handOver(callerId: string, legId: string, bridgeId: string, record?: TransferRequest["record"]): Promise<void> {
    this.pairs.set(callerId, { bridgeId, other: legId });
    this.pairs.set(legId, { bridgeId, other: callerId });
    if (record) await this.recordBridge(bridgeId, record);
  }

  private async recordBridge(bridgeId: string, record: NonNullable<TransferRequest["record"]>): Promise<void> {
    const name = `${this.legPrefix}rec-${randomUUID()}`;
    try {
      await this.ari.bridges.record(bridgeId, name, MAX_RECORDING_SECONDS);
      this.recordings.set(bridgeId, { name, record });
    } catch (err) {
      record.done({
        failed: `Asterisk did not record the bridge: ${(err as Error).message} (it needs format_wav, chan_bridge_media and res_ari_recordings loaded, and its spool's recording folder)`,
      });
    }
  }

  /**
   * The bridge is gone, so its recording is finished: its file comes from
   * Asterisk's spool (over ARI, so a PBX on another host works the same) to
   * `path`, and leaves the spool. Asterisk closes the file a moment after
   * the bridge goes: a missing one is asked for again for a few seconds.
   */
  private async collect(bridgeId: string): Promise<void> {
    const rec = this.recordings.get(bridgeId);
    if (!rec) return;
    this.recordings.delete(bridgeId);
    const { name, record } = rec;
    let last = "";
    for (let attempt = 0; attempt < 15; attempt += 1) {
      let wav: Buffer;
      try {
        wav = await this.ari.recordings.file(name);
      } catch (err) {
        last = (err as Error).message;
        if (!(err instanceof AriError) || err.status !== 404) break;
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      try {
        await writeFile(record.path, wav);
      } catch (err) {
        // A full disk here: the recording stays in Asterisk's spool, where it can still be had.
        return record.done({ failed: `could not write ${record.path}: ${(err as Error).message} (kept in Asterisk's spool as ${name}.wav)` });
      }
      await this.ari.recordings.delete(name).catch((err: unknown) => this.log.warn({ name, err: String(err) }, "could not remove a recording from Asterisk's spool"));
      const durationMs = wavDurationMs(wav);
      return record.done({ ...(durationMs !== undefined ? { durationMs } : {}), bytes: wav.length });
    }
    record.done({ failed: `Asterisk's recording of the transferred call was not found (${last})` });
  }

  /** A channel left or was destroyed. True when it was a transfer leg or one side of a pair (then handled here). */
  gone(channelId: string, cause: number, causeText: string): boolean {
    const resolve = this.dialling.get(channelId);
    if (resolve) {
      this.dialling.delete(channelId);
      resolve({ legId: channelId, answered: false, cause, causeText });
      return true;
    }
    const pair = this.pairs.get(channelId);
    // A leg answered and not yet handed over (a warm transfer's person being briefed) is a line of the carrier's own.
    if (!pair) return false;
    this.pairs.delete(channelId);
    this.pairs.delete(pair.other);
    this.log.info({ channel: channelId, cause }, "one side of a transferred call hung up; ending the other");
    void Promise.allSettled([this.ari.channels.hangup(pair.other, "normal"), this.ari.bridges.destroy(pair.bridgeId)]).then(() => this.collect(pair.bridgeId));
    return true;
  }

  /** Whether a bridge or channel belongs to a transfer (kept by the clean-up after a reconnect or restart). */
  keeps(bridge: { id: string; channels: string[] }): boolean {
    return bridge.channels.some((c) => c.startsWith(this.legPrefix) || this.pairs.has(c)) || [...this.pairs.values()].some((p) => p.bridgeId === bridge.id);
  }
}
