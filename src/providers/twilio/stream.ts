/**
 * Twilio Media Streams, in and out. Wire format (text frames, JSON): in:
 * `connected`, `start` (callSid, streamSid, customParameters), `media`
 * (base64 mu-law 8 kHz, 20 ms per message), `dtmf`, `mark` (echo of ours,
 * sent once the audio before it played), `stop`; out: `media`, `mark`,
 * `clear` (drops what Twilio still buffers).
 */
import { z } from "zod";
import { DtmfMessage, MarkMessage, MediaMessage, commonStreamEvent, parseStreamJson, type StreamEvent, type StreamWire } from "../media-stream.js";

const Sid = z.string().min(1).max(64);
const StreamMessage = z.discriminatedUnion("event", [
  z.object({ event: z.literal("connected") }),
  z.object({
    event: z.literal("start"),
    streamSid: Sid,
    start: z.object({
      callSid: Sid,
      streamSid: Sid.optional(),
      customParameters: z.record(z.string(), z.string()).optional(),
      mediaFormat: z.object({ encoding: z.string(), sampleRate: z.number(), channels: z.number() }).optional(),
    }),
  }),
  MediaMessage,
  DtmfMessage,
  MarkMessage,
  z.object({ event: z.literal("stop") }),
]);
export type TwilioStreamMessage = z.infer<typeof StreamMessage>;

/** Parses one text frame; a typed INVALID_PARAMS naming the field when it is not Twilio's protocol. */
export function parseStreamMessage(text: string): TwilioStreamMessage {
  return parseStreamJson(StreamMessage, text);
}

/** Our messages in Twilio's names: every one carries the streamSid. */
export const TWILIO_WIRE: StreamWire = {
  media: (payload, streamSid) => ({ event: "media", streamSid, media: { payload } }),
  mark: (name, streamSid) => ({ event: "mark", streamSid, mark: { name } }),
  clear: (streamSid) => ({ event: "clear", streamSid }),
};

/** A Twilio stream message as the shared stream shell reads it; the credential is the `token` custom parameter. */
export function twilioStreamEvent(text: string): StreamEvent {
  const message = parseStreamMessage(text);
  switch (message.event) {
    case "start":
      return { kind: "start", callId: message.start.callSid, streamId: message.streamSid, token: message.start.customParameters?.token ?? "" };
    case "media":
    case "dtmf":
    case "mark":
      return commonStreamEvent(message);
    default:
      return { kind: "other" };
  }
}
