/**
 * Shared pieces of the fault scenarios: a context on the fault database, per-trial organizations,
 * draining until a stream is quiet, the tally of one scenario, and a seeded random source.
 */
import { randomBytes } from 'node:crypto';
import type { Db } from 'mongodb';
import { loadConfig } from '../../lib/platform/config.js';
import { buildContext, type AppContext } from '../../lib/platform/context.js';
import { systemClock, type Clock } from '../../lib/platform/clock.js';
import { drainStream } from '../../lib/drain/drain.js';
import { silentLogger } from '../../lib/platform/log.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import type { DrainSummary } from '../../lib/data/documents.js';
import type { StreamRef } from '../../lib/streams/refs.js';
import { countJobs } from '../bench/setup.js';
import type { FaultEnv, ScenarioResult } from './types.js';

/** Change streams on for every organization, dual mode, short windows so every trial ends quickly. */
export const FAULT_ENV: Record<string, string> = {
  USE_CHANGE_STREAMS: 'true',
  STREAM_LAYOUT: 'collection',
  CHANGE_STREAMS_ALL_ORGS: 'true',
  TRIGGER_MODE: 'dual',
  DRAIN_WINDOW_MS: '4000',
  DRAIN_IDLE_MS: '300',
  DRAIN_MAX_AWAIT_MS: '100',
  DRAIN_BATCH_SIZE: '50',
  LOG_LEVEL: 'silent',
  // The scenarios' webhook receivers listen on loopback, which the processor refuses unless allowed.
  WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8',
};

export async function faultContext(env: FaultEnv, overrides: Record<string, string> = {}, clock: Clock = systemClock, db: Db = env.db): Promise<AppContext> {
  const config = loadConfig({ MONGODB_URI: env.uri, MONGODB_DB: env.db.databaseName, ...FAULT_ENV, ...overrides });
  return buildContext(config, { client: env.client, db, clock, log: silentLogger, publisher: null });
}

/** A fresh organization id per trial, so trials never see each other's events or jobs. */
export function trialOrg(prefix: string, trial: number): string {
  return `${prefix}${trial}_${randomBytes(3).toString('hex')}`;
}

/**
 * Drain until a run reads nothing, completes and leaves no recovery pending (at most `maxRuns`).
 * This is what the next cron ticks do after a fault.
 */
export async function drainUntilQuiet(ctx: AppContext, stream: StreamRef, maxRuns = 8): Promise<DrainSummary[]> {
  const runs: DrainSummary[] = [];
  const store = new CheckpointStore(ctx.db);
  for (let i = 0; i < maxRuns; i++) {
    const run = await drainStream(ctx, stream);
    runs.push(run);
    if (run.status === 'completed' && run.events === 0 && !(await store.get(stream.id))?.recovery) break;
  }
  return runs;
}

/** Mulberry32: small, fast, seeded; good enough to pick crash points reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** Accumulates one scenario's row. */
export class Tally {
  readonly result: ScenarioResult;
  private readonly started = performance.now();
  constructor(scenario: string, promises: string) {
    this.result = { scenario, promises, trials: 0, events: 0, jobsExpected: 0, jobsFound: 0, lost: 0, duplicated: 0, rejectionsExpected: 0, rejectedAsExpected: 0, failures: [], notes: [], ms: 0 };
  }
  trial(): void {
    this.result.trials++;
  }
  /** Count the jobs of one organization (one workflow) for the submissions inserted. */
  async jobs(db: Db, orgId: string, ids: readonly string[]): Promise<void> {
    this.add(await countJobs(db, orgId, ids));
  }
  /** Add counted jobs: `expected` submissions (one job each), the jobs `found`, `lost` and `duplicated`. */
  add(c: { expected: number; found: number; lost: number; duplicated: number }): void {
    this.result.events += c.expected;
    this.result.jobsExpected += c.expected;
    this.result.jobsFound += c.found;
    this.result.lost += c.lost;
    this.result.duplicated += c.duplicated;
  }
  rejections(expected: number, asExpected: number): void {
    this.result.rejectionsExpected += expected;
    this.result.rejectedAsExpected += asExpected;
  }
  /** Record a failed check unless `ok`. */
  check(ok: boolean, what: string): void {
    if (!ok) this.result.failures.push(what);
  }
  note(text: string): void {
    this.result.notes.push(text);
  }
  done(): ScenarioResult {
    this.result.ms = Math.round(performance.now() - this.started);
    return this.result;
  }
}
