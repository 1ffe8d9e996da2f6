/**
 * Answers on one call from its responder (a chat model, or inside the
 * gateway its agent): the caller's turns no agent drives, each answer said
 * piece by piece as the responder has it, the caller saying more aborting
 * the answer in flight, one answer made at a time; and the questions a
 * realtime model on the line asks (consults), answered as text for the model
 * to say. Without a responder the caller is told nobody can take the call.
 */
import type { VoiceCallConfig } from "../config/schema.js";
import { VoiceCallError } from "../errors.js";
import type { Logger } from "../log.js";
import { spokenText, type CallerTurn, type TurnResponder } from "./responder.js";
import type { CallRecord, TranscriptEntry } from "./types.js";

/** What answering needs of its call (the session). */
export interface AnsweredLine {
  readonly record: CallRecord;
  readonly transcript: readonly TranscriptEntry[];
  readonly ended: boolean;
  readonly log: Logger;
  /** How many final utterances the caller has made: an answer to older words is not played. */
  readonly callerWords: number;
  /** Says one piece of an answer, behind what is playing; the first opens the turn the caller's reply belongs to. Resolves with that turn. */
  sayAnswer(text: string, options: { opensTurn: boolean; staleAfter: number }): Promise<string | undefined>;
  /** Tells the caller nobody can take the call, and hangs up. */
  sayUnattended(): Promise<void>;
  /** A turn several pieces answered listens again (carriers that speak themselves stopped after the first). */
  listenAgain(turn: string): Promise<void>;
}

export class Answering {
  /** The answer being made for the caller's newest words (aborted when they say more), settled when handed over. */
  private current?: { controller: AbortController; done: Promise<void> };
  /** The caller was told nobody can answer. */
  private unattended = false;

  constructor(
    private readonly line: AnsweredLine,
    private readonly config: VoiceCallConfig,
    private readonly responder: TurnResponder | undefined,
  ) {}

  /** Answers the caller's newest words. */
  async respond(): Promise<void> {
    const { line, responder } = this;
    const settings = this.settings();
    if (!responder || !responder.answers(line.record, settings.model)) {
      if (this.unattended) return;
      this.unattended = true;
      line.log.info("no agent and no responseModel: telling the caller and hanging up");
      await line.sayUnattended();
      return;
    }
    const previous = this.current;
    previous?.controller.abort("the caller said more");
    const controller = new AbortController();
    const heardAt = line.callerWords;
    const words = line.transcript.findLast((t) => t.speaker === "caller" && t.kind === "speech")?.text ?? "";
    const done = (async () => {
      await previous?.done;
      if (controller.signal.aborted || line.ended) return;
      const started = Date.now();
      const pieces: Array<Promise<unknown>> = [];
      let turn: string | undefined;
      await responder.respond({
        ...settings,
        call: line.record,
        transcript: [...line.transcript],
        words,
        signal: controller.signal,
        say: (text) => {
          const spoken = spokenText(text);
          if (!spoken || controller.signal.aborted || line.ended) return;
          if (pieces.length === 0) line.log.info({ ms: Date.now() - started }, "auto-response: first words ready");
          const said = line.sayAnswer(spoken, { opensTurn: pieces.length === 0, staleAfter: heardAt });
          if (pieces.length === 0) void said.then((token) => (turn = token), () => undefined);
          pieces.push(said.catch((err) => {
            if (!(err instanceof VoiceCallError && err.code === "INTERRUPTED")) throw err;
          }));
        },
      });
      if (pieces.length === 0 && !controller.signal.aborted) line.log.warn("the responder gave nothing that can be spoken");
      await Promise.all(pieces);
      if (pieces.length > 1 && turn !== undefined && !line.ended) await line.listenAgain(turn);
    })();
    this.current = { controller, done: done.catch(() => undefined) };
    await done;
  }

  /**
   * A question a realtime model on the line asks (its openclaw_agent_consult):
   * answered like a caller's turn, with the call so far, by the agent inside
   * the gateway or the responseModel standalone; the answer comes back as
   * text for the model to say, nothing is spoken here. Each question is its
   * own consult.
   */
  async consult(question: string, signal?: AbortSignal): Promise<string> {
    const { line, responder } = this;
    const settings = this.settings();
    if (!responder || !responder.answers(line.record, settings.model)) {
      throw new VoiceCallError("UNAVAILABLE", "no agent and no responseModel to consult: set responseModel (with responseBaseUrl), or run inside the gateway");
    }
    const controller = new AbortController();
    const stop = () => controller.abort("the call ended");
    signal?.addEventListener("abort", stop, { once: true });
    const pieces: string[] = [];
    try {
      await responder.respond({
        ...settings,
        call: line.record,
        transcript: [...line.transcript],
        words: question,
        signal: controller.signal,
        toolPolicy: this.config.realtime.toolPolicy === "owner" ? "owner" : "safe-read-only",
        say: (text) => {
          const spoken = spokenText(text);
          if (spoken) pieces.push(spoken);
        },
      });
    } finally {
      signal?.removeEventListener("abort", stop);
    }
    line.log.info({ chars: pieces.join(" ").length }, "realtime consult answered");
    return pieces.join(" ");
  }

  /** The answer in flight is abandoned: aborted (the call ended), or let run on unheard (`abort` false: a run that hung up finishes). */
  drop(reason: string, abort = true): void {
    if (abort) this.current?.controller.abort(reason);
    this.current = undefined;
  }

  /** responseModel / responseSystemPrompt / responseTimeoutMs of the number dialled, over the global ones. */
  private settings(): Pick<CallerTurn, "model" | "systemPrompt" | "timeoutMs"> {
    const { config } = this;
    const override = config.numbers[this.line.record.to];
    return {
      model: override?.responseModel ?? config.responseModel,
      systemPrompt: override?.responseSystemPrompt ?? config.responseSystemPrompt,
      timeoutMs: override?.responseTimeoutMs ?? config.responseTimeoutMs,
    };
  }
}
