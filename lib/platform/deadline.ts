/** Timeouts and deadlines on the injected Clock: one timer, one race. */
import type { Clock } from './clock.js';
import { squashError } from './errors.js';

/** An AbortSignal that fires after `ms` on the injected clock, and can be cancelled. */
export interface ClockTimer {
  signal: AbortSignal;
  /** Stop the timer (idempotent); the signal then never fires. */
  cancel(): void;
}

/**
 * The reason a cancelled timer's internal controller aborts with. `abort()` without a reason
 * builds a DOMException (with its stack) each time; at one timer per webhook that is measurable.
 */
const CANCELLED = Symbol('timer cancelled');

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
  return { signal: fired.signal, cancel: () => stop.abort(CANCELLED) };
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

/**
 * Wait for `work` at most `ms` on the injected clock; past that, reject with `reason()` and drop
 * the work's eventual result. The one timeout race of the product: the health ping, the change
 * stream read bounded by the run's deadline, the job processor's steps and the alert POST use it.
 */
export async function withTimeout<T>(work: Promise<T>, clock: Clock, ms: number, reason: () => Error): Promise<T> {
  const timer = clockTimer(clock, ms, reason);
  try {
    return await untilAborted(work, timer.signal);
  } finally {
    timer.cancel();
  }
}
