/**
 * Twilio's answering-machine detection, asynchronous: asked for in the
 * call's create request, its verdict (AnsweredBy) is posted to our webhook
 * while the call is already up. DetectMessageEnd waits for a machine's
 * greeting to end (its beep), which is when a message left on it must start;
 * Enable answers as soon as it knows.
 */
import type { AmdVerdict } from "../../audio/amd.js";
import type { VoiceCallConfig } from "../../config/schema.js";
import { carrierAmdWaitMs } from "../carrier-amd.js";

type Amd = VoiceCallConfig["outbound"]["amd"];

/** The create request's detection parameters (Twilio takes a timeout of 3 to 59 s). */
export function twilioAmdParams(amd: Amd, callbackUrl: string) {
  return {
    machineDetection: amd.onMachine === "message" ? "DetectMessageEnd" : "Enable",
    machineDetectionTimeout: Math.min(59, Math.max(3, Math.ceil(carrierAmdWaitMs(amd) / 1000))),
    asyncAmd: "true",
    asyncAmdStatusCallback: callbackUrl,
    asyncAmdStatusCallbackMethod: "POST",
  } as const;
}

/** The AnsweredBy callback as a verdict: human, machine (its greeting over for machine_end_*, or a fax), or unknown. */
export function twilioVerdict(form: URLSearchParams): AmdVerdict {
  const answeredBy = form.get("AnsweredBy") ?? "unknown";
  const ms = Number(form.get("MachineDetectionDuration") ?? 0) || 0;
  const reason = `Twilio: ${answeredBy.slice(0, 40)}`;
  if (answeredBy === "human") return { outcome: "human", ms, reason };
  if (answeredBy.startsWith("machine") || answeredBy === "fax") return { outcome: "machine", ms, reason };
  return { outcome: "unknown", ms, reason };
}
