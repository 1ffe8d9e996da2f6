/**
 * An OpenAI-compatible chat server standing in for the gateway agent's model:
 * on a turn whose tools include the scripted one it answers with that tool
 * call, then with a text that quotes the tool's result. Streams (SSE) or not,
 * as asked. Records the tool names each request offered. A `script` answers
 * chosen requests instead: text streamed in pieces after a delay (a model
 * thinking, then writing sentence by sentence), or a tool call.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A scripted answer: a tool call, or text pieces streamed `gapMs` apart after `delayMs`. */
export interface ScriptedAnswer {
  pieces?: string[];
  toolCall?: { name: string; arguments: Record<string, unknown> };
  delayMs?: number;
  gapMs?: number;
}

/** What a script sees of a request: its messages (text only) and the tools offered. */
export interface ModelRequest {
  /** Whether the client asked for a streamed (SSE) answer. */
  stream: boolean;
  messages: Array<{ role: string; text: string }>;
  tools: Array<{ name: string; description: string; parameters: unknown }>;
}

interface ChatMessage {
  role: string;
  content?: unknown;
  tool_call_id?: string;
}

export class FakeAgentModel {
  /** Tool names offered to the model, one list per request. */
  readonly offeredTools: string[][] = [];
  /** Tool results the model was given, as text. */
  readonly toolResults: string[] = [];
  /** The roles of each request's messages, for failure messages. */
  readonly roles: string[][] = [];
  /** Every request's messages, text only. */
  readonly conversations: Array<Array<{ role: string; text: string }>> = [];
  /** The tool call the model makes on the next turn that offers the tool; consumed. */
  nextToolCall: { name: string; arguments: Record<string, unknown> } | undefined;
  /** Answers the requests it returns something for; the others get the default behaviour. */
  script: ((request: ModelRequest) => ScriptedAnswer | undefined) | undefined;
  /** Every request, as scripts see them. */
  readonly requests: ModelRequest[] = [];
  private awaitingResult = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeAgentModel> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const model = new FakeAgentModel(server, (server.address() as AddressInfo).port);
    server.on("request", (req, res) => {
      let body = "";
      req.setEncoding("utf8").on("data", (c: string) => (body += c));
      req.on("end", () => {
        if (req.method !== "POST") {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: [{ id: "agent-model", object: "model" }] }));
          return;
        }
        const request = JSON.parse(body || "{}") as ChatRequest;
        const seen: ModelRequest = {
          stream: request.stream === true,
          messages: (request.messages ?? []).map((m) => ({ role: m.role, text: toolText(m.content) })),
          tools: (request.tools ?? []).map((t) => ({ name: t.function?.name ?? "", description: t.function?.description ?? "", parameters: t.function?.parameters })),
        };
        model.requests.push(seen);
        const scripted = model.script?.(seen);
        if (scripted) void model.answerScripted(request, scripted, res);
        else model.answer(request, (status, headers, text) => res.writeHead(status, headers).end(text));
      });
    });
    return model;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** A scripted answer, streamed piece by piece when the request streams. */
  private async answerScripted(request: ChatRequest, answer: ScriptedAnswer, res: ServerResponse): Promise<void> {
    this.record(request);
    await sleep(answer.delayMs ?? 0);
    const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
    const toolCalls = answer.toolCall
      ? [{ id: `call_${this.requests.length}`, type: "function", function: { name: answer.toolCall.name, arguments: JSON.stringify(answer.toolCall.arguments) } }]
      : undefined;
    const finish = toolCalls ? "tool_calls" : "stop";
    const pieces = answer.pieces ?? [];
    if (!request.stream) {
      const message = { role: "assistant", content: toolCalls ? null : pieces.join(""), ...(toolCalls ? { tool_calls: toolCalls } : {}) };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: "chat-1", object: "chat.completion", created: 1, model: "agent-model", choices: [{ index: 0, message, finish_reason: finish }], usage }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    for (const [i, piece] of pieces.entries()) {
      if (i > 0) await sleep(answer.gapMs ?? 0);
      res.write(chunk({ index: 0, delta: { ...(i === 0 ? { role: "assistant" } : {}), content: piece }, finish_reason: null }));
    }
    if (toolCalls) res.write(chunk({ index: 0, delta: { role: "assistant", tool_calls: toolCalls.map((t, index) => ({ index, ...t })) }, finish_reason: null }));
    res.end(chunk({ index: 0, delta: {}, finish_reason: finish }, { usage }) + "data: [DONE]\n\n");
  }

  private record(request: ChatRequest): void {
    const messages = request.messages ?? [];
    this.offeredTools.push((request.tools ?? []).map((t) => t.function?.name ?? ""));
    this.roles.push(messages.map((m) => m.role));
    this.conversations.push(messages.map((m) => ({ role: m.role, text: toolText(m.content) })));
  }

  private answer(request: ChatRequest, send: (status: number, headers: Record<string, string>, text: string) => void): void {
    this.record(request);
    const tools = this.offeredTools.at(-1)!;
    const messages = request.messages ?? [];

    // The request after a tool call carries its answer: the last tool message (the gateway renames
    // call ids and may add a context line after it, so neither id nor position tells).
    const answered = this.awaitingResult ? messages.filter((m) => m.role === "tool").at(-1) : undefined;
    const call = this.nextToolCall;
    let message: Record<string, unknown>;
    if (!answered && call && tools.includes(call.name)) {
      this.nextToolCall = undefined;
      this.awaitingResult = true;
      message = {
        role: "assistant",
        content: null,
        tool_calls: [{ id: `call_${this.offeredTools.length}`, type: "function", function: { name: call.name, arguments: JSON.stringify(call.arguments) } }],
      };
    } else {
      const result = answered ? toolText(answered.content) : "";
      if (result) this.toolResults.push(result);
      this.awaitingResult = false;
      message = { role: "assistant", content: result ? `Tool said: ${result}` : "Nothing to do." };
    }
    const finish = message.tool_calls ? "tool_calls" : "stop";
    const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
    if (!request.stream) {
      send(200, { "content-type": "application/json" }, JSON.stringify({ id: "chat-1", object: "chat.completion", created: 1, model: "agent-model", choices: [{ index: 0, message, finish_reason: finish }], usage }));
      return;
    }
    const delta = message.tool_calls
      ? { role: "assistant", tool_calls: (message.tool_calls as object[]).map((t, index) => ({ index, ...t })) }
      : { role: "assistant", content: message.content };
    send(200, { "content-type": "text/event-stream" }, chunk({ index: 0, delta, finish_reason: null }) + chunk({ index: 0, delta: {}, finish_reason: finish }, { usage }) + "data: [DONE]\n\n");
  }
}

interface ChatRequest {
  stream?: boolean;
  messages?: ChatMessage[];
  tools?: Array<{ function?: { name?: string; description?: string; parameters?: unknown } }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const chunk = (choice: object, extra: object = {}) =>
  `data: ${JSON.stringify({ id: "chat-1", object: "chat.completion.chunk", created: 1, model: "agent-model", choices: [choice], ...extra })}\n\n`;

/** A tool message's text: a string, or text parts. */
function toolText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === "object" && p !== null && "text" in p ? String((p as { text: unknown }).text) : "")).join("");
  return JSON.stringify(content);
}
