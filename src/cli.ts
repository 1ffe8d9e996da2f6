#!/usr/bin/env node
/** The `voicecall` binary. */

/**
 * Who started this process: an npm script's npm, when run by one. Read
 * before the rest is loaded (imports below are dynamic for this): on a
 * loaded machine loading takes seconds, and an npm gone by then would never
 * be seen to go.
 */
const parentAtStart = process.ppid;
const { Command } = await import("commander");
const { registerVoicecallCommands } = await import("./gateway/cli.js");

const program = new Command("voicecall").description("voice calls for AI agents").showHelpAfterError();
registerVoicecallCommands(program, {
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  untilSignal: () =>
    new Promise((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
      // Under an npm script (npm start), npm does not pass a SIGTERM on: when npm is gone, so is the reason to run.
      if (process.env.npm_lifecycle_event) setInterval(() => process.ppid !== parentAtStart && resolve(), 500).unref();
    }),
});
await program.parseAsync(process.argv);
