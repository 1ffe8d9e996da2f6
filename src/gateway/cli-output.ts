/**
 * How the voicecall commands print: one result line (or JSON with --json),
 * errors as `voicecall: CODE: message` on stderr with exit code 1, caller and
 * carrier text made safe for a terminal.
 */
import { asVoiceCallError, type VoiceCallError } from "../errors.js";

export interface OutputIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface OutputOptions {
  json?: boolean;
}

export async function report<T>(io: OutputIo, g: OutputOptions, run: () => Promise<T>, human: (result: T) => string): Promise<void> {
  try {
    const result = await run();
    io.out(g.json ? JSON.stringify({ ok: true, result }) : human(result));
  } catch (err) {
    fail(io, g, asVoiceCallError(err));
  }
}

export function fail(io: OutputIo, g: OutputOptions, error: VoiceCallError): void {
  if (g.json) io.out(JSON.stringify({ ok: false, error: error.toJSON() }));
  else io.err(`voicecall: ${error.code}: ${printable(error.message).replaceAll("\\x0a", "\n")}`);
  process.exitCode = 1;
}

/**
 * Text from callers and carriers, safe for a terminal: control characters
 * (escape sequences that could move the cursor, retitle the window or hide
 * lines) are shown as \xNN instead of being sent to it.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

