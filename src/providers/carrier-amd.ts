/**
 * A carrier's own answering-machine detection: started with the call, its
 * verdict arrives by webhook; the call's detectMachine waits for it (within
 * the call's bound) instead of listening on our audio.
 */
import type { AmdVerdict } from "../audio/amd.js";
import type { VoiceCallConfig } from "../config/schema.js";

/** How long a carrier's detection may take: the decision's bound, and the greeting's when a message is left after it. */
export const carrierAmdWaitMs = (amd: VoiceCallConfig["outbound"]["amd"]) => amd.timeoutMs + (amd.onMachine === "message" ? amd.beepWaitMs : 0);

export class CarrierVerdicts {
  private readonly pending = new Map<string, { verdict: Promise<AmdVerdict>; resolve(verdict: AmdVerdict): void; answeredAt?: number }>();

  /** The carrier was asked to detect on this call. */
  expect(providerCallId: string): void {
    let resolve!: (verdict: AmdVerdict) => void;
    const verdict = new Promise<AmdVerdict>((r) => (resolve = r));
    this.pending.set(providerCallId, { verdict, resolve });
  }

  /** The call was answered: a carrier that does not say how long its detection took is timed from here. */
  answered(providerCallId: string): void {
    const entry = this.pending.get(providerCallId);
    if (entry) entry.answeredAt ??= Date.now();
  }

  /** Milliseconds since the call was answered (0 when not known). */
  since(providerCallId: string): number {
    const at = this.pending.get(providerCallId)?.answeredAt;
    return at === undefined ? 0 : Date.now() - at;
  }

  has(providerCallId: string): boolean {
    return this.pending.has(providerCallId);
  }

  /** The carrier's verdict came; false when nobody asked for it. */
  settle(providerCallId: string, verdict: AmdVerdict): boolean {
    const entry = this.pending.get(providerCallId);
    entry?.resolve(verdict);
    return entry !== undefined;
  }

  /** The verdict, or undefined when it did not come within `ms`; the call's entry goes either way. */
  async wait(providerCallId: string, ms: number): Promise<AmdVerdict | undefined> {
    const entry = this.pending.get(providerCallId);
    if (!entry) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([entry.verdict, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
    } finally {
      clearTimeout(timer);
      this.pending.delete(providerCallId);
    }
  }

  forget(providerCallId: string): void {
    this.pending.delete(providerCallId);
  }
}
