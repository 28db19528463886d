import type { Clock } from '../platform/clock.js';
import { squashError } from '../platform/errors.js';

/** An AbortSignal that fires after `ms` on the injected clock, and can be cancelled. */
export interface ClockTimer {
  signal: AbortSignal;
  /** Stop the timer (idempotent); the signal then never fires. */
  cancel(): void;
}

/**
 * A timeout on the injected Clock rather than `AbortSignal.timeout`, so that deadlines and
 * request timeouts follow the same time source as the rest of the logic (and fake clocks in tests).
 */
export function clockTimer(clock: Clock, ms: number, reason: () => Error): ClockTimer {
  const fired = new AbortController();
  const stop = new AbortController();
  clock.sleep(Math.max(0, ms), stop.signal).then(() => {
    if (!stop.signal.aborted) fired.abort(reason());
  }, squashError);
  return { signal: fired.signal, cancel: () => stop.abort() };
}

/**
 * Wait for `work`, but no longer than until `signal` fires. A handler that ignores its signal
 * must not hold a worker past its deadline; its eventual result is dropped on purpose.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(squashError);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(squashError);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
