/**
 * Keys pressed on a call, collected into answers as an IVR reads them:
 * complete at `#` (not part of the answer; a lone `#` is an answer of its
 * own), at the expected count, or when no key follows within the
 * inter-digit timeout.
 */
export class KeyCollector {
  private keys = "";
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly interDigitMs: number,
    private readonly complete: (answer: string) => void,
  ) {}

  /** Keys as they arrive; `wanted`: how many the open turn expects, if it says. */
  push(digits: string, wanted?: number): void {
    for (const key of digits) {
      if (key === "#") {
        this.finish(this.keys || "#");
        continue;
      }
      this.keys += key;
      if (wanted !== undefined && this.keys.length >= wanted) this.finish(this.keys);
    }
    clearTimeout(this.timer);
    if (this.keys) {
      this.timer = setTimeout(() => this.finish(this.keys), this.interDigitMs);
      this.timer.unref();
    }
  }

  /** What was collected so far is an answer now (the call is ending). */
  flush(): void {
    if (this.keys) this.finish(this.keys);
  }

  /** Drops what was collected (the call ended). */
  stop(): void {
    clearTimeout(this.timer);
    this.keys = "";
  }

  private finish(answer: string): void {
    clearTimeout(this.timer);
    this.keys = "";
    if (answer) this.complete(answer);
  }
}
