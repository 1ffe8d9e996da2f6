/**
 * The functions of `realtime.tools`: offered to the realtime model as they
 * are configured, each run by POSTing to its `url` what the model asked and
 * the call it is on; the endpoint's JSON answer is the tool's result. A
 * tool without a url, an endpoint that fails or takes longer than its
 * `timeoutMs` gives the model an error it can say, never the call's end.
 */
import type { RealtimeToolConfig } from "../config/schema.js";
import type { RealtimeTool } from "../realtime/types.js";

/** The call a tool runs on, as its endpoint is told. */
export interface ToolCallSubject {
  callId: string;
  direction: string;
  from?: string;
  to: string;
  provider: string;
}

/** The body an endpoint receives. */
export interface ToolRequest {
  tool: string;
  arguments: Record<string, unknown>;
  call?: ToolCallSubject;
}

/** How much of an endpoint's answer a model is given at most (a spoken reply needs little). */
const MAX_ANSWER_CHARS = 16_000;

export const offeredTool = (tool: RealtimeToolConfig): RealtimeTool => ({ name: tool.name, description: tool.description, parameters: tool.parameters });

/** Runs the tool `index` of realtime.tools; throws (the model is told the message) where it cannot. */
export async function runConfiguredTool(tool: RealtimeToolConfig, index: number, args: Record<string, unknown>, call: ToolCallSubject | undefined): Promise<unknown> {
  if (!tool.url) throw new Error(`tool ${tool.name} has no handler here (realtime.tools[${index}].url is not set)`);
  const body: ToolRequest = { tool: tool.name, arguments: args, ...(call ? { call } : {}) };
  let res: Response;
  try {
    res = await fetch(tool.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(tool.token ? { authorization: `Bearer ${tool.token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(tool.timeoutMs),
    });
  } catch (err) {
    const reason = (err as Error).name === "TimeoutError" ? `no answer within ${tool.timeoutMs} ms` : (err as Error).message;
    throw new Error(`tool ${tool.name} failed: ${reason}`);
  }
  const text = (await res.text()).slice(0, MAX_ANSWER_CHARS);
  if (!res.ok) throw new Error(`tool ${tool.name} failed: HTTP ${res.status}${text ? ` ${text.slice(0, 200)}` : ""}`);
  try {
    return text ? (JSON.parse(text) as unknown) : { ok: true };
  } catch {
    return { result: text };
  }
}
