/**
 * A cloud carrier's media stream on the audio bus: base64 mu-law 8 kHz in
 * JSON text frames over a WebSocket the carrier opens to us. The carriers
 * differ only in message names ({@link StreamWire} out, a parser in), so one
 * transport serves Twilio, Telnyx and Plivo: our audio paced at 20 ms, a
 * named marker after each sentence that counts as heard only when the
 * carrier echoes it (the audio before it played), and a clear message on
 * barge-in that drops what the carrier still buffers.
 *
 * One transport per call outlives its sockets: when a stream drops and
 * comes back, the new socket is attached and the call's recogniser, turn and
 * queue carry on.
 */
import { z } from "zod";
import { decodeG711, encodeG711 } from "../audio/g711.js";
import { parseJsonOrThrow } from "../errors.js";
import { samplesPerFrame, type AudioFrame } from "../audio/frame.js";
import { sharedPacer, type FramePacer } from "../audio/pacer.js";
import { PacedTransport } from "../audio/transport.js";
import type { StreamConnection } from "./types.js";

/** The messages we send, in a carrier's own names (objects sent as JSON). */
export interface StreamWire {
  media(payload: string, streamId: string): unknown;
  mark(name: string, streamId: string): unknown;
  clear(streamId: string): unknown;
}

/** A carrier's stream message, after its own parser. */
export type StreamEvent =
  /** The stream is for call `callId`; `token` is the credential we issued for it. */
  | { kind: "start"; callId: string; streamId: string; token: string }
  | { kind: "media"; payload: string }
  | { kind: "dtmf"; digit: string }
  /** One of our markers came back: the audio before it played. */
  | { kind: "mark"; name: string }
  /** Lifecycle messages with nothing to do (connected, stop, our own track echoed). */
  | { kind: "other" };

/** Parses one text frame with a carrier's schema; a typed INVALID_PARAMS naming the field when it is not that protocol. */
export function parseStreamJson<T>(schema: z.ZodType<T>, text: string): T {
  return parseJsonOrThrow(schema, text, "media stream");
}

/** Caller audio, a key and our marker's echo, as Twilio and Telnyx name them (Plivo: media and dtmf). */
export const MediaMessage = z.object({ event: z.literal("media"), media: z.object({ payload: z.string().max(65_536), track: z.string().optional() }) });
export const DtmfMessage = z.object({ event: z.literal("dtmf"), dtmf: z.object({ digit: z.string().regex(/^[0-9A-D*#]$/) }) });
export const MarkMessage = z.object({ event: z.literal("mark"), mark: z.object({ name: z.string().max(128) }) });

/** Those messages as stream events; media only from the caller's side (a both-tracks stream would feed our own voice back). */
export function commonStreamEvent(message: z.infer<typeof MediaMessage> | z.infer<typeof DtmfMessage> | z.infer<typeof MarkMessage>): StreamEvent {
  switch (message.event) {
    case "media":
      return message.media.track === undefined || message.media.track === "inbound" ? { kind: "media", payload: message.media.payload } : { kind: "other" };
    case "dtmf":
      return { kind: "dtmf", digit: message.dtmf.digit };
    case "mark":
      return { kind: "mark", name: message.mark.name };
  }
}

export class MediaStreamTransport extends PacedTransport {
  private connection?: StreamConnection;
  private streamId?: string;
  private pending = new Int16Array(0);
  /** Our markers sent and not echoed yet, by name. */
  private readonly echoes = new Map<string, (played: boolean) => void>();
  private markSeq = 0;

  constructor(
    private readonly wire: StreamWire,
    pacer: FramePacer = sharedPacer,
  ) {
    super(8000, pacer);
  }

  /** A (new) socket carries the call's stream from now on. */
  attach(connection: StreamConnection, streamId: string): void {
    this.settleEchoes(false);
    this.connection = connection;
    this.streamId = streamId;
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

  /** Caller audio from one media message (base64 mu-law, re-cut to 20 ms frames). */
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

  /** The carrier echoed one of our markers: the audio before it has played. */
  echoed(name: string): void {
    const resolve = this.echoes.get(name);
    this.echoes.delete(name);
    resolve?.(true);
  }

  /** Resolves true once what was written before it has played at the carrier (its marker echoed), false if cleared or closed first. */
  override mark(): Promise<boolean> {
    return super.mark().then((sent) => {
      if (!sent || !this.connection || !this.streamId) return false;
      this.markSeq += 1;
      const name = `m${this.markSeq}`;
      const streamId = this.streamId;
      return new Promise<boolean>((resolve) => {
        this.echoes.set(name, resolve);
        this.sendJson(this.wire.mark(name, streamId));
      });
    });
  }

  /** Barge-in: our queue and what the carrier still buffers are dropped; markers not echoed yet count as not played. */
  override clear(): void {
    super.clear();
    this.settleEchoes(false);
    if (this.streamId) this.sendJson(this.wire.clear(this.streamId));
  }

  protected send(frame: AudioFrame | undefined): void {
    // Carriers play silence when nothing comes: only our audio is sent.
    if (!frame || !this.connection || !this.streamId) return;
    this.sendJson(this.wire.media(Buffer.from(encodeG711("ulaw", frame.pcm)).toString("base64"), this.streamId));
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
