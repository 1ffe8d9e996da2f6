/**
 * What an Asterisk holds of this instance's that no live call owns: our
 * call channels still up from before a restart (they wait a while to be
 * taken back, then are hung up), and bridges and externalMedia channels
 * left behind by a crash. Ids of what we create carry the app name, so
 * only this instance's objects are touched, never another service's (or
 * another instance's) on the same Asterisk. Callers handed over to a
 * person (a transfer leg in their bridge) are theirs: never touched.
 */
import { ignoreGone, type AriBridge, type AriChannel, type AriClient } from "./ari.js";
import type { AsteriskTransfers } from "./transfer.js";

/** How long our calls found up at start wait to be taken back before they are hung up. */
const ADOPTION_WINDOW_MS = 30_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type OwnKind = "call" | "media" | "bridge";

/** What this instance's live calls own in Asterisk. */
export interface Owned {
  calls: ReadonlySet<string>;
  media: ReadonlySet<string>;
  bridges: ReadonlySet<string>;
}

export class AsteriskLeftovers {
  /** Our call channels found up at start (from before a restart), until taken back or hung up. */
  private readonly adoptable = new Set<string>();

  constructor(
    private readonly ari: AriClient,
    /** What this instance names its calls, media channels and bridges. */
    private readonly prefix: Record<OwnKind, string>,
    private readonly transfers: AsteriskTransfers,
    /** On a shared store another instance may have taken a call of ours over: the store says whose, so no call channel is ours to hang up here. */
    private readonly clustered: boolean,
    private readonly background: (work: Promise<unknown>, what: string) => void,
  ) {}

  /**
   * Whether an id is one this instance made: its prefix, then the uuid (so an instance named "a" does not
   * take the objects of one named "a-b" for its own).
   */
  ours(id: string, kind: OwnKind): boolean {
    const prefix = this.prefix[kind];
    return id.startsWith(prefix) && UUID.test(id.slice(prefix.length));
  }

  /** At the first connection: our calls still up wait ADOPTION_WINDOW_MS to be taken back (`take`), then are hung up. */
  async collect(): Promise<void> {
    if (this.clustered) return;
    const transferred = this.transferred(await this.ari.bridges.list());
    for (const ch of await this.ari.channels.list()) if (this.ours(ch.id, "call") && !transferred.has(ch.id)) this.adoptable.add(ch.id);
    if (this.adoptable.size === 0) return;
    setTimeout(() => {
      const left = [...this.adoptable];
      this.adoptable.clear();
      for (const id of left) this.background(ignoreGone(this.ari.channels.hangup(id)), "hanging up a call nobody took back");
    }, ADOPTION_WINDOW_MS).unref();
  }

  /** Callers handed over to a person: the channels in a bridge with a transfer leg. */
  private transferred(bridges: AriBridge[]): Set<string> {
    return new Set(bridges.filter((b) => this.transfers.keeps(b)).flatMap((b) => b.channels));
  }

  /** A call taken back: no longer waiting to be hung up. */
  take(channelId: string): void {
    this.adoptable.delete(channelId);
  }

  /** Removes our media channels, call channels (alone) and bridges among `channels` that no live call owns. */
  async sweep(channels: AriChannel[], owned: Owned): Promise<void> {
    const bridges = await this.ari.bridges.list();
    const transferred = this.transferred(bridges);
    for (const ch of channels) {
      if (transferred.has(ch.id)) continue;
      if (this.ours(ch.id, "media") && !owned.media.has(ch.id)) await ignoreGone(this.ari.channels.hangup(ch.id));
      else if (!this.clustered && this.ours(ch.id, "call") && !owned.calls.has(ch.id) && !this.adoptable.has(ch.id)) await ignoreGone(this.ari.channels.hangup(ch.id));
    }
    for (const bridge of bridges) {
      // A transferred call's bridge is the caller's and the person's now.
      if (this.ours(bridge.id, "bridge") && !owned.bridges.has(bridge.id) && !this.transfers.keeps(bridge)) await ignoreGone(this.ari.bridges.destroy(bridge.id));
    }
  }
}
