import { VoiceCallError } from "../errors.js";
import type { CallProvider } from "../providers/types.js";

/**
 * What a carrier or its speech engines threw, as PROVIDER_ERROR naming the
 * carrier and the step; our own typed errors (CALL_ENDED, ...) pass through.
 */
export function carrierFailure(provider: CallProvider, step: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof VoiceCallError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new VoiceCallError("PROVIDER_ERROR", `${provider.id} could not ${step}: ${message}`);
  };
}
