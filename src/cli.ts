#!/usr/bin/env node
/** The `voicecall` binary. */
import { Command } from "commander";
import { registerVoicecallCommands } from "./gateway/cli.js";

const program = new Command("voicecall").description("voice calls for AI agents").showHelpAfterError();
registerVoicecallCommands(program, {
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  untilSignal: () =>
    new Promise((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    }),
});
await program.parseAsync(process.argv);
