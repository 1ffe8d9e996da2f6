/**
 * The voicecall.* methods, defined once: params schema + a thin call into
 * CallManager. The RPC server, the gateway plugin's methods and the agent
 * tool all go through `invoke`, so they validate and answer alike. The names
 * include the gateway's documented compatibility ones (`voicecall.start`,
 * `voicecall.continue.start` / `.result`, `status` without a callId).
 */
import { z } from "zod";
import { CallMode, ProviderId } from "../config/schema.js";
import type { CallManager } from "../calls/manager.js";
import type { Operations } from "../calls/operations.js";
import { VoiceCallError, parseOrThrow } from "../errors.js";
import { CallForwarder } from "./forward.js";

/** A required text field; its issue names the field by its path ("to: must not be empty"). */
const text = () => z.string({ error: "required" }).trim().min(1, "must not be empty");
const callId = text();
const message = text();
/** Digits sent once the call connects (an IVR's menu), conversation mode only; w pauses 0.5 s. */
const dtmfSequence = z.string().regex(/^[0-9A-D*#w]{1,64}$/, "expected 0-9, A-D, * or # (w pauses 0.5 s), at most 64").optional();
/** The agent session the call belongs to, as the gateway names it. */
const sessionKey = z.string().trim().min(1).max(512).optional();
/** The answer expected: recognisers with grammars decode it with one (far fewer errors). */
const expect = z.enum(["digits", "yesno"]).optional();
/** Keys the answer has (an IVR's "enter your 5-digit code"): the turn completes at this many, at #, or after the inter-digit timeout. */
const digits = z.number({ error: "digits must be a number of keys" }).int("digits must be a whole number").min(1, "digits must be at least 1").max(64, "digits must be at most 64").optional()
  .describe("how many keys the caller's keypad answer has");

/**
 * The gateway agent that owns the call (its turns, session and tools). Trusted
 * context only: operators and core callers (Google Meet's delegation) pass
 * it; the agent tool never offers it to a model.
 */
const agentId = z.string().trim().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "letters, digits and . _ : - only").optional();

const initiateFields = {
  to: text().optional(),
  mode: CallMode.optional(),
  provider: ProviderId.optional(),
  dtmfSequence,
  sessionKey,
  requesterSessionKey: sessionKey,
  agentId,
  record: z.boolean().optional().describe("record this call (true) or not (false), over recording.enabled and the number's"),
  amd: z.boolean().optional().describe("tell a person from an answering machine before the message (true) or not (false), over outbound.amd.enabled"),
};

export const MethodParams = {
  "voicecall.initiate": z.strictObject({ message, ...initiateFields }),
  /** As initiate, with `to` required and the message optional (gateway compatibility). */
  "voicecall.start": z.strictObject({ ...initiateFields, to: text(), message: message.optional() }),
  "voicecall.continue": z.strictObject({ callId, message, expect, digits }),
  "voicecall.continue.start": z.strictObject({ callId, message, expect, digits }),
  "voicecall.continue.result": z.strictObject({ operationId: text() }),
  /**
   * allowTwimlFallback (gateway compatibility, sent by Google Meet's delegation): false asks a realtime
   * call not to fall back to the carrier's own speech; calls without a realtime model speak as always.
   */
  "voicecall.speak": z.strictObject({ callId, message, allowTwimlFallback: z.boolean().optional() }),
  "voicecall.dtmf": z.strictObject({ callId, digits: text().describe("keys to press: 0-9, A-D, *, #; w pauses 0.5 s") }),
  "voicecall.end": z.strictObject({ callId }),
  /** Hands the caller to a person: blind (connected, then we leave), or warm where the carrier has it (the person briefed first). */
  "voicecall.transfer": z.strictObject({
    callId,
    to: text().describe("who takes the call: a number, or on the PBX an extension or SIP URI"),
    mode: z.enum(["blind", "warm"]).optional().describe("blind (the default): the caller is put through and we leave; warm: the caller holds while the person hears `message` and accepts or declines"),
    message: message.optional().describe("blind: said to the caller before the transfer; warm: what the person is told first"),
  }),
  /** Without callId: the calls in progress (gateway compatibility); `sid` is the reference plugin's name for callId. */
  "voicecall.status": z
    .strictObject({ callId: callId.optional(), sid: text().optional() })
    .refine((p) => p.callId === undefined || p.sid === undefined || p.callId === p.sid, { message: "callId and sid name different calls", path: ["sid"] }),
  "voicecall.list": z.strictObject({}),
  /** Where a call's recording is, and what it holds. */
  "voicecall.recording": z.strictObject({ callId }),
} as const;

export type MethodName = keyof typeof MethodParams;
export const METHOD_NAMES = Object.keys(MethodParams) as MethodName[];

/** Methods that change nothing: the gateway lets `operator.read` clients call them. */
export const READ_METHODS: ReadonlySet<MethodName> = new Set<MethodName>(["voicecall.status", "voicecall.list", "voicecall.continue.result", "voicecall.recording"]);

/** What a method runs against: the running service's manager and its pending operations. */
export interface MethodContext {
  manager: CallManager;
  operations: Operations;
  /** On a shared store: where methods for another instance's calls go. */
  forwarder?: CallForwarder;
}

type Params<M extends MethodName> = z.infer<(typeof MethodParams)[M]>;

const continueTurn = async (m: CallManager, p: Params<"voicecall.continue">) => ({
  success: true,
  ...(await m.continueCall(p.callId, p.message, { expect: p.expect, digits: p.digits })),
});

const handlers: { [M in MethodName]: (ctx: MethodContext, params: Params<M>) => Promise<unknown> } = {
  "voicecall.initiate": ({ manager }, p) => manager.initiateCall(p),
  "voicecall.start": ({ manager }, p) => manager.initiateCall(p),
  "voicecall.continue": ({ manager }, p) => continueTurn(manager, p),
  "voicecall.continue.start": async ({ manager, operations }, p) => {
    // Checked now, so a bad callId fails the start rather than the first poll.
    manager.assertCallLive(p.callId);
    return operations.start(() => continueTurn(manager, p));
  },
  "voicecall.continue.result": async ({ operations }, p) => operations.read(p.operationId),
  "voicecall.speak": async ({ manager }, p) => {
    await manager.speak(p.callId, p.message);
    return { success: true };
  },
  "voicecall.dtmf": async ({ manager }, p) => {
    await manager.sendDtmf(p.callId, p.digits);
    return { success: true };
  },
  "voicecall.end": async ({ manager }, p) => ({ success: true, ...(await manager.endCall(p.callId)) }),
  "voicecall.transfer": async ({ manager }, p) => ({ success: true, ...(await manager.transferCall(p.callId, p)) }),
  "voicecall.status": async ({ manager }, p) => {
    const id = p.callId ?? p.sid;
    if (id === undefined) return { calls: manager.listCalls({ activeOnly: true }) };
    const call = manager.getCall(id);
    return call ? { found: true, call } : { found: false };
  },
  "voicecall.list": async ({ manager }) => ({ calls: manager.listCalls() }),
  "voicecall.recording": async ({ manager }, p) => {
    const call = manager.getCall(p.callId);
    if (!call) throw new VoiceCallError("NOT_FOUND", `no call with id ${p.callId}`, [{ path: "callId", message: "no such call" }]);
    return call.recording ? { found: true, callId: call.callId, ...call.recording, ...(call.endedAt ? {} : { inProgress: true }) } : { found: false, callId: call.callId };
  },
};

export function isMethodName(name: unknown): name is MethodName {
  return typeof name === "string" && Object.hasOwn(MethodParams, name);
}

/** `forwarded`: the request came from another instance of the cluster (it is answered here, never sent on). */
export async function invoke(ctx: MethodContext, method: unknown, params: unknown, options: { forwarded?: boolean } = {}): Promise<unknown> {
  if (!isMethodName(method)) {
    throw new VoiceCallError("UNKNOWN_METHOD", `unknown method ${JSON.stringify(method)}; expected one of ${METHOD_NAMES.join(", ")}`);
  }
  const parsed = parseOrThrow(MethodParams[method], params ?? {}, `params for ${method}`) as Record<string, unknown>;
  const { forwarder } = ctx;
  if (forwarder && !options.forwarded) {
    // A call another instance holds is answered by it.
    const callId = CallForwarder.callOf(method, parsed);
    if (callId !== undefined && !ctx.manager.getCall(callId)) {
      const forwarded = await forwarder.forward(method, parsed, callId);
      if (forwarded) return forwarded.result;
    }
    if (method === "voicecall.continue.result") {
      const forwarded = await forwarder.forwardOperation(parsed.operationId as string);
      if (forwarded) return forwarded.result;
    }
  }
  const handler = handlers[method] as (ctx: MethodContext, p: unknown) => Promise<unknown>;
  if (!forwarder || (method !== "voicecall.continue.start" && method !== "voicecall.continue.result")) return handler(ctx, parsed);
  // On a shared store, operations started here are named with this instance, so any instance finds them.
  const local = method === "voicecall.continue.result" ? { operationId: forwarder.localOperation(parsed.operationId as string) } : parsed;
  const result = (await handler(ctx, local)) as { operationId: string };
  return { ...result, operationId: forwarder.operationId(result.operationId) };
}
