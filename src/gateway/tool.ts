/**
 * The agent tool `voice_call`: one action per method, validated by the same
 * schemas as the RPC methods (the tool adds only the `action` field). Models
 * see one flat object (`action` as an enum plus every action's fields): the
 * gateway flattens unions anyway, and merges a top-level `action` only when
 * the schema has one. Which fields an action takes is checked here, by zod.
 */
import { z } from "zod";
import { asVoiceCallError, parseOrThrow } from "../errors.js";
import { MethodParams, invoke, type MethodContext, type MethodName } from "../server/methods.js";

const ACTIONS = {
  initiate_call: "voicecall.initiate",
  continue_call: "voicecall.continue",
  speak_to_user: "voicecall.speak",
  send_dtmf: "voicecall.dtmf",
  end_call: "voicecall.end",
  get_status: "voicecall.status",
} as const satisfies Record<string, MethodName>;

type Action = keyof typeof ACTIONS;
const ACTION_NAMES = Object.keys(ACTIONS) as Action[];

const variant = <A extends Exclude<Action, "initiate_call" | "speak_to_user" | "get_status">>(action: A) => MethodParams[ACTIONS[action]].extend({ action: z.literal(action) });

const VARIANTS = {
  // Session keys and the owning agent come from the gateway, never from the model.
  initiate_call: MethodParams["voicecall.initiate"]
    .omit({ sessionKey: true, requesterSessionKey: true, agentId: true })
    .extend({ action: z.literal("initiate_call") }),
  continue_call: variant("continue_call"),
  // Compatibility fields of core callers are not the model's business.
  speak_to_user: MethodParams["voicecall.speak"].omit({ allowTwimlFallback: true }).extend({ action: z.literal("speak_to_user") }),
  send_dtmf: variant("send_dtmf"),
  end_call: variant("end_call"),
  get_status: z.strictObject({ callId: MethodParams["voicecall.status"].shape.callId, action: z.literal("get_status") }),
} as const;

export const ToolParams = z.discriminatedUnion("action", Object.values(VARIANTS) as unknown as [typeof VARIANTS.initiate_call, ...Array<(typeof VARIANTS)[Action]>]);

export const TOOL_NAME = "voice_call";
export const TOOL_DESCRIPTION =
  "Place and manage phone calls. initiate_call speaks `message` when answered (mode notify hangs up after it, " +
  "conversation keeps listening; dtmfSequence presses keys first, for phone menus); continue_call says something " +
  "and returns what the caller answered (expect: digits or yesno when that is the answer wanted; digits: how many " +
  "keys a keypad answer has, else keys complete at # or after a pause); " +
  "speak_to_user says something without waiting; send_dtmf presses keys; end_call hangs up; get_status returns " +
  "the state and transcript (without callId: the calls in progress).";

/** JSON Schema for the tool's parameters: one object, `action` plus each action's fields. */
export function toolParametersJsonSchema(): Record<string, unknown> {
  const seen = new Map<string, Array<{ action: Action; prop: Record<string, unknown> }>>();
  for (const action of ACTION_NAMES) {
    const schema = z.toJSONSchema(VARIANTS[action], { target: "draft-07", io: "input" }) as { properties?: Record<string, Record<string, unknown>> };
    for (const [key, prop] of Object.entries(schema.properties ?? {})) {
      if (key !== "action") seen.set(key, [...(seen.get(key) ?? []), { action, prop }]);
    }
  }
  const properties: Record<string, Record<string, unknown>> = {};
  for (const [key, uses] of seen) {
    const actions = uses.map((u) => u.action).join(", ");
    const bare = uses.map(({ prop }) => JSON.stringify({ ...prop, description: undefined }));
    if (bare.every((b) => b === bare[0])) {
      // One meaning everywhere: one schema, naming the actions that take it.
      const own = typeof uses[0]!.prop.description === "string" ? `${uses[0]!.prop.description as string} ` : "";
      properties[key] = { ...uses[0]!.prop, description: `${own}(${actions})` };
    } else {
      // The same name means different things per action (send_dtmf's digits are keys, continue_call's a count).
      properties[key] = {
        anyOf: uses.map(({ prop }) => ({ ...prop, description: undefined })),
        description: uses.map(({ action, prop }) => `${action}: ${typeof prop.description === "string" ? prop.description : key}`).join("; "),
      };
    }
  }
  return {
    type: "object",
    properties: { action: { type: "string", enum: ACTION_NAMES, description: "what to do" }, ...properties },
    required: ["action"],
  };
}

export interface ToolResult {
  content: Array<{ type: "text"; text: string }>;
  details: unknown;
}

/** Runs one tool call; errors come back as a result the agent can read, never a throw. */
export async function runTool(ctx: MethodContext, params: unknown): Promise<ToolResult> {
  let details: unknown;
  try {
    const { action, ...rest } = parseOrThrow(ToolParams, params, `${TOOL_NAME} params`);
    details = await invoke(ctx, ACTIONS[action], rest);
  } catch (err) {
    details = { error: asVoiceCallError(err).toJSON() };
  }
  return toolResult(details);
}

export function toolResult(details: unknown): ToolResult {
  return { content: [{ type: "text", text: JSON.stringify(details, null, 2) }], details };
}

/** How long one tool call may take: a continue_call waits for the caller's answer. */
export function toolTimeoutMs(params: unknown, transcriptTimeoutMs: number): number | undefined {
  const action = (params as { action?: unknown } | null)?.action;
  return action === "continue_call" ? transcriptTimeoutMs + 60_000 : undefined;
}
