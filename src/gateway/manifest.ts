/**
 * Builds openclaw.plugin.json from the plugin entry, so the manifest's config
 * schema never drifts from the zod schema. `npm run manifest` rewrites it; a
 * test fails when the committed file is out of date.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { secretInputsContract } from "../config/secrets.js";
import entry from "./plugin.js";
import { TOOL_NAME } from "./tool.js";

export function buildManifest(): Record<string, unknown> {
  const { $schema: _drop, ...configSchema } = entry.configSchema.jsonSchema as Record<string, unknown>;
  return {
    id: entry.id,
    name: entry.name,
    description: entry.description,
    contracts: { tools: [TOOL_NAME] },
    // The gateway resolves SecretRefs at these paths before the plugin reads its config.
    configContracts: { secretInputs: secretInputsContract() },
    activation: { onStartup: true },
    // How and when the agent should use voice_call (skills/voice-call/SKILL.md).
    skills: ["./skills"],
    // `openclaw voicecall ...` is this plugin's: named in --help and in diagnostics before it loads.
    commandAliases: [{ name: "voicecall", kind: "cli" }],
    cliCommands: [{ name: "voicecall", description: "Voice calls: place, follow and end calls; setup, smoke tests, the PBX lab", hasSubcommands: true }],
    // doctor-contract-api.js: legacy keys reported by openclaw doctor and rewritten by --fix.
    doctorContract: { configRepair: true },
    uiHints: entry.configSchema.uiHints,
    configSchema,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--write")) {
  const path = fileURLToPath(new URL("../../openclaw.plugin.json", import.meta.url));
  writeFileSync(path, `${JSON.stringify(buildManifest(), null, 2)}\n`);
  process.stdout.write(`wrote ${path}\n`);
}
