/**
 * An OpenAI-compatible chat server standing in for the gateway agent's model:
 * on a turn whose tools include the scripted one it answers with that tool
 * call, then with a text that quotes the tool's result. Streams (SSE) or not,
 * as asked. Records the tool names each request offered.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

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
        const request = JSON.parse(body || "{}") as { stream?: boolean; messages?: ChatMessage[]; tools?: Array<{ function?: { name?: string } }> };
        model.answer(request, (status, headers, text) => res.writeHead(status, headers).end(text));
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

  private answer(
    request: { stream?: boolean; messages?: ChatMessage[]; tools?: Array<{ function?: { name?: string } }> },
    send: (status: number, headers: Record<string, string>, text: string) => void,
  ): void {
    const tools = (request.tools ?? []).map((t) => t.function?.name ?? "");
    this.offeredTools.push(tools);
    const messages = request.messages ?? [];
    this.roles.push(messages.map((m) => m.role));
    this.conversations.push(messages.map((m) => ({ role: m.role, text: toolText(m.content) })));

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
    const chunk = (choice: object, extra: object = {}) =>
      `data: ${JSON.stringify({ id: "chat-1", object: "chat.completion.chunk", created: 1, model: "agent-model", choices: [choice], ...extra })}\n\n`;
    send(200, { "content-type": "text/event-stream" }, chunk({ index: 0, delta, finish_reason: null }) + chunk({ index: 0, delta: {}, finish_reason: finish }, { usage }) + "data: [DONE]\n\n");
  }
}

/** A tool message's text: a string, or text parts. */
function toolText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === "object" && p !== null && "text" in p ? String((p as { text: unknown }).text) : "")).join("");
  return JSON.stringify(content);
}
