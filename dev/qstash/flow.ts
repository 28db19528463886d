import type { FlowControl } from './types.js';

/**
 * Flow control per key (`Upstash-Flow-Control-Key`): at most `parallelism` deliveries in flight and at
 * most `rate` started per period. Each message carries the limits it was published with.
 */
export class FlowControlGate {
  readonly #inFlight = new Map<string, number>();
  readonly #starts = new Map<string, number[]>();

  /** 'go', 'blocked' until an attempt of the key finishes, or the time the rate window frees a slot. */
  check(fc: FlowControl, nowMs: number): 'go' | 'blocked' | number {
    if (fc.parallelism !== undefined && this.inFlight(fc.key) >= fc.parallelism) return 'blocked';
    if (fc.rate !== undefined) {
      const starts = (this.#starts.get(fc.key) ?? []).filter((t) => t > nowMs - fc.periodMs);
      this.#starts.set(fc.key, starts);
      if (starts.length >= fc.rate) return starts[0]! + fc.periodMs;
    }
    return 'go';
  }

  started(fc: FlowControl, nowMs: number): void {
    this.#inFlight.set(fc.key, this.inFlight(fc.key) + 1);
    if (fc.rate === undefined) return;
    const starts = this.#starts.get(fc.key) ?? [];
    starts.push(nowMs);
    this.#starts.set(fc.key, starts);
  }

  finished(fc: FlowControl): void {
    this.#inFlight.set(fc.key, Math.max(0, this.inFlight(fc.key) - 1));
  }

  inFlight(key: string): number {
    return this.#inFlight.get(key) ?? 0;
  }
}
