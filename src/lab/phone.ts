/**
 * The lab phone: sipp inside the lab root does the SIP side, a UDP socket
 * in this process is its ear and mouth. It can call the service (an
 * extension on the lab Asterisk) or answer the service's calls (the
 * `lab-uas` endpoint: dial template `PJSIP/{to}@lab-uas`), say a recording
 * as the caller's voice once the far end has finished talking, and keep what
 * it heard.
 */
import { createSocket } from "node:dgram";
import type { AddressInfo } from "node:net";
import type { LabInfo } from "./config.js";
import type { LabTools } from "./lab.js";
import { PhoneAudio } from "./phone-audio.js";
import { calleeScenario, callerScenario, runSipp } from "./sipp.js";

export interface PhoneScript {
  /** 8 kHz PCM to say, once the far end has paused (after its greeting or message). */
  say?: Int16Array;
  onProgress?: (line: string) => void;
}

export interface PhoneResult {
  /** What the phone heard, 8 kHz PCM. */
  heard: Int16Array;
  /** From dialling (or the call arriving) to the first audio packet: answered and bridged. */
  firstAudioMs?: number;
  /** From dialling to the first audio louder than -45 dBFS: the greeting or message starts. */
  firstWordsMs?: number;
  /** sipp's exit code (0: the call went as scripted). */
  code: number | null;
  output: string;
}

/** A free UDP port on loopback for the phone's audio. */
async function freePort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Says `pcm` when the far end has talked and then been quiet for 700 ms (or after 8 s of waiting). */
async function speakAfterPause(audio: PhoneAudio, pcm: Int16Array, done: Promise<unknown>, progress: (l: string) => void): Promise<void> {
  const started = performance.now();
  let finished = false;
  void done.then(() => (finished = true));
  for (;;) {
    if (finished) return;
    const now = performance.now();
    const loud = audio.lastLoud(started);
    if ((loud !== undefined && now - loud > 700) || (audio.packets > 0 && now - started > 8000)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  progress("phone: speaking");
  await audio.say(pcm);
  progress("phone: done speaking");
}

/** The call as the phone lives it: say its piece once the far end pauses, hear everything until sipp is done. */
async function converse(
  audio: PhoneAudio,
  done: Promise<{ code: number | null; output: string }>,
  say: Int16Array | undefined,
  progress: (line: string) => void,
): Promise<PhoneResult> {
  const started = performance.now();
  try {
    if (say) await speakAfterPause(audio, say, done, progress);
    const { code, output } = await done;
    const since = (at: number | undefined) => (at === undefined ? undefined : Math.round(at - started));
    return { heard: audio.audio(), code, output, firstAudioMs: since(audio.firstPacketAt), firstWordsMs: since(audio.firstLoud(started)) };
  } finally {
    audio.close();
  }
}

/** A PBX the lab phone can reach: where its tools run, and the PBX's SIP port on loopback. */
export type PhoneLine = LabTools & { info: Pick<LabInfo, "sipPort"> };

/** The lab's phones dialling a proxy on loopback (Kamailio) instead of the lab's Asterisk. */
export function throughProxy(lab: LabTools, sipPort: number): PhoneLine {
  return { hostPath: (inside) => lab.hostPath(inside), spawn: (command, args) => lab.spawn(command, args), info: { sipPort } };
}

/**
 * The lab phone dials `extension` on the lab Asterisk: as the lab's test
 * caller, or with `auth` as a phone that authenticates (any deployed PBX).
 */
export async function labCall(
  lab: PhoneLine,
  extension: string,
  script: PhoneScript & { holdMs: number; auth?: { username: string; password: string }; viaProxy?: boolean },
): Promise<PhoneResult> {
  const progress = script.onProgress ?? (() => {});
  const mediaPort = await freePort();
  const audio = await PhoneAudio.open(mediaPort);
  const sipPort = await freePort();
  progress(`phone: dialling ${extension}`);
  const phone = runSipp(lab, `lab-call-${process.pid}-${extension}-${mediaPort}`, callerScenario({ extension, holdMs: script.holdMs, mediaPort, auth: script.auth, viaProxy: script.viaProxy }), [
    "-s", extension, "-p", String(sipPort), "-i", "127.0.0.1", `127.0.0.1:${lab.info.sipPort}`,
  ], Math.ceil(script.holdMs / 1000) + 15);
  return converse(audio, phone.done, script.say, progress);
}

/** The lab phone waits (up to waitMs) for one call to the `lab-uas` endpoint, answers it and stays until the far end hangs up. */
export async function labAnswer(lab: LabTools & { info: Pick<LabInfo, "uasPort"> }, script: PhoneScript & { ringMs?: number; waitMs?: number }): Promise<PhoneResult> {
  const progress = script.onProgress ?? (() => {});
  const mediaPort = await freePort();
  const audio = await PhoneAudio.open(mediaPort);
  progress(`phone: waiting for a call on port ${lab.info.uasPort} (dial template PJSIP/{to}@lab-uas)`);
  const phone = runSipp(lab, `lab-answer-${process.pid}-${mediaPort}`, calleeScenario({ ringMs: script.ringMs ?? 500, mediaPort }), [
    "-p", String(lab.info.uasPort), "-i", "127.0.0.1",
  ], Math.ceil((script.waitMs ?? 120_000) / 1000));
  return converse(audio, phone.done, script.say, progress);
}
