/**
 * The agent tool `voice_call`: one action per method, validated by the same
 * schemas as the RPC methods (the tool adds only the `action` field). Models
 * see one flat object (`action` as an enum plus every action's fields): the
 * gateway flattens unions anyway, and merges a top-level `action` only when
 * the schema has one. Which fields an action takes is checked here, by zod.
 *
 * In an agent run answering a caller (the run's toolBindings name the call),
 * the tool acts on that call only: end it (after what was said has played),
 * press keys, say something at once, read its status. Placing calls and
 * driving turns stay with runs that are not on a call.
 */
import { z } from "zod";
import { VoiceCallError, asVoiceCallError, parseOrThrow } from "../errors.js";
import { MethodParams, invoke, type MethodContext, type MethodName } from "../server/methods.js";
import type { CallBinding } from "./agent-responder.js";

const ACTIONS = {
  initiate_call: "voicecall.initiate",
  continue_call: "voicecall.continue",
  speak_to_user: "voicecall.speak",
  send_dtmf: "voicecall.dtmf",
  end_call: "voicecall.end",
  transfer_call: "voicecall.transfer",
  get_status: "voicecall.status",
} as const satisfies Record<string, MethodName>;

type Action = keyof typeof ACTIONS;
const ACTION_NAMES = Object.keys(ACTIONS) as Action[];

const variant = <A extends Exclude<Action, "initiate_call" | "speak_to_user" | "get_status">>(action: A) => MethodParams[ACTIONS[action]].extend({ action: z.literal(action) });

const VARIANTS = {
  // Session keys and the owning agent come from the gateway, never from the model.
  initiate_call: MethodParams["voicecall.initiate"]
    // Recording is the operator's (config, RPC, CLI), with its consent message: not a model's choice.
    .omit({ sessionKey: true, requesterSessionKey: true, agentId: true, record: true })
    .extend({ action: z.literal("initiate_call") }),
  continue_call: variant("continue_call"),
  // Compatibility fields of core callers are not the model's business.
  speak_to_user: MethodParams["voicecall.speak"].omit({ allowTwimlFallback: true }).extend({ action: z.literal("speak_to_user") }),
  send_dtmf: variant("send_dtmf"),
  end_call: variant("end_call"),
  transfer_call: variant("transfer_call"),
  get_status: z.strictObject({ callId: MethodParams["voicecall.status"].shape.callId, action: z.literal("get_status") }),
} as const;

export const ToolParams = z.discriminatedUnion("action", Object.values(VARIANTS) as unknown as [typeof VARIANTS.initiate_call, ...Array<(typeof VARIANTS)[Action]>]);

/** On a call: the call is the run's own, so callId may be left out (and names no other call). */
const onCall = <S extends z.ZodObject>(schema: S) => schema.extend({ callId: z.string().trim().min(1).optional().describe("this call's id (the default)") });
const BOUND_VARIANTS = {
  end_call: onCall(VARIANTS.end_call),
  send_dtmf: onCall(VARIANTS.send_dtmf),
  speak_to_user: onCall(VARIANTS.speak_to_user),
  transfer_call: onCall(VARIANTS.transfer_call),
  get_status: onCall(VARIANTS.get_status),
} as const;
type BoundAction = keyof typeof BOUND_VARIANTS;
const BOUND_ACTIONS = Object.keys(BOUND_VARIANTS) as BoundAction[];
export const BoundToolParams = z.discriminatedUnion("action", Object.values(BOUND_VARIANTS) as unknown as [typeof BOUND_VARIANTS.end_call, ...Array<(typeof BOUND_VARIANTS)[BoundAction]>]);

export const TOOL_NAME = "voice_call";
export const TOOL_DESCRIPTION =
  "Place and manage phone calls. initiate_call speaks `message` when answered (mode notify hangs up after it, " +
  "conversation keeps listening; dtmfSequence presses keys first, for phone menus); continue_call says something " +
  "and returns what the caller answered (expect: digits or yesno when that is the answer wanted; digits: how many " +
  "keys a keypad answer has, else keys complete at # or after a pause); " +
  "speak_to_user says something without waiting; send_dtmf presses keys; end_call hangs up; transfer_call puts " +
  "the caller through to a person (`to`; `message` is said to the caller first) and returns the outcome; get_status returns " +
  "the state and transcript (without callId: the calls in progress).";

/** The tool as an agent answering a caller sees it. */
export function boundToolDescription(callId: string): string {
  return (
    `Acts on the phone call you are on (${callId}); callId may be left out. end_call hangs up once what you said has been heard ` +
    "(say goodbye first); send_dtmf presses keys (a phone menu); speak_to_user says `message` at once, before your answer " +
    "(e.g. that you are looking something up); transfer_call puts the caller through to a person (`to`; the outcome " +
    "says whether they took it); get_status returns the call's state and transcript."
  );
}

/** JSON Schema for the tool's parameters: one object, `action` plus each action's fields (`bound`: the on-call tool's). */
export function toolParametersJsonSchema(bound = false): Record<string, unknown> {
  const variants: Record<string, z.ZodType> = bound ? BOUND_VARIANTS : VARIANTS;
  const names = Object.keys(variants);
  const seen = new Map<string, Array<{ action: string; prop: Record<string, unknown> }>>();
  for (const action of names) {
    const schema = z.toJSONSchema(variants[action]!, { target: "draft-07", io: "input" }) as { properties?: Record<string, Record<string, unknown>> };
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
    properties: { action: { type: "string", enum: names, description: "what to do" }, ...properties },
    required: ["action"],
  };
}

export interface ToolResult {
  content: Array<{ type: "text"; text: string }>;
  details: unknown;
}

/** What the gateway tells the tool about the run calling it (trusted, never the model's arguments). */
export interface ToolRunContext {
  agentId?: string;
  sessionKey?: string;
  /** The call this run answers a caller on. */
  call?: CallBinding;
}

/** Runs one tool call; errors come back as a result the agent can read, never a throw. */
export async function runTool(ctx: MethodContext, params: unknown, run: ToolRunContext = {}): Promise<ToolResult> {
  let details: unknown;
  try {
    details = run.call ? await runOnCall(ctx, params, run.call) : await runUnbound(ctx, params, run);
  } catch (err) {
    details = { error: asVoiceCallError(err).toJSON() };
  }
  return toolResult(details);
}

async function runUnbound(ctx: MethodContext, params: unknown, run: ToolRunContext): Promise<unknown> {
  const { action, ...rest } = parseOrThrow(ToolParams, params, `${TOOL_NAME} params`);
  // A call placed from a run belongs to its agent and session: the callee's words no run waits for go there.
  const owner = action === "initiate_call" ? { ...(run.sessionKey ? { sessionKey: run.sessionKey } : {}), ...(run.agentId ? { agentId: run.agentId } : {}) } : {};
  return invoke(ctx, ACTIONS[action], { ...rest, ...owner });
}

async function runOnCall(ctx: MethodContext, params: unknown, binding: CallBinding): Promise<unknown> {
  const { action, callId: named, ...rest } = parseOrThrow(BoundToolParams, params, `${TOOL_NAME} params`);
  if (named !== undefined && named !== binding.callId) {
    throw new VoiceCallError("INVALID_PARAMS", `callId: this run is on call ${binding.callId} and acts on it only`, [
      { path: "callId", message: `this run acts on call ${binding.callId} only` },
    ]);
  }
  const callId = binding.callId;
  if (action === "end_call") return { success: true, ...(await ctx.manager.endCall(callId, { afterSpeech: true, reason: "ended by the agent" })) };
  return invoke(ctx, ACTIONS[action as BoundAction], { ...rest, callId });
}

export function toolResult(details: unknown): ToolResult {
  return { content: [{ type: "text", text: JSON.stringify(details, null, 2) }], details };
}

/** How long one tool call may take: a continue_call waits for the caller's answer. */
export function toolTimeoutMs(params: unknown, transcriptTimeoutMs: number): number | undefined {
  const action = (params as { action?: unknown } | null)?.action;
  // continue_call waits for the caller, transfer_call for the person's phone to be answered.
  return action === "continue_call" || action === "transfer_call" ? transcriptTimeoutMs + 60_000 : undefined;
}
