/**
 * This instance among others on a shared store: it renews its lease every
 * third of `cluster.leaseMs`, takes over the live calls of instances whose
 * lease ran out (as many as it has room for), and, when it is the first
 * instance by name with a lease, takes the PBX's new inbound calls and hands
 * each to the instance with the most room.
 *
 * A database that does not answer stops none of it from going on: the renewal
 * is tried again at the next tick, calls in progress go on, and (the lease
 * having run out meanwhile) another instance may take the calls over; this
 * one's later writes for them are then refused by the store, and it is told.
 */
import type { ProviderId, VoiceCallConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { CallProvider } from "../providers/types.js";
import type { PostgresStore } from "../store/postgres.js";
import { describePgError } from "../store/postgres.js";
import type { CallManager } from "./manager.js";

export class ClusterMember {
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private taking: Promise<void> | null = null;
  private leader = false;
  private stopped = false;
  /** Stopping: no room for new calls or take-overs, and the PBX's entry left to another instance. */
  private draining = false;
  private lastFailure: string | undefined;
  private listening: string | undefined;

  /** Where this instance's control API answers (cluster.address, else what the service listens on). */
  get address(): string | undefined {
    return this.listening;
  }

  /** Known once the service listens: renewed at once, so the others can reach this instance from now on. */
  set address(url: string | undefined) {
    this.listening = url;
    if (this.timer) void this.tickOnce();
  }

  constructor(
    private readonly store: PostgresStore,
    private readonly manager: CallManager,
    private readonly providers: ReadonlyMap<ProviderId, CallProvider>,
    private readonly config: VoiceCallConfig,
    private readonly log: Logger,
  ) {}

  /** The first renewal (so the other instances see this one at once), then the timer. */
  async start(): Promise<void> {
    await this.tick();
    const every = Math.max(300, Math.floor(this.config.cluster.leaseMs / 3));
    this.timer = setInterval(() => void this.tickOnce(), every);
    this.timer.unref();
  }

  /** The instance is stopping: the others see it with no room at once (no callers handed to it, none of its own taken), and one of them takes the PBX's entry. */
  async drain(): Promise<void> {
    this.draining = true;
    await this.tickOnce();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    await this.taking;
    this.setLeader(false);
  }

  private tickOnce(): Promise<void> {
    this.ticking ??= this.tick().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let live: string[];
    try {
      const address = this.config.cluster.address ?? this.address;
      const capacity = this.draining ? 0 : this.config.maxConcurrentCalls;
      live = await this.store.renewLease(this.config.cluster.leaseMs, { capacity, ...(address ? { address } : {}) });
    } catch (err) {
      const reason = describePgError(err);
      if (reason !== this.lastFailure) this.log.error({ reason }, "could not renew this instance's lease; its calls go on, but another instance may take them over");
      this.lastFailure = reason;
      return;
    }
    if (this.lastFailure) this.log.info("this instance's lease is renewed again");
    this.lastFailure = undefined;
    this.setLeader(!this.draining && live[0] === this.store.nodeId);
    // Beside the renewals, never in their way: taking a call back talks to its carrier and can take seconds.
    this.taking ??= this.takeOver().finally(() => (this.taking = null));
  }

  private async takeOver(): Promise<void> {
    const room = this.config.maxConcurrentCalls - this.manager.activeCalls;
    if (room <= 0 || this.stopped || this.draining) return;
    try {
      const claimed = await this.store.claimOrphaned(room);
      if (claimed.calls.size === 0) return;
      this.log.warn({ calls: claimed.calls.size, from: [...new Set(claimed.from.values())] }, "taking over the live calls of instances whose lease ran out");
      await this.manager.takeOver(claimed);
    } catch (err) {
      this.log.error({ reason: describePgError(err) }, "taking over calls failed; tried again at the next renewal");
    }
  }

  private setLeader(leader: boolean): void {
    if (leader !== this.leader) {
      this.log.info({ nodeId: this.store.nodeId }, leader ? "this instance takes the PBX's new inbound calls and hands them out" : "another instance takes the PBX's new inbound calls");
    }
    this.leader = leader;
    // Told at every renewal, not only on a change: a carrier whose entry another instance took for a while takes it back.
    const pick = leader ? () => this.store.pickNode() : null;
    for (const provider of this.providers.values()) provider.dispatchInbound?.(pick);
  }
}
