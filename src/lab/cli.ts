/**
 * The lab on the command line: `voicecall serve --lab` (what `npm start`
 * runs) starts the local Asterisk and points the service at it, and
 * `voicecall lab call` / `voicecall lab answer` make the lab phone call the
 * service or answer its calls, saying a sentence and recording what it heard.
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { Resampler } from "../audio/resample.js";
import { FliteSynthesizer } from "../speech/flite.js";
import { PocketsphinxTranscriber, transcribePcm } from "../speech/pocketsphinx.js";
import { synthesizeAll } from "../speech/types.js";
import { readWavPcm16, writeWavPcm16 } from "../speech/wav.js";
import { VoiceCallError } from "../errors.js";
import { LAB_SLOTS } from "./config.js";
import { defaultLabBackend, Lab, labUnavailableReason } from "./lab.js";
import { labAnswer, labCall, type PhoneResult } from "./phone.js";
import { formatLoad, runLoad } from "./load.js";
import type { VoiceCallClient } from "../server/client.js";

export interface LabIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** The dial template that reaches the lab phone when it answers (voicecall lab answer). */
export const LAB_DIAL_TEMPLATE = "PJSIP/{to}@lab-uas";
export const LAB_GREETING = "Hello, you reached the voice call lab. How can I help?";

/**
 * Starts the lab and returns the config it implies, laid under the user's
 * own (their keys win). Where no lab back-end can run: returns the reason instead.
 */
export async function startLab(raw: Record<string, unknown>, io: LabIo): Promise<{ lab?: Lab; raw: Record<string, unknown>; reason?: string }> {
  const backend = defaultLabBackend();
  // Chosen by VOICECALL_LAB_BACKEND: why that one cannot run; else why neither can.
  const chosen = process.env.VOICECALL_LAB_BACKEND ? labUnavailableReason(backend) : labUnavailableReason();
  if (chosen) return { raw, reason: process.env.VOICECALL_LAB_BACKEND ? `the ${backend} lab: ${chosen}` : chosen };
  // An Asterisk a killed service left running is taken over with its calls: the restarted service takes them back.
  const lab = await Lab.start({ backend, adoptLeftover: true, onProgress: (line) => io.err(`[lab] ${line}`) });
  const asterisk = (raw.asterisk ?? {}) as Record<string, unknown>;
  const overlay: Record<string, unknown> = {
    provider: "asterisk",
    inboundPolicy: "open",
    inboundGreeting: LAB_GREETING,
    // The lab is for trying load too (voicecall lab load); a user's own limit still wins.
    maxConcurrentCalls: 100,
    ...raw,
    asterisk: {
      dialTemplate: LAB_DIAL_TEMPLATE,
      ...asterisk,
      ari: { url: lab.info.ariUrl, username: lab.info.ariUser, password: lab.info.ariPassword, app: lab.info.ariApp },
    },
  };
  return { lab, raw: overlay };
}

/** How to reach the lab, printed once it runs. */
export function labHowTo(lab: Lab): string[] {
  return [
    `lab: ${lab.info.version} on 127.0.0.1 (SIP ${lab.info.sipPort}, ARI ${lab.info.ariUrl}); nothing leaves loopback`,
    `lab: call the service:    npx voicecall lab call --to 100 --say "I would like to book a table" --record heard.wav`,
    `lab: be called by it:     npx voicecall lab answer --record heard.wav   then   npx voicecall call --to 300 --message "Hello from the lab"`,
    `lab: a softphone:         register 6001 (password ${lab.info.labPhonePassword}) at 127.0.0.1:${lab.info.sipPort}, then dial any number`,
  ];
}

export function registerLabCommands(root: Command, io: LabIo, service: (cmd: Command) => VoiceCallClient): void {
  const lab = root.command("lab").description("the local PBX lab's phone (start the lab with: voicecall serve --lab, or npm start)");

  const voiceOptions = (cmd: Command) =>
    slotOption(cmd)
      .addOption(new Option("--say <text>", "what the phone says (spoken with flite)").conflicts("wav"))
      .option("--wav <file>", "a WAV file (PCM16 mono) for the phone to say")
      .option("--record <file>", "write what the phone heard to this WAV file");

  voiceOptions(lab.command("call").description("the lab phone calls the service and says something"))
    .option("--to <extension>", "number the phone dials", "100")
    .option("--hold <seconds>", "hang up after this many seconds", "15")
    .action(async (o: { to: string; hold: string; say?: string; wav?: string; record?: string; slot: string }) => {
      await runPhone(io, o, async (say) => labCall(await Lab.running({ slot: slotOf(o.slot) }), o.to, { say, holdMs: seconds("--hold", o.hold) * 1000, onProgress: io.err }));
    });

  voiceOptions(lab.command("answer").description("the lab phone waits for the service's call (dial template PJSIP/{to}@lab-uas) and answers"))
    .option("--wait <seconds>", "give up when no call came within this time", "120")
    .action(async (o: { wait: string; say?: string; wav?: string; record?: string; slot: string }) => {
      await runPhone(io, o, async (say) => labAnswer(await Lab.running({ slot: slotOf(o.slot) }), { say, waitMs: seconds("--wait", o.wait) * 1000, onProgress: io.err }));
    });

  slotOption(lab.command("load"))
    .description("N lab phones call the running service at once and each says a sentence: greeted? transcribed? how fast, how much memory, what was left behind")
    .option("--calls <n>", "phones calling at once", "20")
    .option("--say <text>", "what each phone says (spoken with flite)", "I would like to book a table for four people.")
    .option("--hold <seconds>", "each phone hangs up after this many seconds (if the service has not)", "15")
    .option("--json", "machine-readable output")
    .action(async (o: { calls: string; say: string; hold: string; json?: boolean; slot: string }, cmd: Command) => {
      try {
        const calls = Number(o.calls);
        if (!Number.isInteger(calls) || calls < 1 || calls > 200) throw new VoiceCallError("INVALID_PARAMS", `--calls: expected 1-200, got ${JSON.stringify(o.calls)}`);
        const client = service(cmd);
        const say = await synthesizeAll(new FliteSynthesizer(), o.say, 8000);
        const report = await runLoad(await Lab.running({ slot: slotOf(o.slot) }), client, {
          calls,
          say,
          sayText: o.say,
          holdMs: seconds("--hold", o.hold) * 1000,
          onProgress: io.err,
        });
        if (o.json) io.out(JSON.stringify(report));
        else for (const line of formatLoad(report, o.say)) io.out(line);
        const failed = report.calls.some((c) => !c.greeted || !c.transcript);
        if (failed) process.exitCode = 1;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        io.err(`voicecall: ${err instanceof VoiceCallError ? `${err.code}: ` : ""}${message}`);
        process.exitCode = 1;
      }
    });
}

/** Which lab on this machine the phone uses: the one npm start runs (slot 0), or another slot's (see docs/lab.md). */
function slotOption(cmd: Command): Command {
  return cmd.option("--slot <n>", `the lab's slot, 0-${LAB_SLOTS - 1} (each its own ports)`, "0");
}

function slotOf(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n >= LAB_SLOTS) throw new VoiceCallError("INVALID_PARAMS", `--slot: expected 0-${LAB_SLOTS - 1}, got ${JSON.stringify(value)}`);
  return n;
}

function seconds(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 3600) throw new VoiceCallError("INVALID_PARAMS", `${flag}: expected seconds between 1 and 3600, got ${JSON.stringify(value)}`);
  return n;
}

async function runPhone(
  io: LabIo,
  o: { say?: string; wav?: string; record?: string },
  run: (say: Int16Array | undefined) => Promise<PhoneResult>,
): Promise<void> {
  try {
    const say = o.say ? await synthesizeAll(new FliteSynthesizer(), o.say, 8000) : o.wav ? await wavAt8k(o.wav) : undefined;
    const result = await run(say);
    if (o.record) {
      writeFileSync(o.record, writeWavPcm16(result.heard, 8000));
      io.out(`recorded ${(result.heard.length / 8000).toFixed(1)} s of what the phone heard to ${o.record}`);
    }
    const words = await transcribe(result.heard);
    if (words !== undefined) io.out(`the phone heard: ${words || "(no words)"}`);
    if (result.code !== 0) {
      io.err(`voicecall: the call did not go as scripted (sipp exit ${result.code}):\n${result.output.trim().split("\n").slice(-8).join("\n")}`);
      process.exitCode = 1;
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    io.err(`voicecall: ${err instanceof VoiceCallError ? `${err.code}: ` : ""}${message}`);
    process.exitCode = 1;
  }
}

async function wavAt8k(file: string): Promise<Int16Array> {
  let wav: { pcm: Int16Array; sampleRate: number };
  try {
    wav = readWavPcm16(readFileSync(file));
  } catch (err) {
    throw new VoiceCallError("INVALID_PARAMS", `--wav: ${file}: ${(err as Error).message}`);
  }
  if (wav.sampleRate === 8000) return wav.pcm;
  const resampler = await Resampler.create(wav.sampleRate, 8000);
  try {
    return resampler.process(wav.pcm);
  } finally {
    resampler.destroy();
  }
}

/** The recording read back with the offline recogniser, when it is installed. */
async function transcribe(pcm: Int16Array): Promise<string | undefined> {
  let transcriber: PocketsphinxTranscriber;
  try {
    transcriber = new PocketsphinxTranscriber();
  } catch {
    return undefined;
  }
  return transcribePcm(pcm, 8000, transcriber);
}
