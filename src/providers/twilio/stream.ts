/**
 * Twilio Media Streams on the audio bus. Wire format (text frames, JSON):
 * in: `connected`, `start` (callSid, streamSid, customParameters), `media`
 * (base64 mu-law 8 kHz, 20 ms per message), `dtmf`, `mark` (echo of ours,
 * sent once the audio before it played), `stop`; out: `media`, `mark`,
 * `clear` (drops what Twilio still buffers).
 *
 * One transport per call outlives its sockets: when a stream drops and the
 * call's stream comes back (within the grace window), the new socket is
 * attached and the call's recogniser, turn and queue carry on.
 */
import { z } from "zod";
import { decodeG711, encodeG711 } from "../../audio/g711.js";
import { samplesPerFrame, type AudioFrame } from "../../audio/frame.js";
import { sharedPacer, type FramePacer } from "../../audio/pacer.js";
import { PacedTransport } from "../../audio/transport.js";
import { VoiceCallError, zodIssues } from "../../errors.js";
import type { StreamConnection } from "../types.js";

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
  z.object({ event: z.literal("media"), media: z.object({ payload: z.string().max(65_536), track: z.string().optional() }) }),
  z.object({ event: z.literal("dtmf"), dtmf: z.object({ digit: z.string().regex(/^[0-9A-D*#]$/) }) }),
  z.object({ event: z.literal("mark"), mark: z.object({ name: z.string().max(128) }) }),
  z.object({ event: z.literal("stop") }),
]);
export type TwilioStreamMessage = z.infer<typeof StreamMessage>;

/** Parses one text frame; a typed INVALID_PARAMS naming the field when it is not Twilio's protocol. */
export function parseStreamMessage(text: string): TwilioStreamMessage {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new VoiceCallError("INVALID_PARAMS", "media stream: not JSON");
  }
  const parsed = StreamMessage.safeParse(json);
  if (!parsed.success) {
    const issue = zodIssues(parsed.error, "media stream")[0];
    throw new VoiceCallError("INVALID_PARAMS", `${issue?.path ?? "media stream"}: ${issue?.message ?? "not a Twilio media stream message"}`);
  }
  return parsed.data;
}

export class TwilioStreamTransport extends PacedTransport {
  private connection?: StreamConnection;
  private streamSid?: string;
  private pending = new Int16Array(0);
  /** Our marks sent to Twilio and not echoed yet, by name. */
  private readonly echoes = new Map<string, (played: boolean) => void>();
  private markSeq = 0;

  constructor(pacer: FramePacer = sharedPacer) {
    super(8000, pacer);
  }

  /** A (new) socket carries the call's stream from now on. */
  attach(connection: StreamConnection, streamSid: string): void {
    this.settleEchoes(false);
    this.connection = connection;
    this.streamSid = streamSid;
    this.startClock();
  }

  /** The socket went away; frames written meanwhile are dropped until another attaches. */
  unplug(connection: StreamConnection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.settleEchoes(false);
  }

  get attached(): boolean {
    return this.connection !== undefined;
  }

  /** Caller audio from a `media` message (20 ms of base64 mu-law, re-cut to frames if not). */
  receivedPayload(base64: string): void {
    const pcm = decodeG711("ulaw", Buffer.from(base64, "base64"));
    const joined = new Int16Array(this.pending.length + pcm.length);
    joined.set(this.pending);
    joined.set(pcm, this.pending.length);
    const n = samplesPerFrame(8000);
    let offset = 0;
    for (; offset + n <= joined.length; offset += n) this.received({ pcm: joined.slice(offset, offset + n), sampleRate: 8000 });
    this.pending = joined.slice(offset);
  }

  /** Twilio echoed one of our marks: the audio before it has played. */
  echoed(name: string): void {
    const resolve = this.echoes.get(name);
    this.echoes.delete(name);
    resolve?.(true);
  }

  /** Resolves true once what was written before it has played at Twilio (its mark echoed), false if cleared or closed first. */
  override mark(): Promise<boolean> {
    return super.mark().then((sent) => {
      if (!sent || !this.connection || !this.streamSid) return false;
      this.markSeq += 1;
      const name = `m${this.markSeq}`;
      return new Promise<boolean>((resolve) => {
        this.echoes.set(name, resolve);
        this.sendJson({ event: "mark", streamSid: this.streamSid, mark: { name } });
      });
    });
  }

  /** Barge-in: our queue and what Twilio still buffers are dropped; marks not echoed yet count as not played. */
  override clear(): void {
    super.clear();
    this.settleEchoes(false);
    if (this.streamSid) this.sendJson({ event: "clear", streamSid: this.streamSid });
  }

  protected send(frame: AudioFrame | undefined): void {
    // Twilio plays silence when nothing comes: only our audio is sent.
    if (!frame || !this.connection || !this.streamSid) return;
    this.sendJson({ event: "media", streamSid: this.streamSid, media: { payload: Buffer.from(encodeG711("ulaw", frame.pcm)).toString("base64") } });
  }

  protected release(): void {
    this.settleEchoes(false);
    this.connection?.close(1000, "call ended");
    this.connection = undefined;
  }

  private sendJson(message: unknown): void {
    this.connection?.send(JSON.stringify(message));
  }

  private settleEchoes(played: boolean): void {
    const waiting = [...this.echoes.values()];
    this.echoes.clear();
    for (const resolve of waiting) resolve(played);
  }
}
