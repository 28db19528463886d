import type { Clock } from '../../../lib/platform/clock.js';

/** A Clock that only moves when the test says so; sleepers wake when time passes their target. */
export class FakeClock implements Clock {
  #now: number;
  #sleepers = new Set<{ at: number; wake: () => void }>();

  constructor(start = Date.UTC(2030, 0, 1, 12, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (ms <= 0 || signal?.aborted) return resolve();
      const sleeper = {
        at: this.#now + ms,
        wake: () => {
          this.#sleepers.delete(sleeper);
          signal?.removeEventListener('abort', sleeper.wake);
          resolve();
        },
      };
      this.#sleepers.add(sleeper);
      signal?.addEventListener('abort', sleeper.wake, { once: true });
    });
  }

  /** Move time forward and wake every sleeper whose target has passed. */
  advance(ms: number): void {
    this.#now += ms;
    for (const sleeper of [...this.#sleepers]) if (sleeper.at <= this.#now) sleeper.wake();
  }

  /** Sleepers still waiting (timers the code under test has not cancelled). */
  get pending(): number {
    return this.#sleepers.size;
  }
}
