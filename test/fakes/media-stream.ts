/**
 * A cloud carrier's side of a media stream: connects to the service's
 * stream URL, starts the stream with the credential the carrier was given,
 * plays caller audio in real time as mu-law media messages, presses keys,
 * echoes our markers once they "played" (audio arrives paced in real time),
 * and records what comes back (media, markers, clears) with arrival times.
 * The carriers differ in message names only: each is a {@link Dialect}.
 */
import WebSocket from "ws";
import { decodeG711, encodeG711 } from "../../src/audio/g711.js";


export interface Received {
  at: number;
  /** media, mark or clear, whatever the carrier calls them. */
  event: "media" | "mark" | "clear" | "other";
  pcm?: Int16Array;
  name?: string;
}

export interface StreamStart {
  /** The carrier's id for the call (CallSid, call_control_id, CallUUID). */
  callId: string;
  /** The credential the service issued for this call. */
  token: string;
  streamId?: string;
}

export interface Dialect {
  /** Messages sent right after connecting, the start last. */
  opening(start: Required<StreamStart>): unknown[];
  media(payload: string, streamId: string): unknown;
  dtmf(digit: string, streamId: string): unknown;
  /** Our marker, echoed back once played. */
  echo(name: string, streamId: string): unknown;
  /** What a message from the service is. */
  read(message: Record<string, any>): { event: Received["event"]; payload?: string; name?: string };
}

export const TWILIO: Dialect = {
  opening: ({ callId, token, streamId }) => [
    { event: "connected", protocol: "Call", version: "1.0.0" },
    {
      event: "start",
      sequenceNumber: "1",
      streamSid: streamId,
      start: { accountSid: "AC-stream-client", streamSid: streamId, callSid: callId, tracks: ["inbound"], customParameters: { token }, mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 } },
    },
  ],
  media: (payload, streamSid) => ({ event: "media", streamSid, media: { track: "inbound", payload } }),
  dtmf: (digit, streamSid) => ({ event: "dtmf", streamSid, sequenceNumber: "9", dtmf: { track: "inbound_track", digit } }),
  echo: (name, streamSid) => ({ event: "mark", streamSid, mark: { name } }),
  read: (m) => (m.event === "media" ? { event: "media", payload: m.media.payload } : m.event === "mark" ? { event: "mark", name: m.mark.name } : m.event === "clear" ? { event: "clear" } : { event: "other" }),
};

export const TELNYX: Dialect = {
  opening: ({ callId, token, streamId }) => [
    { event: "connected", version: "1.0.0" },
    {
      event: "start",
      sequence_number: "1",
      stream_id: streamId,
      start: { user_id: "3E6F995F", call_control_id: callId, client_state: Buffer.from(token).toString("base64"), media_format: { encoding: "PCMU", sample_rate: 8000, channels: 1 } },
    },
  ],
  media: (payload, streamId) => ({ event: "media", stream_id: streamId, media: { track: "inbound", chunk: "1", timestamp: "0", payload } }),
  dtmf: (digit, streamId) => ({ event: "dtmf", stream_id: streamId, dtmf: { digit } }),
  echo: (name, streamId) => ({ event: "mark", stream_id: streamId, mark: { name } }),
  read: TWILIO.read,
};

/** Plivo: `token` is the <Stream>'s extraHeaders string, forwarded as extra_headers. */
export const PLIVO: Dialect = {
  opening: ({ callId, token, streamId }) => [
    {
      event: "start",
      sequenceNumber: 0,
      start: { callId, streamId, accountId: "MAODUMZJYZNWY1ZGYXOT", tracks: ["inbound"], mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000 } },
      extra_headers: token,
    },
  ],
  media: (payload, streamId) => ({ event: "media", sequenceNumber: 1, streamId, media: { track: "inbound", timestamp: "0", chunk: 1, payload } }),
  dtmf: (digit, streamId) => ({ event: "dtmf", streamId, dtmf: { track: "inbound", digit, timestamp: "0" } }),
  echo: (name, streamId) => ({ event: "playedStream", streamId, name }),
  read: (m) =>
    m.event === "playAudio" ? { event: "media", payload: m.media.payload } : m.event === "checkpoint" ? { event: "mark", name: m.name } : m.event === "clearAudio" ? { event: "clear" } : { event: "other" },
};

/** A carrier's media stream for one call. */
export class MediaStreamClient {
  readonly received: Received[] = [];
  closed = false;
  private constructor(
    private readonly ws: WebSocket,
    readonly streamSid: string,
    private readonly dialect: Dialect,
  ) {
    ws.on("message", (data) => {
      const said = dialect.read(JSON.parse(data.toString()) as Record<string, any>);
      const at = performance.now();
      if (said.event === "media") this.received.push({ at, event: "media", pcm: decodeG711("ulaw", Buffer.from(said.payload!, "base64")) });
      else this.received.push({ at, event: said.event, name: said.name });
      // Audio arrives paced in real time: a marker has played when it arrives.
      if (said.event === "mark") this.send(dialect.echo(said.name!, this.streamSid));
    });
    ws.on("close", () => (this.closed = true));
  }

  /** Twilio's stream by default (`callSid`, `token`); another carrier's with its dialect. */
  static async connect(url: string, start: { callSid: string; token: string; streamSid?: string }, dialect: Dialect = TWILIO): Promise<MediaStreamClient> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const streamSid = start.streamSid ?? `MZ${Math.random().toString(16).slice(2).padEnd(32, "0")}`;
    const client = new MediaStreamClient(ws, streamSid, dialect);
    for (const message of dialect.opening({ callId: start.callSid, token: start.token, streamId: streamSid })) client.send(message);
    return client;
  }

  send(message: unknown): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** Plays 8 kHz PCM as 20 ms media messages in real time; resolves with the time the first frame went out. */
  async play(pcm: Int16Array): Promise<number> {
    const started = performance.now();
    for (let i = 0, n = 0; i < pcm.length; i += 160, n += 1) {
      const wait = started + n * 20 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const chunk = new Int16Array(160);
      chunk.set(pcm.subarray(i, Math.min(i + 160, pcm.length)));
      this.send(this.dialect.media(Buffer.from(encodeG711("ulaw", chunk)).toString("base64"), this.streamSid));
    }
    return started;
  }

  /** Silence for `ms`, so the far end hears an utterance end. */
  async silence(ms: number): Promise<void> {
    await this.play(new Int16Array((ms / 1000) * 8000));
  }

  dtmf(digit: string): void {
    this.send(this.dialect.dtmf(digit, this.streamSid));
  }

  /** Media messages received after `since` (performance.now()). */
  mediaAfter(since: number): Received[] {
    return this.received.filter((r) => r.event === "media" && r.at >= since);
  }

  firstAfter(event: string, since: number): Received | undefined {
    return this.received.find((r) => r.event === event && r.at >= since);
  }

  close(): void {
    this.ws.close();
  }

  /** Cuts the socket without a close handshake (a network drop). */
  drop(): void {
    this.ws.terminate();
  }

  raw(): WebSocket {
    return this.ws;
  }
}

/** Whether a 20 ms frame is louder than -40 dBFS (speech, not the silence a stream idles with). */
export const isLoud = (pcm: Int16Array | undefined) => pcm !== undefined && pcm.length > 0 && 10 * Math.log10(pcm.reduce((sum, v) => sum + v * v, 0) / pcm.length / 32768 ** 2) > -40;

/** Milliseconds of received media that are speech. */
export const loudMs = (media: Array<{ pcm?: Int16Array }>) => media.filter(({ pcm }) => isLoud(pcm)).length * 20;
