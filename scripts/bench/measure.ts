/**
 * Measuring tools shared by the bench sections: round-trip counting through driver command
 * monitoring, percentiles, and rates. Times come from `performance.now()` only.
 */
import type { CommandFailedEvent, CommandStartedEvent, CommandSucceededEvent, MongoClient } from 'mongodb';

/**
 * Counts `commandStarted` events of one client (it must be created with `monitorCommands: true`)
 * while a measurement is open. Only commands against `dbName` count, so the driver's own
 * housekeeping and other databases stay out of the figure.
 */
export class CommandCounter {
  private counts: Record<string, number> | null = null;
  private ms: Record<string, number> = {};
  private readonly onStarted = (e: CommandStartedEvent) => {
    if (!this.counts || (this.dbName && e.databaseName !== this.dbName)) return;
    this.counts[e.commandName] = (this.counts[e.commandName] ?? 0) + 1;
  };
  private readonly onDone = (e: CommandSucceededEvent | CommandFailedEvent) => {
    if (!this.counts || (this.dbName && e.databaseName !== this.dbName)) return;
    this.ms[e.commandName] = (this.ms[e.commandName] ?? 0) + e.duration;
  };
  constructor(
    private readonly client: MongoClient,
    private readonly dbName: string | null,
  ) {
    client.on('commandStarted', this.onStarted);
    client.on('commandSucceeded', this.onDone);
    client.on('commandFailed', this.onDone);
  }
  start(): void {
    this.counts = {};
    this.ms = {};
  }
  /**
   * Stops counting; returns the commands seen by name, their total, and the time the driver waited
   * for each kind of command (round trip as the driver measures it, summed).
   */
  stop(): { total: number; byCommand: Record<string, number>; msByCommand: Record<string, number> } {
    const byCommand = this.counts ?? {};
    this.counts = null;
    const msByCommand = Object.fromEntries(Object.entries(this.ms).map(([k, v]) => [k, Math.round(v)]));
    return { total: Object.values(byCommand).reduce((a, b) => a + b, 0), byCommand, msByCommand };
  }
  dispose(): void {
    this.client.off('commandStarted', this.onStarted);
    this.client.off('commandSucceeded', this.onDone);
    this.client.off('commandFailed', this.onDone);
  }
}

/** Resolves when the client's next successful command matches `pred` (e.g. "the drain opened its stream"). */
export function nextCommand(client: MongoClient, pred: (e: CommandSucceededEvent) => boolean): Promise<CommandSucceededEvent> {
  return new Promise((resolve) => {
    const on = (e: CommandSucceededEvent) => {
      if (!pred(e)) return;
      client.off('commandSucceeded', on);
      resolve(e);
    };
    client.on('commandSucceeded', on);
  });
}

/** Nearest-rank percentile of an ascending-sorted list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

export function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : Number.NaN;
}

export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Time an async function with performance.now(). */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

/**
 * How busy a process was during a measurement: its CPU time over the wall time, 1.0 = one core
 * fully used. `cpuMs` returns null when the process cannot be observed.
 */
export async function timedWithCpu<T>(cpuMs: () => number | null, fn: () => Promise<T>): Promise<{ value: T; ms: number; busy: number | null }> {
  const c0 = cpuMs();
  const r = await timed(fn);
  const c1 = cpuMs();
  return { ...r, busy: c0 === null || c1 === null ? null : round((c1 - c0) / r.ms, 2) };
}
