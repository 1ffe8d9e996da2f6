/**
 * A queue read as an async iterable by one reader: push never blocks, the
 * reader waits when it is empty. With a limit, the oldest item goes first
 * when full (live audio prefers the newest).
 */
export class AsyncQueue<T> {
  private items: T[] = [];
  private waiter: ((value: IteratorResult<T>) => void) | null = null;
  private ended = false;
  dropped = 0;

  constructor(private readonly limit = Number.POSITIVE_INFINITY) {}

  push(item: T): void {
    if (this.ended) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.limit) {
      this.items.shift();
      this.dropped += 1;
    }
    this.items.push(item);
  }

  end(): void {
    this.ended = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: undefined, done: true });
    }
  }

  get isEnded(): boolean {
    return this.ended;
  }

  iterate(): AsyncIterable<T> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
          if (this.ended) return Promise.resolve({ value: undefined, done: true });
          return new Promise<IteratorResult<T>>((resolve) => (this.waiter = resolve));
        },
        return: () => {
          this.end();
          return Promise.resolve({ value: undefined, done: true });
        },
      }),
    };
  }
}
