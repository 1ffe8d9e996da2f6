/**
 * Several instances on one Asterisk (a shared store). Asterisk gives each
 * Stasis app to one events connection (a second one replaces the first), so
 * each instance has an app of its own, `<app>-<nodeId>`, and the dialplan's
 * `Stasis(<app>)` is the entry: one instance (the cluster's first by name with
 * a lease) holds the entry app and moves each new caller into the app of the
 * instance with the most room (`POST /channels/{id}/move`). If that instance
 * goes, the next one takes the entry over; a caller arriving in between waits
 * in the dialplan's retry.
 *
 * Taking over a call from an instance that stopped: the caller's channel is
 * moved into this instance's app, and what the old instance had made for it
 * (its bridge, its media channel) is removed.
 */
import type { Logger } from "../../log.js";
import { AriClient, ignoreGone, type AriChannel } from "./ari.js";

/** The app an instance of a cluster has on Asterisk. */
export const nodeApp = (entryApp: string, nodeId: string) => `${entryApp}-${nodeId}`;

export class InboundDispatcher {
  private entry: AriClient | null = null;

  constructor(
    private readonly options: { url: string; username: string; password: string; entryApp: string; ownApp: string; log: Logger },
  ) {}

  /** Holds the entry app and hands callers out with `pick` (or, null, lets go of it). */
  set(pick: (() => Promise<string | undefined>) | null): void {
    if (!pick) {
      this.entry?.close();
      this.entry = null;
      return;
    }
    if (this.entry) return;
    const { url, username, password, entryApp, log } = this.options;
    const entry = new AriClient({ url, username, password, app: entryApp, logger: log });
    entry.onEvent((e) => {
      if (e.type === "StasisStart") void this.handOut(entry, e.channel, e.args, pick);
      // Another instance connected the entry app: it hands callers out now.
      else if (e.type === "ApplicationReplaced" && this.entry === entry) this.set(null);
    });
    entry.connectInBackground();
    this.entry = entry;
  }

  close(): void {
    this.set(null);
  }

  private async handOut(entry: AriClient, channel: AriChannel, args: string[], pick: () => Promise<string | undefined>): Promise<void> {
    const { entryApp, ownApp, log } = this.options;
    let node: string | undefined;
    try {
      node = await pick();
    } catch (err) {
      log.warn({ err: (err as Error).message }, "could not ask the store which instance has room; this one takes the call");
    }
    const apps = [...new Set([node ? nodeApp(entryApp, node) : ownApp, ownApp])];
    for (const app of apps) {
      try {
        await entry.channels.move(channel.id, app, args.join(","));
        log.debug({ channel: channel.id, app }, "handed a caller to an instance");
        return;
      } catch (err) {
        log.warn({ channel: channel.id, app, err: (err as Error).message }, "could not hand the caller to that instance");
      }
    }
    await entry.channels.hangup(channel.id, "congestion").catch(() => undefined);
  }
}

/** Removes what a stopped instance had made for a call: the bridges holding its channel, and their media channels. */
export async function clearLeftBehind(ari: AriClient, channelId: string, prefixes: { bridge: string; media: string }): Promise<void> {
  const bridges = (await ari.bridges.list()).filter((b) => b.channels.includes(channelId) && b.id.startsWith(prefixes.bridge));
  for (const bridge of bridges) {
    for (const ch of bridge.channels) if (ch.startsWith(prefixes.media)) await ignoreGone(ari.channels.hangup(ch));
    await ignoreGone(ari.bridges.destroy(bridge.id));
  }
}
