/**
 * Telnyx's answering-machine detection: asked for in the dial request
 * (`detect`, or `greeting_end` when a message is left after the greeting),
 * its verdict arrives as call.machine.detection.ended; with greeting_end a
 * machine's verdict waits for call.machine.greeting.ended (its beep or
 * silence), which is when a message left on it must start.
 */
import type { AmdVerdict } from "../../audio/amd.js";
import type { VoiceCallConfig } from "../../config/schema.js";
import { carrierAmdWaitMs } from "../carrier-amd.js";

type Amd = VoiceCallConfig["outbound"]["amd"];

/** The dial request's detection parameters. */
export function telnyxAmdParams(amd: Amd) {
  return {
    answering_machine_detection: amd.onMachine === "message" ? ("greeting_end" as const) : ("detect" as const),
    answering_machine_detection_config: { total_analysis_time_millis: amd.timeoutMs, greeting_total_analysis_time_millis: carrierAmdWaitMs(amd) },
  };
}

/** call.machine.detection.ended's result as a verdict: human (of any kind), machine (a fax too), or unknown. */
export function telnyxVerdict(result: string | undefined, ms: number): AmdVerdict {
  const said = (result ?? "not_sure").slice(0, 40);
  const reason = `Telnyx: ${said}`;
  if (said.startsWith("human")) return { outcome: "human", ms, reason };
  if (said === "machine" || said === "fax_detected") return { outcome: "machine", ms, reason };
  return { outcome: "unknown", ms, reason };
}
