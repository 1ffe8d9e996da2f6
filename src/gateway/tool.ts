/**
 * The agent tool `voice_call`: one action per method, validated by the same
 * schemas as the RPC methods (the tool adds only the `action` field).
 */
import { z } from "zod";
import type { CallManager } from "../calls/manager.js";
import { asVoiceCallError, parseOrThrow } from "../errors.js";
import { MethodParams, invoke, type MethodName } from "./methods.js";

const ACTIONS = {
  initiate_call: "voicecall.initiate",
  continue_call: "voicecall.continue",
  speak_to_user: "voicecall.speak",
  send_dtmf: "voicecall.dtmf",
  end_call: "voicecall.end",
  get_status: "voicecall.status",
} as const satisfies Record<string, MethodName>;

type Action = keyof typeof ACTIONS;

const variant = <A extends Action>(action: A) => MethodParams[ACTIONS[action]].extend({ action: z.literal(action) });

export const ToolParams = z.discriminatedUnion("action", [
  variant("initiate_call"),
  variant("continue_call"),
  variant("speak_to_user"),
  variant("send_dtmf"),
  variant("end_call"),
  variant("get_status"),
]);

export const TOOL_NAME = "voice_call";
export const TOOL_DESCRIPTION =
  "Place and manage phone calls. initiate_call speaks `message` when answered (mode notify hangs up after it, " +
  "conversation keeps listening); continue_call says something and returns what the caller answered (expect: " +
  "digits or yesno when that is the answer wanted); " +
  "speak_to_user says something without waiting; send_dtmf presses keys; end_call hangs up; get_status returns " +
  "the state and transcript.";

/** JSON Schema for the tool's parameters, as agent runtimes expect. */
export function toolParametersJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ToolParams, { target: "draft-07", io: "input" }) as Record<string, unknown>;
}

export interface ToolResult {
  content: Array<{ type: "text"; text: string }>;
  details: unknown;
}

/** Runs one tool call; errors come back as a result the agent can read, never a throw. */
export async function runTool(manager: CallManager, params: unknown): Promise<ToolResult> {
  let details: unknown;
  try {
    const { action, ...rest } = parseOrThrow(ToolParams, params, `${TOOL_NAME} params`);
    details = await invoke(manager, ACTIONS[action], rest);
  } catch (err) {
    details = { error: asVoiceCallError(err).toJSON() };
  }
  return { content: [{ type: "text", text: JSON.stringify(details, null, 2) }], details };
}
