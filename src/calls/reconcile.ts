/** Restored calls and their carriers: what happens to a call in progress when its service comes back (or another instance takes it over). */
import type { CallSession } from "./session.js";
import { isAnsweredState } from "./state.js";

/**
 * A call restored after a restart (or taken over from instance `fromNode`),
 * checked with its carrier: ended there, it ends here with the reason; still
 * ringing, it ends (its setup went with the old process); answered, the
 * carrier takes it back where it can (a new media leg into the live call)
 * and the call listens again. An unknown status keeps it: never a false end.
 * `background` runs work nobody awaits.
 */
export async function reconcileCall(call: CallSession, background: (work: Promise<unknown>, what: string) => void, fromNode?: string): Promise<void> {
  const after = fromNode ? `instance ${fromNode} stopped` : "the service was down";
  const provider = call.provider;
  const providerCallId = call.record.providerCallId;
  if (!provider || !providerCallId) {
    call.log.warn("restored call cannot be checked with its carrier; kept until it ends or is reaped");
    return;
  }
  let status;
  try {
    status = await provider.getCallStatus(providerCallId, { direction: call.record.direction, answered: call.record.answeredAt !== undefined });
  } catch (err) {
    status = { status: "unknown" as const, reason: err instanceof Error ? err.message : String(err) };
  }
  if (status.status === "ended") {
    call.finish(status.state, `ended while ${after}${status.reason ? `: ${status.reason}` : ""}`);
    return;
  } else if (status.status === "unknown") {
    call.log.warn({ reason: status.reason }, "restored call status unknown; kept");
    return;
  }
  if (provider.readopt && !isAnsweredState(call.record.state)) {
    // Its setup (ring timer, answer) went with the old process.
    await call.hangupAndFinish("error", fromNode ? `was still ringing when ${after}` : "was still ringing when the service stopped");
    return;
  }
  if (provider.readopt) {
    const taken = await provider.readopt(providerCallId, { direction: call.record.direction, answered: true, ...(fromNode ? { fromNode } : {}) });
    if (!taken.ok) {
      await call.hangupAndFinish("error", fromNode ? `could not take the call over after ${after}: ${taken.reason}` : `could not take the call back after a restart: ${taken.reason}`);
      return;
    }
    // What was said before is in the transcript; from now on the caller is heard again.
    call.log.info(fromNode ? { fromNode } : {}, fromNode ? "took the call over; listening" : "took the call back after a restart; listening");
    background(call.openTurn(), "listening after a restart");
  }
  if (call.record.answeredAt) call.limitDuration();
}
