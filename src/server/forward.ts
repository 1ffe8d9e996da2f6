/**
 * On a shared store, any instance answers for any call: a method naming a
 * call this instance does not hold is sent to the instance that does (its
 * address from the store, where each instance keeps it with its lease), over
 * the control API with the cluster's shared token, and its answer is passed
 * back as it came. A forwarded request is never forwarded again. Operations
 * (`continue.start`) started on another instance carry its name in their id,
 * so `continue.result` finds them from anywhere.
 */
import { VoiceCallError } from "../errors.js";
import type { PostgresStore } from "../store/postgres.js";
import { VoiceCallClient } from "./client.js";
import type { MethodName } from "./methods.js";

/** Methods whose params name a call (callId, or status's `sid`). */
const BY_CALL: ReadonlySet<MethodName> = new Set<MethodName>([
  "voicecall.continue",
  "voicecall.continue.start",
  "voicecall.speak",
  "voicecall.dtmf",
  "voicecall.end",
  "voicecall.transfer",
  "voicecall.status",
  "voicecall.recording",
]);

/** The header a forwarded request carries (it is answered where it lands). */
export const FORWARDED_HEADER = "x-voicecall-forwarded";

export class CallForwarder {
  token: string | undefined;

  constructor(private readonly store: PostgresStore) {}

  /** The call a method's params name, if it is one that names a call. */
  static callOf(method: MethodName, params: Record<string, unknown>): string | undefined {
    if (!BY_CALL.has(method)) return undefined;
    const id = params.callId ?? params.sid;
    return typeof id === "string" ? id : undefined;
  }

  /** Sends the method to the instance that holds `callId`; undefined when no other live instance does. */
  async forward(method: MethodName, params: Record<string, unknown>, callId: string): Promise<{ result: unknown } | undefined> {
    const owner = await this.store.ownerOf(callId).catch(() => undefined);
    if (!owner) return undefined;
    return { result: await this.send(owner, method, params) };
  }

  /** The other live instance holding the call a carrier's webhook names (its ids), for the ingress to hand it over. */
  ownerOfProviderCall(providerCallIds: string[]): Promise<{ nodeId: string; address: string | null; leased: boolean } | undefined> {
    return this.store.ownerOfProviderCall(providerCallIds);
  }

  /**
   * Every other instance's call events, until `signal` aborts: each instance with a lease is followed on
   * its own event stream (asked as forwarded, so it sends only its own calls' events); one that goes is
   * dropped, one that appears is followed, looked for every `everyMs`.
   */
  async relayEvents(send: (event: { type: string }) => void, signal: AbortSignal, everyMs = 2000): Promise<void> {
    const following = new Set<string>();
    while (!signal.aborted) {
      const peers = await this.store.peers().catch(() => []);
      for (const peer of peers) {
        if (following.has(peer.nodeId)) continue;
        following.add(peer.nodeId);
        void this.follow(peer, send, signal).finally(() => following.delete(peer.nodeId));
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, everyMs);
        signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
  }

  private async follow(peer: { nodeId: string; address: string }, send: (event: { type: string }) => void, signal: AbortSignal): Promise<void> {
    const client = new VoiceCallClient({ url: peer.address, ...(this.token ? { token: this.token } : {}), headers: { [FORWARDED_HEADER]: "1" } });
    try {
      for await (const event of client.events(signal)) send(event as { type: string });
    } catch {
      // Gone, or refused this instance's token: followed again at the next look if it still has a lease.
    }
  }

  /** continue.result for an operation another instance started ("<nodeId>/<id>"); undefined when it is ours. */
  async forwardOperation(operationId: string): Promise<{ result: unknown } | undefined> {
    const slash = operationId.indexOf("/");
    if (slash < 0) return undefined;
    const nodeId = operationId.slice(0, slash);
    if (nodeId === this.store.nodeId) return undefined;
    const owner = await this.store.addressOf(nodeId);
    if (!owner) throw new VoiceCallError("NOT_FOUND", `operation ${operationId}: instance ${nodeId} is not running`);
    return { result: await this.send(owner, "voicecall.continue.result", { operationId: operationId.slice(slash + 1) }) };
  }

  /** The id this instance's operations table knows an operation by. */
  localOperation(operationId: string): string {
    const prefix = `${this.store.nodeId}/`;
    return operationId.startsWith(prefix) ? operationId.slice(prefix.length) : operationId;
  }

  /** An operation started here, named so that any instance can find it. */
  operationId(local: string): string {
    return `${this.store.nodeId}/${local}`;
  }

  private async send(owner: { nodeId: string; address: string }, method: MethodName, params: Record<string, unknown>): Promise<unknown> {
    const client = new VoiceCallClient({ url: owner.address, ...(this.token ? { token: this.token } : {}), headers: { [FORWARDED_HEADER]: "1" } });
    try {
      return await client.call(method, params);
    } catch (err) {
      if (err instanceof VoiceCallError && err.code === "UNAUTHORIZED") {
        throw new VoiceCallError("UNAVAILABLE", `the call is on instance ${owner.nodeId}, which refused this instance's control token: give every instance the same control.token`);
      }
      throw err;
    }
  }
}
