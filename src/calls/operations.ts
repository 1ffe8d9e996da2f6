/**
 * Turns started now and answered later (`voicecall.continue.start`, then
 * `voicecall.continue.result`): the gateway's RPC has a per-request timeout
 * shorter than a caller's answer can take, so clients poll. Bounded in count
 * and kept a while after they settle, then forgotten.
 */
import { randomUUID } from "node:crypto";
import { VoiceCallError, asVoiceCallError, type ErrorCode } from "../errors.js";

export type OperationStatus =
  | { status: "pending"; operationId: string }
  | { status: "completed"; operationId: string; result: unknown }
  | { status: "failed"; operationId: string; error: string; code: ErrorCode };

interface Operation {
  state: OperationStatus;
  settledAt?: number;
}

export interface OperationsOptions {
  /** Settled results are kept this long for a late poll. */
  keepMs?: number;
  /** At most this many operations at once; the oldest settled ones go first. */
  max?: number;
  now?: () => number;
}

export class Operations {
  private readonly ops = new Map<string, Operation>();
  private readonly keepMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(options: OperationsOptions = {}) {
    this.keepMs = options.keepMs ?? 10 * 60_000;
    this.max = options.max ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /** Starts `work` and returns its id at once; the outcome is read with `read`. */
  start(work: () => Promise<unknown>): { operationId: string } {
    this.prune();
    if (this.ops.size >= this.max) {
      throw new VoiceCallError("LIMIT_REACHED", `too many operations in progress (${this.max}); poll or wait for some to finish`);
    }
    const operationId = randomUUID();
    const op: Operation = { state: { status: "pending", operationId } };
    this.ops.set(operationId, op);
    const settle = (state: OperationStatus) => {
      op.state = state;
      op.settledAt = this.now();
    };
    // Promise.resolve().then: a synchronous throw in `work` settles as a failure too.
    Promise.resolve()
      .then(work)
      .then(
        (result) => settle({ status: "completed", operationId, result }),
        (err) => {
          const e = asVoiceCallError(err);
          settle({ status: "failed", operationId, error: e.message, code: e.code });
        },
      );
    return { operationId };
  }

  read(operationId: string): OperationStatus {
    this.prune();
    const op = this.ops.get(operationId);
    if (!op) throw new VoiceCallError("NOT_FOUND", `no operation with id ${operationId} (unknown, or its result expired)`);
    return op.state;
  }

  private prune(): void {
    const now = this.now();
    for (const [id, op] of this.ops) {
      if (op.settledAt !== undefined && now - op.settledAt > this.keepMs) this.ops.delete(id);
    }
    if (this.ops.size < this.max) return;
    for (const [id, op] of this.ops) {
      if (this.ops.size < this.max) break;
      if (op.settledAt !== undefined) this.ops.delete(id);
    }
  }
}
