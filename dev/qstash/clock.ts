import { setTimeout as wait } from 'node:timers/promises';

/** Time as a port, so delivery schedules can be driven by tests (same shape as the product's Clock). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds, or as soon as `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => wait(Math.max(0, ms), undefined, { signal }).catch(() => undefined),
};
