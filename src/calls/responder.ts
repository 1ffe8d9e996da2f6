/**
 * Auto-responses for inbound calls that no agent is driving: the call's
 * transcript goes to an OpenAI-compatible chat endpoint (any base URL, so
 * local model servers work) and the reply is spoken. The model is asked for
 * `{"spoken": "..."}`; reasoning blocks, code fences and meta text are
 * removed before anything reaches the caller, and a reply that is nothing
 * but meta text is not spoken at all.
 */
import { VoiceCallError } from "../errors.js";
import type { CallRecord, TranscriptEntry } from "./types.js";

/** A caller's words that no agent's continue_call waits for, handed to a responder to answer. */
export interface CallerTurn {
  call: Readonly<CallRecord>;
  /** The call so far, the caller's newest words last. */
  transcript: readonly TranscriptEntry[];
  /** What the caller has just said. */
  words: string;
  /** responseModel / responseSystemPrompt / responseTimeoutMs of the number dialled, over the global ones. */
  model: string | undefined;
  systemPrompt: string | undefined;
  timeoutMs: number;
  /**
   * Says one piece of the answer: queued at once behind what is being said,
   * so a responder that has its first sentence early speaks it early. Text
   * that is not fit to speak (reasoning, markup only) is dropped.
   */
  say(text: string): void;
  /** Aborts when the caller says more (a newer turn answers them) or the call ends. */
  signal: AbortSignal;
  /** A realtime model's consult, under realtime.toolPolicy: which of the agent's tools it may use (inside the gateway). */
  toolPolicy?: "safe-read-only" | "owner";
}

/** Who answers callers' turns no agent drives: a chat model (Responder), or inside the gateway its agent. */
export interface TurnResponder {
  /** Whether anything answers on this call; else the caller is told nobody can take it. */
  answers(call: Readonly<CallRecord>, model: string | undefined): boolean;
  /** Answers one turn through `turn.say`; resolves once the whole answer has been handed over. */
  respond(turn: CallerTurn): Promise<void>;
  /** Hands over at once what is held back of the answer being made on `callId` (the call is about to end). */
  flush?(callId: string): void;
}

/** A chat completion by someone else's transport (inside the gateway: its model runtime); returns the raw text. */
export type ChatFn = (request: {
  /** Undefined: the runtime's own default model (the gateway agent's). */
  model: string | undefined;
  system: string;
  messages: Array<{ role: "user" | "assistant"; content: string }>;
  signal: AbortSignal;
}) => Promise<string>;

export interface ResponderOptions {
  baseUrl: string;
  apiKey?: string;
  timeoutMs: number;
  /** Answers instead of the endpoint at baseUrl (the gateway's own model runtime, with its providers and keys). */
  chat?: ChatFn;
}

export interface ResponseRequest {
  /** Undefined only where the transport has a default model of its own (the gateway). */
  model: string | undefined;
  systemPrompt?: string;
  transcript: readonly TranscriptEntry[];
  signal?: AbortSignal;
  /** Overrides the responder's own timeout (a number's responseTimeoutMs). */
  timeoutMs?: number;
}

const CONTRACT =
  'You are speaking on a phone call. Answer with a JSON object {"spoken": "<what to say>"} and nothing else. ' +
  "Keep it short and natural to hear: one to three sentences, no lists, no markdown, no emoji.";

const DEFAULT_PROMPT = "You are a helpful assistant answering the phone.";

export class Responder implements TurnResponder {
  constructor(private readonly options: ResponderOptions) {}

  /** Whether a reply can be had without naming a model (the gateway's runtime uses its agent's). */
  get hasDefaultModel(): boolean {
    return this.options.chat !== undefined;
  }

  answers(_call: Readonly<CallRecord>, model: string | undefined): boolean {
    return model !== undefined || this.hasDefaultModel;
  }

  /** The whole reply in one piece (a chat completion is not streamed). */
  async respond(turn: CallerTurn): Promise<void> {
    // Words that are not the caller's newest line (a realtime model's consult question) are asked after the call so far.
    const newest = turn.transcript.findLast((t) => t.speaker === "caller" && t.kind === "speech")?.text;
    const transcript =
      turn.words && turn.words !== newest
        ? [...turn.transcript, { callId: turn.call.callId, at: new Date().toISOString(), speaker: "caller" as const, kind: "speech" as const, text: turn.words, turn: turn.call.turn }]
        : turn.transcript;
    const text = await this.reply({ model: turn.model, systemPrompt: turn.systemPrompt, transcript, signal: turn.signal, timeoutMs: turn.timeoutMs });
    if (text) turn.say(text);
  }

  /** The words to say next, or undefined when the model gave nothing speakable. */
  async reply(request: ResponseRequest): Promise<string | undefined> {
    const system = `${request.systemPrompt ?? DEFAULT_PROMPT}\n\n${CONTRACT}`;
    const turns = request.transcript
      .filter((t) => t.kind === "speech" || t.kind === "dtmf")
      .map((t) => ({ role: t.speaker === "bot" ? ("assistant" as const) : ("user" as const), content: t.kind === "dtmf" ? `[pressed ${t.text}]` : t.text }));
    const messages = [{ role: "system", content: system }, ...turns];
    const controller = new AbortController();
    const timeoutMs = request.timeoutMs ?? this.options.timeoutMs;
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const onAbort = () => controller.abort();
    request.signal?.addEventListener("abort", onAbort, { once: true });
    const url = `${this.options.baseUrl.replace(/\/$/, "")}/chat/completions`;
    try {
      const chat = this.options.chat;
      if (chat) {
        try {
          return spokenText(await chat({ model: request.model, system, messages: turns, signal: controller.signal }));
        } catch (err) {
          if (request.signal?.aborted) return undefined;
          const which = request.model ?? "(the gateway's default)";
          if (controller.signal.aborted) throw new VoiceCallError("UNAVAILABLE", `response model ${which}: no answer within ${timeoutMs} ms`);
          throw new VoiceCallError("PROVIDER_ERROR", `response model ${which}: ${(err as Error).message}`);
        }
      }
      if (request.model === undefined) throw new VoiceCallError("INVALID_CONFIG", "responseModel: required to answer callers through responseBaseUrl");
      let res: Response;
      try {
        res = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json", ...(this.options.apiKey ? { Authorization: `Bearer ${this.options.apiKey}` } : {}) },
          body: JSON.stringify({ model: modelName(request.model!), messages, temperature: 0.4 }),
          signal: controller.signal,
        });
      } catch (err) {
        if (request.signal?.aborted) return undefined;
        const reason = controller.signal.aborted ? `no answer within ${timeoutMs} ms` : (err as Error).message;
        throw new VoiceCallError("UNAVAILABLE", `response model at ${url}: ${reason}`);
      }
      if (!res.ok) {
        const status = res.status === 401 || res.status === 403 ? "refused the API key" : `answered HTTP ${res.status}`;
        throw new VoiceCallError("PROVIDER_ERROR", `response model at ${url} ${status}`);
      }
      const body = (await res.json()) as { choices?: Array<{ message?: { content?: string | null } }> };
      return spokenText(body.choices?.[0]?.message?.content ?? "");
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** "openai/gpt-4o-mini" (the reference config's form) -> "gpt-4o-mini"; other names pass as they are. */
function modelName(model: string): string {
  return model.startsWith("openai/") ? model.slice("openai/".length) : model;
}

/**
 * What of a model's answer may be said aloud: the `spoken` field of its JSON
 * when there is one, else the plain text without reasoning, fences, markup
 * and lines that talk about the answer instead of giving it.
 */
export function spokenText(content: string): string | undefined {
  const visible = content
    .replace(/<(think|thinking|reasoning|analysis)>[\s\S]*?(<\/\1>|$)/gi, "")
    .replace(/```(?:json)?/gi, "")
    .trim();
  const json = visible.match(/\{[\s\S]*\}/);
  if (json) {
    try {
      const parsed = JSON.parse(json[0]) as { spoken?: unknown };
      if (typeof parsed.spoken === "string") return clean(parsed.spoken);
    } catch {
      // Not JSON after all: fall through to the plain text.
    }
  }
  const lines = visible
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/^(reasoning|thought|thinking|analysis|note|meta|internal)\b.*:/i.test(l) && !/^\(.*\)$/.test(l) && !/^\[.*\]$/.test(l));
  return clean(lines.join(" "));
}

function clean(text: string): string | undefined {
  const out = text
    .replace(/[*_#`>]+/g, "")
    .replace(/\s+/g, " ")
    .trim();
  return /[\p{L}\p{N}]/u.test(out) ? out : undefined;
}
