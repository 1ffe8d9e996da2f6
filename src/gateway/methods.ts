/**
 * The voicecall.* methods, defined once: params schema + a thin call into
 * CallManager. The RPC server, the gateway plugin's methods and the agent
 * tool all go through `invoke`, so they validate and answer alike.
 */
import { z } from "zod";
import { CallMode, ProviderId } from "../config/schema.js";
import type { CallManager } from "../calls/manager.js";
import { VoiceCallError, parseOrThrow } from "../errors.js";

const text = (what: string) => z.string({ error: `${what} is required` }).trim().min(1, `${what} must not be empty`);
const callId = text("callId");
const message = text("message");

export const MethodParams = {
  "voicecall.initiate": z.strictObject({
    message,
    to: text("to").optional(),
    mode: CallMode.optional(),
    provider: ProviderId.optional(),
  }),
  "voicecall.continue": z.strictObject({
    callId,
    message,
    /** The answer expected: recognisers with grammars decode it with one (far fewer errors). */
    expect: z.enum(["digits", "yesno"]).optional(),
  }),
  "voicecall.speak": z.strictObject({ callId, message }),
  "voicecall.dtmf": z.strictObject({ callId, digits: text("digits") }),
  "voicecall.end": z.strictObject({ callId }),
  "voicecall.status": z.strictObject({ callId }),
  "voicecall.list": z.strictObject({}),
} as const;

export type MethodName = keyof typeof MethodParams;
export const METHOD_NAMES = Object.keys(MethodParams) as MethodName[];

type Params<M extends MethodName> = z.infer<(typeof MethodParams)[M]>;

const handlers: { [M in MethodName]: (manager: CallManager, params: Params<M>) => Promise<unknown> } = {
  "voicecall.initiate": (m, p) => m.initiateCall(p),
  "voicecall.continue": async (m, p) => ({ success: true, ...(await m.continueCall(p.callId, p.message, { expect: p.expect })) }),
  "voicecall.speak": async (m, p) => {
    await m.speak(p.callId, p.message);
    return { success: true };
  },
  "voicecall.dtmf": async (m, p) => {
    await m.sendDtmf(p.callId, p.digits);
    return { success: true };
  },
  "voicecall.end": async (m, p) => ({ success: true, ...(await m.endCall(p.callId)) }),
  "voicecall.status": async (m, p) => {
    const call = m.getCall(p.callId);
    return call ? { found: true, call } : { found: false };
  },
  "voicecall.list": async (m) => ({ calls: m.listCalls() }),
};

export function isMethodName(name: unknown): name is MethodName {
  return typeof name === "string" && Object.hasOwn(MethodParams, name);
}

export async function invoke(manager: CallManager, method: unknown, params: unknown): Promise<unknown> {
  if (!isMethodName(method)) {
    throw new VoiceCallError("UNKNOWN_METHOD", `unknown method ${JSON.stringify(method)}; expected one of ${METHOD_NAMES.join(", ")}`);
  }
  const parsed = parseOrThrow(MethodParams[method], params ?? {}, `params for ${method}`);
  const handler = handlers[method] as (m: CallManager, p: unknown) => Promise<unknown>;
  return handler(manager, parsed);
}
