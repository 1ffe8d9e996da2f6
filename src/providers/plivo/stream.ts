/**
 * Plivo audio streaming, in and out. Wire format (text frames, JSON): in:
 * `start` (start.callId, start.streamId, mediaFormat; extra_headers as set
 * on the <Stream> element), `media` (base64 mu-law 8 kHz), `dtmf`,
 * `playedStream` (our checkpoint reached: the audio before it played),
 * `clearedAudio`, `stop`; out (bidirectional): `playAudio`, `checkpoint`,
 * `clearAudio`.
 */
import { z } from "zod";
import { DtmfMessage, MediaMessage, commonStreamEvent, parseStreamJson, type StreamEvent, type StreamWire } from "../media-stream.js";

const Id = z.string().min(1).max(256);
const StreamMessage = z.discriminatedUnion("event", [
  z.object({
    event: z.literal("start"),
    start: z.object({
      callId: Id,
      streamId: Id,
      mediaFormat: z.object({ encoding: z.string(), sampleRate: z.number() }).partial().optional(),
    }),
    extra_headers: z.union([z.string().max(4096), z.record(z.string(), z.string())]).optional(),
  }),
  MediaMessage,
  DtmfMessage,
  z.object({ event: z.literal("playedStream"), name: z.string().max(128) }),
  z.object({ event: z.literal("clearedAudio") }),
  z.object({ event: z.literal("stop") }),
]);

/** Our messages in Plivo's names. */
export const PLIVO_WIRE: StreamWire = {
  media: (payload) => ({ event: "playAudio", media: { contentType: "audio/x-mulaw", sampleRate: 8000, payload } }),
  mark: (name, streamId) => ({ event: "checkpoint", streamId, name }),
  clear: (streamId) => ({ event: "clearAudio", streamId }),
};

/** The <Stream> extraHeaders value that carries our call id and its credential. */
export function streamHeaders(callId: string, token: string): string {
  return `callref=${callId},token=${token}`;
}

/** extra_headers as Plivo forwards them: a JSON object (or its text), or the `k=v,k=v` string we set. */
function headerMap(raw: string | Record<string, string> | undefined): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== "string") return raw;
  try {
    const json = JSON.parse(raw) as unknown;
    if (json && typeof json === "object") return json as Record<string, string>;
  } catch {
    // the k=v form
  }
  return Object.fromEntries(raw.split(",").map((pair) => pair.split("=", 2).map((s) => s.trim()) as [string, string]));
}

/** A Plivo stream message as the shared stream shell reads it; our call id and credential come from extra_headers. */
export function plivoStreamEvent(text: string): StreamEvent {
  const message = parseStreamJson(StreamMessage, text);
  switch (message.event) {
    case "start": {
      const headers = headerMap(message.extra_headers);
      return { kind: "start", callId: String(headers.callref ?? message.start.callId), streamId: message.start.streamId, token: String(headers.token ?? "") };
    }
    case "media":
    case "dtmf":
      return commonStreamEvent(message);
    case "playedStream":
      return { kind: "mark", name: message.name };
    default:
      return { kind: "other" };
  }
}
