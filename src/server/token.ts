/**
 * The control API's bearer token: config `control.token` or VOICECALL_TOKEN,
 * else one generated on first start and kept in the store folder (mode 0600)
 * so the CLI on the same machine finds it.
 */
import { randomBytes, timingSafeEqual, createHash } from "node:crypto";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const TOKEN_FILE = "control-token";

export function resolveControlToken(configured: string | undefined, storeDir: string): { token: string; generated: boolean } {
  if (configured) return { token: configured, generated: false };
  const path = join(storeDir, TOKEN_FILE);
  if (existsSync(path)) {
    // A token others can read is no secret: owner-only, whatever mode the file was left with.
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    const saved = readFileSync(path, "utf8").trim();
    if (saved.length >= 16) return { token: saved, generated: false };
  }
  const token = randomBytes(24).toString("base64url");
  // The mode option applies only when the file is created: set it on a rewritten one too.
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return { token, generated: true };
}

export function readSavedToken(storeDir: string): string | undefined {
  const path = join(storeDir, TOKEN_FILE);
  return existsSync(path) ? readFileSync(path, "utf8").trim() || undefined : undefined;
}

/** Compares in constant time; hashing first makes lengths equal. */
export function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = createHash("sha256").update(expected).digest();
  const b = createHash("sha256").update(presented).digest();
  return timingSafeEqual(a, b);
}
