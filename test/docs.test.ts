/**
 * The docs that cannot drift: the configuration reference is generated from
 * the schema (npm run docs) and must match it; every key has a description;
 * the README stays short and every local link in it and in docs/ resolves.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_REFERENCE_PATH, configKeys, configReference } from "../src/config-reference.js";

const ROOT = resolve(import.meta.dirname, "..");

describe("docs", () => {
  it("docs/config-reference.md is in step with the schema (npm run docs)", () => {
    expect(readFileSync(CONFIG_REFERENCE_PATH, "utf8")).toBe(configReference());
  });

  it("lists every key with a description, the secrets with their environment variables", () => {
    const keys = configKeys();
    expect(keys.filter((k) => !k.description).map((k) => k.path)).toEqual([]);
    const paths = keys.map((k) => k.path);
    for (const path of ["serve.port", "asterisk.media.codec", "numbers.<E164>.tts.provider", "routing.rules[].pattern", "streaming.providers.openai.apiKey", "tts.providers.flite.voice"]) {
      expect(paths).toContain(path);
    }
    const env = Object.fromEntries(keys.filter((k) => k.env).map((k) => [k.path, k.env]));
    expect(env).toMatchObject({ "twilio.authToken": "TWILIO_AUTH_TOKEN", "control.token": "VOICECALL_TOKEN", "tts.providers.elevenlabs.apiKey": "ELEVENLABS_API_KEY" });
  });

  it("keeps the README under 250 lines, and every local link in it and in docs/ points at a file and heading that exist", () => {
    const readme = join(ROOT, "README.md");
    expect(readFileSync(readme, "utf8").split("\n").length).toBeLessThanOrEqual(250);
    const pages = [readme, ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(ROOT, "docs", f))];
    // A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens.
    const anchors = (file: string) =>
      new Set([...readFileSync(file, "utf8").matchAll(/^#+ (.+)$/gm)].map(([, h]) => h!.toLowerCase().replace(/[^\p{L}\p{N} -]/gu, "").replace(/ /g, "-")));
    const broken: string[] = [];
    for (const page of pages) {
      for (const [, target, anchor] of readFileSync(page, "utf8").matchAll(/\]\(([^)#\s]*)(?:#([^)]*))?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const file = target ? resolve(dirname(page), target) : page;
        if (!existsSync(file)) broken.push(`${page.slice(ROOT.length + 1)} -> ${target}`);
        else if (anchor && file.endsWith(".md") && !anchors(file).has(anchor)) broken.push(`${page.slice(ROOT.length + 1)} -> ${target}#${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
