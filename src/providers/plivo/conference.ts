/**
 * Warm transfers' Conferences on Plivo, named after the caller's call: the
 * document both calls move to, and for a recorded call Plivo's recording of
 * it (record="true", WAV), fetched beside ours when its callback says so.
 * The account's credentials go only to Plivo's own hosts (secured
 * recordings); a link elsewhere is fetched without them.
 */
import type { PublicEndpoints } from "../public-url.js";
import { fetchBytes, keepCarrierRecording, type TransferRecording } from "../carrier-recording.js";
import { plivoXml, type PlivoXml } from "./xml.js";

export class PlivoRooms {
  /** By the caller's id: the recording awaited, when the call is recorded. */
  private readonly rooms = new Map<string, { record?: TransferRecording }>();

  constructor(
    private readonly authId: string,
    private readonly authToken: string,
    private readonly endpoints: PublicEndpoints,
    /** Runs work nobody awaits (its failure logged). */
    private readonly background: (work: Promise<unknown>) => void,
  ) {}

  open(room: string, record?: TransferRecording): void {
    this.rooms.set(room, record ? { record } : {});
  }

  /** The caller's call is forgotten: its room goes too, unless its recording is still awaited. */
  forget(room: string): void {
    if (!this.rooms.get(room)?.record) this.rooms.delete(room);
  }

  /** The Conference the two move to; undefined for a room not open (then the call is hung up). */
  document(room: string): PlivoXml | undefined {
    const kept = this.rooms.get(room);
    if (!kept) return undefined;
    const response = plivoXml();
    response.addConference(`transfer-${room}`, {
      beep: "false",
      startConferenceOnEnter: "true",
      endConferenceOnExit: "true",
      waitSound: "",
      ...(kept.record ? { record: "true", recordFileFormat: "wav", callbackUrl: this.endpoints.webhook({ type: "transfer-recorded", room }), callbackMethod: "POST" } : {}),
    });
    return response;
  }

  /** A Conference's callback: a recording done is fetched beside ours, and the room goes. */
  event(room: string, form: URLSearchParams): void {
    const record = this.rooms.get(room)?.record;
    if (!record || form.get("ConferenceAction") !== "record") return;
    this.rooms.delete(room);
    const url = form.get("RecordUrl") ?? "";
    if (!/^https?:\/\//.test(url)) return record.done({ failed: "Plivo's recording callback named no file" });
    const ours = /(^|\.)plivo\.com$/.test(new URL(url).hostname);
    const auth = ours ? { authorization: `Basic ${Buffer.from(`${this.authId}:${this.authToken}`).toString("base64")}` } : undefined;
    const ms = Number(form.get("RecordingDurationMs")) || Number(form.get("RecordingDuration")) * 1000 || undefined;
    this.background(keepCarrierRecording(record, () => fetchBytes(url, auth), { carrier: "Plivo", ...(ms ? { durationMs: ms } : {}) }));
  }
}
