/**
 * What the cloud speech engines share: PCM bytes to 20 ms frames at the
 * transport's rate, streamed HTTP audio with a timeout and readable errors,
 * and WebSocket sessions that time out, report bad keys plainly and
 * reconnect during long calls.
 */
import WebSocket from "ws";
import type { AudioFrame, SampleRate } from "../audio/frame.js";
import { samplesPerFrame } from "../audio/frame.js";
import { Resampler } from "../audio/resample.js";
import { AsyncQueue } from "../util/async-queue.js";
import { SpeechError, type SpokenFrame, type TranscriptEvent, type TranscriberStream } from "./types.js";

/** Turns little-endian PCM16 byte chunks (any split) into whole frames at `outRate`. */
export class PcmFramer {
  private carry: number | undefined;
  private pending: Int16Array;
  private filled = 0;

  private constructor(
    private readonly outRate: SampleRate,
    private readonly resampler: Resampler | undefined,
  ) {
    this.pending = new Int16Array(samplesPerFrame(outRate));
  }

  static async create(inRate: number, outRate: SampleRate): Promise<PcmFramer> {
    return new PcmFramer(outRate, inRate === outRate ? undefined : await Resampler.create(inRate, outRate));
  }

  /** Frames completed by this chunk. */
  push(bytes: Uint8Array): AudioFrame[] {
    let offset = 0;
    const count = Math.floor((bytes.length + (this.carry === undefined ? 0 : 1)) / 2);
    const samples = new Int16Array(count);
    let n = 0;
    if (this.carry !== undefined && bytes.length > 0) {
      samples[n++] = ((bytes[0]! << 8) | this.carry) << 16 >> 16;
      offset = 1;
      this.carry = undefined;
    }
    for (; offset + 1 < bytes.length; offset += 2) samples[n++] = ((bytes[offset + 1]! << 8) | bytes[offset]!) << 16 >> 16;
    if (offset < bytes.length) this.carry = bytes[offset];
    return this.frames(this.resampler ? this.resampler.process(samples.subarray(0, n)) : samples.subarray(0, n));
  }

  /** The last partial frame, padded with silence. */
  flush(): AudioFrame[] {
    if (this.filled === 0) return [];
    this.pending.fill(0, this.filled);
    this.filled = 0;
    const frame = { pcm: this.pending, sampleRate: this.outRate };
    this.pending = new Int16Array(this.pending.length);
    return [frame];
  }

  destroy(): void {
    this.resampler?.destroy();
  }

  private frames(pcm: Int16Array): AudioFrame[] {
    const out: AudioFrame[] = [];
    let offset = 0;
    while (offset < pcm.length) {
      const n = Math.min(this.pending.length - this.filled, pcm.length - offset);
      this.pending.set(pcm.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === this.pending.length) {
        out.push({ pcm: this.pending, sampleRate: this.outRate });
        this.pending = new Int16Array(this.pending.length);
        this.filled = 0;
      }
    }
    return out;
  }
}

/** One sentence's PCM bytes as frames, the last one marked as completing `sentence`. */
export async function* sentenceFrames(
  chunks: AsyncIterable<Uint8Array>,
  framer: PcmFramer,
  sentence: string,
  signal?: AbortSignal,
): AsyncIterable<SpokenFrame> {
  let last: SpokenFrame | undefined;
  for await (const chunk of chunks) {
    for (const frame of framer.push(chunk)) {
      if (signal?.aborted) return;
      if (last) yield last;
      last = frame;
    }
  }
  for (const frame of framer.flush()) {
    if (signal?.aborted) return;
    if (last) yield last;
    last = frame;
  }
  if (last && !signal?.aborted) yield { ...last, completes: sentence };
}

/** A vendor's refusal, as a SpeechError that names the vendor and never echoes the key. */
export function httpRefusal(vendor: string, status: number, body: string): SpeechError {
  const detail = body.replace(/\s+/g, " ").slice(0, 300);
  if (status === 401 || status === 403) return new SpeechError("SPEECH_UNAVAILABLE", `${vendor} refused the API key (HTTP ${status}): check the key in the config or environment`);
  return new SpeechError("SPEECH_FAILED", `${vendor} answered HTTP ${status}${detail ? `: ${detail}` : ""}`);
}

/**
 * POSTs a speech request and yields the audio as frames while it streams in.
 * `timeoutMs` bounds the wait for the first byte; the signal stops everything.
 */
export async function* streamedSpeech(
  vendor: string,
  url: string,
  init: { headers: Record<string, string>; body: string },
  audio: { inRate: number; outRate: SampleRate },
  options: { signal?: AbortSignal; timeoutMs: number; sentence: string },
): AsyncIterable<SpokenFrame> {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => controller.abort(new Error("timeout")), options.timeoutMs);
  let framer: PcmFramer | undefined;
  try {
    let res: Response;
    try {
      res = await fetch(url, { method: "POST", headers: init.headers, body: init.body, signal: controller.signal });
    } catch (err) {
      if (options.signal?.aborted) return;
      const timedOut = controller.signal.reason instanceof Error && controller.signal.reason.message === "timeout";
      throw new SpeechError("SPEECH_FAILED", timedOut ? `${vendor} did not answer within ${options.timeoutMs} ms` : `${vendor} is unreachable: ${(err as Error).message}`);
    }
    clearTimeout(timer);
    if (!res.ok) throw httpRefusal(vendor, res.status, await res.text().catch(() => ""));
    if (!res.body) throw new SpeechError("SPEECH_FAILED", `${vendor} sent no audio`);
    framer = await PcmFramer.create(audio.inRate, audio.outRate);
    yield* sentenceFrames(res.body as unknown as AsyncIterable<Uint8Array>, framer, options.sentence, options.signal);
  } catch (err) {
    if (options.signal?.aborted) return;
    throw err;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    framer?.destroy();
  }
}

export interface WsSessionOptions {
  vendor: string;
  url: string;
  headers: Record<string, string>;
  connectTimeoutMs: number;
  /** Reconnects after an unexpected close (long calls outlive vendor sessions). */
  maxReconnects: number;
}

/**
 * Opens a vendor's WebSocket; rejects with a SpeechError naming the vendor:
 * the HTTP status and body it refused with (a bad key), unreachable, or no
 * handshake within `connectTimeoutMs`.
 */
export function openVendorSocket(options: Pick<WsSessionOptions, "vendor" | "url" | "headers" | "connectTimeoutMs">): Promise<WebSocket> {
  const { vendor, url, headers, connectTimeoutMs } = options;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: connectTimeoutMs });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new SpeechError("SPEECH_FAILED", `${vendor} did not accept the connection within ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => reject(httpRefusal(vendor, res.statusCode ?? 0, body)));
      res.on("error", () => reject(httpRefusal(vendor, res.statusCode ?? 0, body)));
    });
    ws.once("error", (err) => {
      clearTimeout(timer);
      reject(new SpeechError("SPEECH_FAILED", `${vendor} is unreachable: ${err.message}`));
    });
    ws.once("open", () => {
      clearTimeout(timer);
      resolve(ws);
    });
  });
}

/**
 * One recognition stream over a vendor WebSocket. Subclasses say what to
 * send on open, how to send audio, and how to read messages; this class
 * queues audio until the socket is open, reconnects with backoff after an
 * unexpected close, and ends the event stream with an error event when it
 * gives up.
 */
export abstract class WsTranscriberStream implements TranscriberStream {
  protected readonly queue = new AsyncQueue<TranscriptEvent>();
  private ws: WebSocket | undefined;
  private backlog: AudioFrame[] = [];
  private closing = false;
  private reconnects = 0;
  private ending = false;

  constructor(protected readonly session: WsSessionOptions) {}

  /** Connects; rejects with a SpeechError naming the vendor (bad key, unreachable, timeout). */
  async open(): Promise<void> {
    this.ws = await this.connect();
  }

  pushFrame(frame: AudioFrame): void {
    if (this.ending) return;
    if (this.ws?.readyState === WebSocket.OPEN) this.sendAudio(this.ws, frame);
    else if (this.backlog.length < 500) this.backlog.push(frame);
  }

  flush(): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.sendFlush(this.ws);
  }

  endInput(): void {
    if (this.ending) return;
    this.ending = true;
    if (this.ws?.readyState === WebSocket.OPEN) this.sendEnd(this.ws);
    else this.queue.end();
    // The vendor closes after its last result; do not wait for ever.
    setTimeout(() => this.close(), 5000).unref();
  }

  close(): void {
    this.closing = true;
    this.queue.end();
    this.ws?.close();
  }

  events(): AsyncIterable<TranscriptEvent> {
    return this.queue.iterate();
  }

  protected abstract onOpen(ws: WebSocket): void;
  protected abstract sendAudio(ws: WebSocket, frame: AudioFrame): void;
  protected abstract sendFlush(ws: WebSocket): void;
  /** Asks the vendor to finish: its last results, then a close. */
  protected abstract sendEnd(ws: WebSocket): void;
  protected abstract onMessage(data: string): void;

  protected fail(message: string): void {
    this.queue.push({ type: "error", message });
    this.close();
  }

  private async connect(): Promise<WebSocket> {
    const ws = await openVendorSocket(this.session);
    this.onOpen(ws);
    for (const frame of this.backlog) this.sendAudio(ws, frame);
    this.backlog = [];
    ws.on("message", (data, isBinary) => {
      if (!isBinary) this.onMessage(data.toString());
    });
    ws.on("close", () => this.onClose(ws));
    return ws;
  }

  private onClose(ws: WebSocket): void {
    if (ws === this.ws) this.reconnect();
  }

  private reconnect(): void {
    if (this.closing || this.ending) {
      this.queue.end();
      return;
    }
    if (this.reconnects >= this.session.maxReconnects) {
      this.fail(`${this.session.vendor} closed the stream and ${this.reconnects} reconnects failed`);
      return;
    }
    this.reconnects += 1;
    this.ws = undefined;
    const delay = Math.min(8000, 250 * 2 ** (this.reconnects - 1));
    setTimeout(() => {
      if (this.closing) return;
      this.connect().then(
        (next) => {
          if (this.closing) return next.close();
          this.ws = next;
          this.reconnects = 0;
        },
        () => this.reconnect(),
      );
    }, delay).unref();
  }
}
