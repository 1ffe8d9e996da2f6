/**
 * A realtime voice session: a full-duplex speech model on one call. The
 * caller's audio goes in as the line carries it; the model's audio comes
 * out in the same format, with what it heard and said as text, its tool
 * calls, and its voice detector's events. Audio is G.711 mu-law when the
 * line is 8 kHz (straight through, no conversion) and PCM16 at 24 kHz
 * otherwise (the caller resamples).
 */

/** The audio format of a session, both ways. */
export type RealtimeAudio = "pcmu" | "pcm24k";

/** A function the model may call. */
export interface RealtimeTool {
  name: string;
  description: string;
  /** JSON Schema of its arguments. */
  parameters: Record<string, unknown>;
}

export interface RealtimeSessionConfig {
  instructions: string;
  tools: RealtimeTool[];
  audio: RealtimeAudio;
  /**
   * What of the model's audio is still held for the caller, with how many ms
   * of each item have played (the transport's count): for providers that cut
   * a reply themselves when the caller speaks (the gateway's bridges).
   */
  playback?: () => Array<{ itemId: string; playedMs: number }>;
}

export type RealtimeEvent =
  /** The model's audio, in the session's format: mu-law bytes, or PCM16 little-endian at 24 kHz. */
  | { type: "audio"; itemId: string; audio: Buffer }
  /** The model's voice detector heard the caller start (at this many ms of the input audio). */
  | { type: "speech_started"; audioStartMs: number }
  | { type: "speech_stopped" }
  /** What the caller said, transcribed. */
  | { type: "input_transcript"; itemId: string; text: string }
  /** What the model said in one item, in full. */
  | { type: "output_transcript"; itemId: string; text: string }
  | { type: "tool_call"; callId: string; name: string; arguments: string }
  /** A response ended: completed, cancelled (the caller cut in), failed, incomplete. */
  | { type: "response_done"; status: string }
  /** The model refused a request of ours; the session goes on. */
  | { type: "error"; message: string }
  /** The session is over (the model closed it, or it was closed); nothing follows. */
  | { type: "closed"; reason: string };

export interface RealtimeVoiceSession {
  readonly id: string;
  events(): AsyncIterable<RealtimeEvent>;
  /** Caller audio, in the session's format. */
  appendAudio(audio: Buffer): void;
  /** The caller cut in: the model's item is cut to what the caller actually heard. */
  truncate(itemId: string, audioEndMs: number): void;
  /** Stops the response being made. */
  cancelResponse(): void;
  /** A tool's result; the model then answers with it (unless `respond` is false). */
  toolResult(callId: string, output: unknown, respond?: boolean): void;
  /** The model speaks now, as told (a greeting, an operator's message). */
  respond(instructions?: string): void;
  close(): void;
}

export interface RealtimeVoice {
  readonly id: string;
  open(config: RealtimeSessionConfig): Promise<RealtimeVoiceSession>;
}
