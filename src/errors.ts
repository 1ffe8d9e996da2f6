/**
 * Typed errors with a stable `code`. Every surface (RPC, tool, CLI, config)
 * turns these into `{ code, message }` for the user; a stack trace is never shown.
 */
import type { z } from "zod";

export type ErrorCode =
  | "INVALID_CONFIG"
  | "INVALID_PARAMS"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "CALL_ENDED"
  | "INVALID_STATE"
  | "LIMIT_REACHED"
  | "TIMEOUT"
  | "INTERRUPTED"
  | "PROVIDER_ERROR"
  | "UNSUPPORTED"
  | "UNAVAILABLE"
  | "UNKNOWN_METHOD"
  | "STORE_UNAVAILABLE"
  | "INTERNAL";

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "INVALID_CONFIG", "INVALID_PARAMS", "UNAUTHORIZED", "NOT_FOUND", "CALL_ENDED", "INVALID_STATE", "LIMIT_REACHED", "TIMEOUT",
  "INTERRUPTED", "PROVIDER_ERROR", "UNSUPPORTED", "UNAVAILABLE", "UNKNOWN_METHOD", "STORE_UNAVAILABLE", "INTERNAL",
]);

/**
 * Marks our errors across module copies: the gateway loads this package more
 * than once per process, and an error thrown by one copy must keep its code
 * when another copy catches it (`instanceof` sees a different class).
 */
const BRAND = Symbol.for("openclaw-voice-call.error");

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. "serve.port" or "params.to". */
  path: string;
  message: string;
}

export class VoiceCallError extends Error {
  readonly code: ErrorCode;
  readonly issues: FieldIssue[];

  constructor(code: ErrorCode, message: string, issues: FieldIssue[] = []) {
    super(message);
    this.name = "VoiceCallError";
    this.code = code;
    this.issues = issues;
    (this as unknown as Record<symbol, true>)[BRAND] = true;
  }

  toJSON(): { code: ErrorCode; message: string; issues?: FieldIssue[] } {
    return this.issues.length > 0
      ? { code: this.code, message: this.message, issues: this.issues }
      : { code: this.code, message: this.message };
  }
}

/** Flattens zod issues to one line per offending field, naming the full path. */
export function zodIssues(error: z.ZodError, prefix = ""): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of error.issues) {
    const base = joinPath(prefix, issue.path);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) out.push({ path: joinPath(base, [key]), message: "unknown key" });
      continue;
    }
    out.push({ path: base || "(root)", message: issue.message });
  }
  return out;
}

export function formatIssues(issues: FieldIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join("; ");
}

/** Parses `value` with `schema` or throws INVALID_PARAMS naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  code: ErrorCode = "INVALID_PARAMS",
): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = zodIssues(result.error);
  throw new VoiceCallError(code, `invalid ${what}: ${formatIssues(issues)}`, issues);
}

/**
 * Parses JSON text from outside (a webhook body, a media-stream frame) with
 * `schema`: INVALID_PARAMS naming `what` when it is not JSON, or the first
 * offending field when it does not fit.
 */
export function parseJsonOrThrow<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new VoiceCallError("INVALID_PARAMS", `${what}: not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = zodIssues(parsed.error, what)[0];
    throw new VoiceCallError("INVALID_PARAMS", `${issue?.path ?? what}: ${issue?.message ?? "unexpected content"}`);
  }
  return parsed.data;
}

/** Wraps anything thrown into a VoiceCallError without losing its message. */
export function asVoiceCallError(err: unknown): VoiceCallError {
  if (err instanceof VoiceCallError) return err;
  if (isForeignVoiceCallError(err)) return new VoiceCallError(err.code, err.message, Array.isArray(err.issues) ? err.issues : []);
  const message = err instanceof Error ? err.message : String(err);
  return new VoiceCallError("INTERNAL", message);
}

function isForeignVoiceCallError(err: unknown): err is { code: ErrorCode; message: string; issues?: FieldIssue[] } {
  if (typeof err !== "object" || err === null || !(BRAND in err)) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  return typeof code === "string" && ERROR_CODES.has(code) && typeof message === "string";
}

function joinPath(prefix: string, path: ReadonlyArray<PropertyKey>): string {
  const parts = path.map((p) => (typeof p === "number" ? `[${p}]` : String(p)));
  let out = prefix;
  for (const part of parts) {
    if (part.startsWith("[")) out += part;
    else out = out ? `${out}.${part}` : part;
  }
  return out;
}
