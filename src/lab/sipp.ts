/**
 * sipp scenarios for the PBX tests, run inside the lab root: a caller that
 * dials an extension, streams a tone, sends DTMF and hangs up (or waits for
 * our hang-up), and a callee (UAS) that rings, answers or refuses.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LabTools } from "./lab.js";

export interface CallerScript {
  extension: string;
  /** Raw 8 kHz mu-law to stream after answer (path inside the root). */
  audioFile?: string;
  /** Digits to send as RFC 4733 events after the audio, in order. */
  dtmf?: string;
  /**
   * ms to stay on the call before hanging up (the far end may hang up first:
   * that is a normal end too); "wait" waits for the far end's BYE.
   */
  holdMs: number | "wait";
  /** Audio port offered in SDP; set it to receive the call's audio in the test. */
  mediaPort?: number;
  /** The caller's number, asserted with P-Asserted-Identity (the lab trusts it from this test caller only). */
  from?: string;
  /** Call as a phone that authenticates (answers the PBX's 401 challenge), not as the lab's test caller. */
  auth?: { username: string; password: string };
  /**
   * The call goes through a record-routing proxy (Kamailio): ACK and BYE go
   * to the far end's Contact along the route set of its 200, not to the
   * address dialled.
   */
  viaProxy?: boolean;
}

/** SDP offer/answer; `mediaPort` fixes the audio port so the test can listen there as the phone. */
function sdp(mediaPort?: number): string {
  return [
    "v=0",
    "o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]",
    "s=-",
    "c=IN IP[media_ip_type] [media_ip]",
    "t=0 0",
    `m=audio ${mediaPort ?? "[media_port]"} RTP/AVP 0 101`,
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
  ].join("\n");
}

interface RequestOptions {
  body?: string;
  /** P-Asserted-Identity number. */
  asserted?: string;
  /** From user (default: sipp, the lab's test caller). */
  user?: string;
  /** Answer the challenge just received with these credentials. */
  auth?: { username: string; password: string };
  /** An in-dialog request along the route set (a record-routing proxy between): to the Contact, with Route headers. */
  routed?: boolean;
}

/** A request from the caller within its dialog (sipp fills in the bracketed keywords). */
function request(method: string, cseq: number, toTag: boolean, o: RequestOptions = {}): string {
  const user = o.user ?? "sipp";
  return `<send retrans="500"><![CDATA[
${method} ${o.routed ? "[next_url]" : "sip:[service]@[remote_ip]:[remote_port]"} SIP/2.0
${o.routed ? "[routes]\n" : ""}Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: ${user} <sip:${user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>${toTag ? "[peer_tag_param]" : ""}
Call-ID: [call_id]
CSeq: ${cseq} ${method}
Contact: sip:${user}@[local_ip]:[local_port]
Max-Forwards: 70
${o.auth ? `[authentication username=${o.auth.username} password=${o.auth.password}]\n` : ""}${o.asserted ? `P-Asserted-Identity: <sip:${o.asserted}@[local_ip]>\n` : ""}${o.body ? `Content-Type: application/sdp\nContent-Length: [len]\n\n${o.body}` : "Content-Length: 0\n"}
]]></send>`;
}

/** The ACK for a final error response (the 401 challenge): the same transaction as the INVITE. */
function ackError(cseq: number): string {
  return `<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: ${cseq} ACK
Content-Length: 0
]]></send>`;
}

/** A response to the last request received; `tag` adds our To tag (first response of a dialog). */
function response(status: string, opts: { tag?: boolean; contact?: boolean; body?: string } = {}): string {
  return `<send><![CDATA[
SIP/2.0 ${status}
[last_Via:]
[last_From:]
[last_To:]${opts.tag ? ";tag=[pid]SIPpTag01[call_number]" : ""}
[last_Call-ID:]
[last_CSeq:]
${opts.contact ? "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n" : ""}${opts.body ? `Content-Type: application/sdp\nContent-Length: [len]\n\n${opts.body}` : "Content-Length: 0\n"}
]]></send>`;
}

export function callerScenario(s: CallerScript): string {
  const steps: string[] = [];
  if (s.audioFile) steps.push(`<nop><action><exec rtp_stream="${s.audioFile},1,0"/></action></nop>`, `<pause milliseconds="2200"/>`);
  for (const digit of s.dtmf ?? "") {
    steps.push(`<nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_${digit}.pcap"/></action></nop>`, `<pause milliseconds="400"/>`);
  }
  const user = s.auth?.username;
  // With credentials: the first INVITE is challenged (401), acknowledged, and sent again answering the challenge.
  const invite = s.auth
    ? `${request("INVITE", 1, false, { body: sdp(s.mediaPort), user })}
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  ${ackError(1)}
  ${request("INVITE", 2, false, { body: sdp(s.mediaPort), user, auth: s.auth })}`
    : request("INVITE", 1, false, { body: sdp(s.mediaPort), asserted: s.from });
  const cseq = s.auth ? 2 : 1;
  const end =
    s.holdMs === "wait"
      ? `<recv request="BYE" timeout="30000"/>\n  ${response("200 OK")}`
      : // Their BYE within holdMs is answered; else ours goes at holdMs (sipp jumps to label 1 on the timeout).
        `<recv request="BYE" timeout="${s.holdMs}" ontimeout="1"/>\n  ${response("200 OK")}\n  <nop next="2"/>\n  <label id="1"/>\n  ${request("BYE", cseq + 1, true, { user, routed: s.viaProxy })}\n  <recv response="200" crlf="true"/>\n  <label id="2"/>`;
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="voicecall caller">
  ${invite}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"${s.viaProxy ? ' rrs="true"' : ""}/>
  ${request("ACK", cseq, true, { user, routed: s.viaProxy }).replace('<send retrans="500">', "<send>")}
  ${steps.join("\n  ")}
  ${end}
</scenario>
`;
}

/**
 * A callee: answers after ringMs (or answers with `status`, e.g. 486 busy)
 * and waits for BYE; with `holdMs` it hangs up itself that long after
 * answering, unless our BYE comes first.
 */
export function calleeScenario(opts: { ringMs: number; status?: number; mediaPort?: number; holdMs?: number }): string {
  const refuse = opts.status !== undefined && opts.status !== 200;
  // A callee that hangs up itself keeps the caller's From and its own To for its BYE (sipp refuses unused variables).
  const invite =
    opts.holdMs === undefined
      ? `<recv request="INVITE" crlf="true"/>`
      : `<recv request="INVITE" crlf="true" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="callerFrom"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="calleeTo"/>
    </action>
  </recv>`;
  const end =
    opts.holdMs === undefined
      ? `<recv request="BYE" timeout="60000"/>\n  ${response("200 OK")}`
      : `<recv request="BYE" timeout="${opts.holdMs}" ontimeout="1"/>\n  ${response("200 OK")}\n  <nop next="2"/>\n  <label id="1"/>\n  ${calleeBye()}\n  <recv response="200" crlf="true"/>\n  <label id="2"/>`;
  const reply = refuse
    ? `${response(`${opts.status} Refused`, { tag: true })}\n  <recv request="ACK"/>`
    : `${response("200 OK", { tag: true, contact: true, body: sdp(opts.mediaPort) }).replace("<send>", '<send retrans="500">')}
  <recv request="ACK" crlf="true"/>
  ${end}`;
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="voicecall callee">
  ${invite}
  ${response("180 Ringing", { tag: true, contact: true })}
  <pause milliseconds="${opts.ringMs}"/>
  ${reply}
</scenario>
`;
}

/** The callee's BYE: its dialog seen from its side (From and To swapped from the INVITE it answered). */
function calleeBye(): string {
  return `<send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$calleeTo];tag=[pid]SIPpTag01[call_number]
To: [$callerFrom]
Call-ID: [call_id]
CSeq: 1 BYE
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0
]]></send>`;
}

/** Writes the scenario into the root and starts sipp; resolves with its exit code and output. */
export function runSipp(
  lab: LabTools,
  name: string,
  scenario: string,
  args: string[],
  timeoutSec = 15,
): { child: ChildProcess; done: Promise<{ code: number | null; output: string }> } {
  const dir = lab.hostPath("tmp/voicecall-tests");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.xml`), scenario);
  // A Call-ID of its own: sipp's default (call number, pid, address) is the same for every phone run in a
  // container of its own (pid 1), and a proxy in front (Kamailio) tells calls apart by it.
  const cid = `%u-${randomBytes(6).toString("hex")}-%p@%s`;
  const child = lab.spawn("sipp", ["-sf", `/tmp/voicecall-tests/${name}.xml`, "-m", "1", "-nostdin", "-timeout", `${timeoutSec}s`, "-timeout_error", "-cid_str", cid, ...args]);
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const done = new Promise<{ code: number | null; output: string }>((resolve) => child.on("exit", (code) => resolve({ code, output })));
  return { child, done };
}
