/** Time as a port, so that logic never reads the wall clock itself and tests can move it. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (ms <= 0 || signal?.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        signal?.removeEventListener('abort', done);
        clearTimeout(timer);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/** A deadline computed once at the start of an invocation. */
export class Deadline {
  constructor(
    private readonly clock: Clock,
    readonly at: number,
  ) {}
  static after(clock: Clock, ms: number): Deadline {
    return new Deadline(clock, clock.now() + ms);
  }
  remaining(): number {
    return Math.max(0, this.at - this.clock.now());
  }
  passed(): boolean {
    return this.clock.now() >= this.at;
  }
}
