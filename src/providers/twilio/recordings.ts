/**
 * Twilio's own recordings of a transferred call (our audio has left it, so
 * Twilio records the caller and the person): the Dial or Conference that
 * joins them is recorded, its recordingStatusCallback (`?type=recording`,
 * naming our call by its CallSid in `call`) says where the file is, and the
 * WAV is fetched from the account's Recordings with the account's
 * credentials, only from Twilio's API hosts, and written where the call's
 * record says.
 */
import type { Logger } from "../../log.js";
import { fetchBytes, keepCarrierRecording, type TransferRecording } from "../carrier-recording.js";

/** What makes a `<Dial>` (dual: each side a channel) or a `<Conference>` (one mix) recorded, with its callback. */
export function recordingAttributes(callbackUrl: string) {
  const callback = { recordingStatusCallback: callbackUrl, recordingStatusCallbackMethod: "POST" as const, recordingStatusCallbackEvent: ["completed" as const] };
  return { dial: { record: "record-from-answer-dual" as const, ...callback }, conference: { record: "record-from-start" as const, ...callback } };
}

export class TwilioRecordings {
  /** Transferred calls whose recording is awaited, by the caller's CallSid. */
  private readonly awaited = new Map<string, TransferRecording>();

  constructor(
    private readonly accountSid: string,
    private readonly authToken: string,
    /** Where the API's requests go instead of Twilio's hosts (a local server speaking its API). */
    private readonly apiBaseUrl: string | undefined,
    private readonly log: Logger,
  ) {}

  expect(callSid: string, record: TransferRecording): void {
    this.awaited.set(callSid, record);
  }

  /** A recording status callback: the file fetched and written, or the call's record told why not. */
  async completed(callSid: string, form: URLSearchParams): Promise<void> {
    const record = this.awaited.get(callSid);
    if (!record) return;
    this.awaited.delete(callSid);
    const status = form.get("RecordingStatus") ?? "";
    if (status !== "completed") return record.done({ failed: `Twilio's recording of the transferred call is ${status || "missing"}${form.get("ErrorCode") ? ` (error ${form.get("ErrorCode")})` : ""}` });
    const source = this.source(form.get("RecordingUrl") ?? "");
    if (!source) return record.done({ failed: "Twilio's recording callback named no recording of this account" });
    const auth = { authorization: `Basic ${Buffer.from(`${this.accountSid}:${this.authToken}`).toString("base64")}` };
    this.log.info({ callId: callSid, recording: form.get("RecordingSid") }, "fetching Twilio's recording of the transferred call");
    await keepCarrierRecording(record, () => fetchBytes(source, auth), { carrier: "Twilio", durationMs: Number(form.get("RecordingDuration")) * 1000 || undefined });
  }

  /** The WAV of a recording URL, when it is one of this account's on a Twilio API host (a signed callback could still name any URL). */
  private source(recordingUrl: string): string | undefined {
    let url: URL;
    try {
      url = new URL(recordingUrl);
    } catch {
      return undefined;
    }
    if (url.protocol !== "https:" || !/^api(\.[a-z0-9-]+)*\.twilio\.com$/.test(url.hostname)) return undefined;
    if (!url.pathname.startsWith(`/2010-04-01/Accounts/${this.accountSid}/Recordings/RE`)) return undefined;
    const wav = new URL(`${url.pathname.replace(/\.(json|mp3|wav)$/, "")}.wav`, this.apiBaseUrl ?? url.origin);
    return wav.toString();
  }
}
