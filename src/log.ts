/**
 * pino, with secrets redacted wherever they appear up to four levels deep
 * (config objects, request params, headers). Per-call context comes from
 * `logger.child({ callId, provider })`.
 */
import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

const SECRET_KEYS = [
  "authToken",
  "apiKey",
  "responseApiKey",
  "password",
  "token",
  "publicKey",
  "ngrokAuthToken",
  "authorization",
  "Authorization",
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of SECRET_KEYS) {
    let prefix = "";
    for (let depth = 0; depth < 4; depth += 1) {
      paths.push(`${prefix}${key}`);
      prefix += "*.";
    }
  }
  return paths;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: redactPaths(), censor: "[redacted]" }, base: { name: "voicecall" } };
  return destination ? pino(options, destination) : pino(options);
}
