/**
 * Whether this instance takes a new call now, and why not: a call log that
 * cannot be written, maxConcurrentCalls reached, a stopping (draining)
 * instance, and for inbound callers the inbound policy.
 */
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { StoreHealth } from "../store/records.js";

export class Admission {
  /** Stopping: calls in progress go on, new ones are refused (cluster.drainMs). */
  draining = false;

  constructor(
    private readonly config: VoiceCallConfig,
    private readonly store: { readonly health: StoreHealth },
    /** Calls not ended yet on this instance. */
    private readonly active: () => number,
    /** On a shared store: live calls of every instance with a lease, as the store has them. */
    private readonly clusterLive?: (except?: string) => Promise<number>,
  ) {}

  /** Whether new calls are also counted against cluster.maxConcurrentCalls (a shared store with the limit set). */
  get clusterLimited(): boolean {
    return this.clusterLive !== undefined && this.config.cluster.maxConcurrentCalls !== undefined;
  }

  /**
   * Why the cluster has no room for one more call (cluster.maxConcurrentCalls), or undefined; `except`: the
   * call asking, already in the store. Counted from
   * the store: a call another instance took in the last few milliseconds may not be in it yet. A store
   * that does not answer refuses nothing here (its own checks do).
   */
  async clusterRefusal(except?: string): Promise<string | undefined> {
    const limit = this.config.cluster.maxConcurrentCalls;
    if (!this.clusterLive || limit === undefined) return undefined;
    let live: number;
    try {
      live = await this.clusterLive(except);
    } catch {
      return undefined;
    }
    return live >= limit ? `cluster.maxConcurrentCalls (${limit}) reached across the instances` : undefined;
  }

  /** Throws LIMIT_REACHED when the cluster is full. */
  async assertClusterRoom(): Promise<void> {
    const refusal = await this.clusterRefusal();
    if (refusal) throw new VoiceCallError("LIMIT_REACHED", `${refusal}; end a call first`);
  }

  /** Throws why an outbound call cannot be placed now. */
  assertCanPlace(): void {
    if (this.draining) throw new VoiceCallError("UNAVAILABLE", "this instance is stopping (draining): calls in progress go on, new ones are refused; place it on another instance");
    this.assertStoreWritable();
    if (this.active() >= this.config.maxConcurrentCalls) {
      throw new VoiceCallError("LIMIT_REACHED", `maxConcurrentCalls (${this.config.maxConcurrentCalls}) reached; end a call first`);
    }
  }

  assertStoreWritable(): void {
    const { writable, reason } = this.store.health;
    if (!writable) throw new VoiceCallError("STORE_UNAVAILABLE", `no new calls while the call log cannot be written (${reason}); calls in progress go on`);
  }

  /** Why an inbound call from `from` to `to` is turned away, or undefined to answer it. `active` counts it already. */
  inboundRefusal(from: string, to: string): string | undefined {
    const override = this.config.numbers[to];
    const policy = override?.inboundPolicy ?? this.config.inboundPolicy;
    const allowFrom = override?.allowFrom ?? this.config.allowFrom;
    if (policy === "disabled") return "inbound calls are disabled (inboundPolicy)";
    if (policy === "allowlist" && !allowFrom.includes(from)) return "caller is not in allowFrom";
    if (policy === "pairing" && !allowFrom.includes(from)) return "caller is not paired (pairing codes are not offered over voice; add the number to allowFrom)";
    if (this.draining) return "this instance is stopping (draining)";
    if (this.active() > this.config.maxConcurrentCalls) return `maxConcurrentCalls (${this.config.maxConcurrentCalls}) reached`;
    if (!this.store.health.writable) return `the call log cannot be written (${this.store.health.reason})`;
    return undefined;
  }
}
