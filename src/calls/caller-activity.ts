/** Whether the caller is talking now (between a speech onset and its end), and a wait for them to stop. */
export class CallerActivity {
  private talking = false;
  private quiet: Array<() => void> = [];

  get speaking(): boolean {
    return this.talking;
  }

  started(): void {
    this.talking = true;
  }

  stopped(): void {
    this.talking = false;
    for (const resolve of this.quiet.splice(0)) resolve();
  }

  /** Resolves when the caller stops talking, or after `maxMs` (a detector that never reports the end). */
  untilQuiet(maxMs: number): Promise<void> {
    if (!this.talking) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      timer.unref();
      this.quiet.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
