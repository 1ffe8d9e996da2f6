/**
 * Telnyx media streaming, in and out. Wire format (text frames, JSON): in:
 * `connected`, `start` (stream_id, start.call_control_id, start.client_state,
 * media_format), `media` (base64 RTP payload, PCMU 8 kHz here), `dtmf`,
 * `mark` (our marker echoed once the audio before it played), `error`,
 * `stop`; out (bidirectional RTP mode): `media`, `mark`, `clear`.
 */
import { z } from "zod";
import { DtmfMessage, MarkMessage, MediaMessage, commonStreamEvent, parseStreamJson, type StreamEvent, type StreamWire } from "../media-stream.js";

const Id = z.string().min(1).max(256);
const StreamMessage = z.discriminatedUnion("event", [
  z.object({ event: z.literal("connected") }),
  z.object({
    event: z.literal("start"),
    stream_id: Id,
    start: z.object({
      call_control_id: Id,
      client_state: z.string().max(4096).optional(),
      media_format: z.object({ encoding: z.string(), sample_rate: z.number(), channels: z.number() }).optional(),
    }),
  }),
  MediaMessage,
  DtmfMessage,
  MarkMessage,
  z.object({ event: z.literal("error"), payload: z.unknown().optional() }),
  z.object({ event: z.literal("stop") }),
]);

/** Our messages in Telnyx's names. */
export const TELNYX_WIRE: StreamWire = {
  media: (payload) => ({ event: "media", media: { payload } }),
  mark: (name) => ({ event: "mark", mark: { name } }),
  clear: () => ({ event: "clear" }),
};

/** A Telnyx stream message as the shared stream shell reads it; the credential travels as client_state (base64). */
export function telnyxStreamEvent(text: string): StreamEvent {
  const message = parseStreamJson(StreamMessage, text);
  switch (message.event) {
    case "start":
      return { kind: "start", callId: message.start.call_control_id, streamId: message.stream_id, token: Buffer.from(message.start.client_state ?? "", "base64").toString("utf8") };
    case "media":
    case "dtmf":
    case "mark":
      return commonStreamEvent(message);
    default:
      return { kind: "other" };
  }
}
