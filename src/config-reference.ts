/**
 * The configuration reference (docs/config-reference.md), generated from the
 * zod schema and each speech engine's options schema, so the page and the
 * code cannot disagree: every key with its type, default, environment
 * variable and description. `npm run docs` rewrites the page; a test fails
 * when the committed one is stale.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { envVarFor } from "./config/env.js";
import { VoiceCallConfigSchema } from "./config/schema.js";
import { realtimeProviderOptions } from "./realtime/index.js";
import { speechEngineOptions } from "./speech/index.js";

/** The JSON Schema subset zod emits for our config. */
interface Json {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Json[];
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  properties?: Record<string, Json>;
  additionalProperties?: Json | boolean;
  items?: Json;
}

export interface Row {
  path: string;
  type: string;
  default?: unknown;
  env?: string;
  description: string;
  /** Heads a group of rows (an object, or a map or list of objects). */
  head?: boolean;
}

function jsonOf(schema: z.ZodType): Json {
  // An engine's options that also take older spellings are a preprocess pipe: document what it parses into.
  const inner = schema instanceof z.ZodPipe ? (schema.out as z.ZodType) : schema;
  return z.toJSONSchema(inner, { target: "draft-07", io: "input", unrepresentable: "any" }) as Json;
}

const isObject = (s: Json) => s.type === "object";
const isSecretRef = (s: Json) => ["source", "provider", "id"].every((k) => k in (s.properties ?? {}));
const isMap = (s: Json) => isObject(s) && !s.properties && typeof s.additionalProperties === "object";

function typeOf(s: Json): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.anyOf) return s.anyOf.map(typeOf).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === "array") return `${s.items ? typeOf(s.items) : "unknown"}[]`;
  if (isMap(s)) return "map";
  if (s.type === "string") return s.format === "uri" ? "URL" : "string";
  if (s.type === "integer" || s.type === "number") {
    const base = s.type;
    const max = s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER ? s.maximum : undefined;
    if (s.exclusiveMinimum !== undefined) return `${base} > ${s.exclusiveMinimum}${max !== undefined ? `, ≤ ${max}` : ""}`;
    if (s.minimum !== undefined && max !== undefined) return `${base} ${s.minimum}–${max}`;
    if (s.minimum !== undefined) return `${base} ≥ ${s.minimum}`;
    return base;
  }
  return Array.isArray(s.type) ? s.type.join(" | ") : (s.type ?? "any");
}

/** Every key under `schema`, depth first; objects with fields become headings of their own rows. */
function rows(schema: Json, prefix: string, out: Row[]): Row[] {
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    const row: Row = { path, type: typeOf(child), env: envVarFor(path), description: child.description ?? "" };
    if (child.default !== undefined && !(isObject(child) && child.properties)) row.default = child.default;
    if (isObject(child) && child.properties) {
      out.push({ ...row, type: "object", head: true });
      rows(child, path, out);
      continue;
    }
    // One of several forms, one an object (a string or an object, an object or a list of them): that object's fields.
    // (A secret's SecretRef form is described once on the page, not under every secret.)
    const form = child.anyOf?.find((alt) => isObject(alt) && alt.properties && !isSecretRef(alt));
    if (form) {
      out.push({ ...row, head: true });
      rows(form, path, out);
      continue;
    }
    // A map or list of objects: its entries' fields under <key> or [].
    const entry = isMap(child) ? (child.additionalProperties as Json) : child.type === "array" ? child.items : undefined;
    out.push(entry?.properties ? { ...row, head: true } : row);
    if (entry?.properties) rows(entry, isMap(child) ? `${path}.<${key === "numbers" ? "E164" : "id"}>` : `${path}[]`, out);
  }
  return out;
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");
const code = (text: string) => `\`${text}\``;

function table(list: Row[]): string[] {
  const lines = ["| key | type | default | env | description |", "|---|---|---|---|---|"];
  for (const r of list) {
    const def = r.default === undefined ? "" : code(JSON.stringify(r.default));
    lines.push(`| ${code(r.path)} | ${cell(r.type)} | ${cell(def)} | ${r.env ? code(r.env) : ""} | ${cell(r.description)} |`);
  }
  return lines;
}

/** Every key the page lists: the config's own, then each speech engine's options. */
export function configKeys(): Row[] {
  return [
    ...rows(jsonOf(VoiceCallConfigSchema), "", []),
    ...speechEngineOptions().flatMap((e) => rows(jsonOf(e.options), `${e.section}.providers.${e.id}`, [])),
    ...realtimeProviderOptions().flatMap((p) => rows(jsonOf(p.options), `realtime.providers.${p.id}`, [])),
  ];
}

/** The whole page, as markdown. */
export function configReference(): string {
  const all = rows(jsonOf(VoiceCallConfigSchema), "", []);
  const sections = new Map<string, Row[]>();
  for (const row of all) {
    const top = row.path.includes(".") || row.path.includes("[") || row.head ? row.path.split(/[.[]/)[0]! : "";
    sections.set(top, [...(sections.get(top) ?? []), row]);
  }
  const out = [
    "# Configuration reference",
    "",
    "<!-- Generated by `npm run docs` from src/config/schema.ts and the speech engines' option schemas. Do not edit: a test fails when this page is stale. -->",
    "",
    "Every key of the config file (JSON or JSON5), the plugin config inside the gateway, and the",
    "environment variables that fill them (a value in the file wins, except `VOICECALL_TOKEN`).",
    "How a config is loaded, checked, migrated and routed: [configuration.md](configuration.md).",
    "",
    "## Top level",
    "",
    ...table(sections.get("") ?? []),
  ];
  for (const [top, list] of sections) {
    if (top === "") continue;
    out.push("", `## ${code(top)}`, "", ...table(list));
  }
  const engines = speechEngineOptions();
  for (const section of ["streaming", "tts"] as const) {
    const title = section === "streaming" ? "Speech recognition engines" : "Text-to-speech engines";
    out.push("", `## ${title}: \`${section}.providers.<id>\``, "");
    out.push(
      section === "streaming"
        ? "Chosen by `streaming.provider`, else the first in auto-select order whose options are complete (a cloud engine needs its key)."
        : "Chosen by `tts.provider` (or a number's `numbers.<E164>.tts.provider`), else the first in auto-select order whose options are complete.",
    );
    for (const engine of engines.filter((e) => e.section === section)) {
      const order = engine.autoSelectOrder === undefined ? "only when chosen by id" : `auto-select order ${engine.autoSelectOrder}`;
      out.push("", `### ${code(engine.id)} (${order})`, "");
      const list = rows(jsonOf(engine.options), `${section}.providers.${engine.id}`, []);
      out.push(...(list.length ? table(list) : ["No options."]));
    }
  }
  out.push("", "## Realtime voice providers: `realtime.providers.<id>`", "", "Chosen by `realtime.provider` (default `openai`) when `realtime.enabled` is set.");
  for (const provider of realtimeProviderOptions()) {
    out.push("", `### ${code(provider.id)}`, "", ...table(rows(jsonOf(provider.options), `realtime.providers.${provider.id}`, [])));
  }
  return `${out.join("\n")}\n`;
}

export const CONFIG_REFERENCE_PATH = fileURLToPath(new URL("../docs/config-reference.md", import.meta.url));

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--write")) {
  writeFileSync(CONFIG_REFERENCE_PATH, configReference());
  process.stdout.write(`wrote ${CONFIG_REFERENCE_PATH}\n`);
}
