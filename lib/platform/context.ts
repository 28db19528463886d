import type { Db, MongoClient } from 'mongodb';
import { loadConfig, type Config } from './config.js';
import { systemClock, type Clock } from './clock.js';
import { jsonLogger, type Logger } from './log.js';
import { ensureIndexes, getMongoClient } from '../data/mongo.js';
import { qstashPublisher, type Publisher } from '../qstash/publisher.js';

/**
 * Everything a lib function needs, built once per warm instance by `getContext` (the one
 * composition root). Tests build their own with fakes or a test database.
 */
export interface AppContext {
  config: Config;
  client: MongoClient;
  db: Db;
  clock: Clock;
  log: Logger;
  /** QStash publisher; `null` when QSTASH_TOKEN is unset (fan-out then drains in-process). */
  publisher: Publisher | null;
  /**
   * Without QStash: start a job-processor run in this process now (lib/jobs/kick.ts). Set by the
   * local runner (dev/local); must return at once and never throw.
   */
  runJobsNow?: () => void;
  /**
   * Without QStash: start recovery runs of a partition in this process, in the background
   * (lib/drain/recovery-run.ts `inProcessRecoveries`). Set by the local runner; must return at once
   * and never throw. Absent: pending recoveries wait for `runRecovery` (an operator, a test).
   */
  runRecoveryNow?: (partition: { id: string }) => void;
}

let cachedConfig: Config | null = null;
let cached: Promise<AppContext> | null = null;

/**
 * The parsed configuration, once per instance. Routes authenticate with it before any database
 * work, so a wrong secret never costs a connection. Throws `ConfigError` listing every problem.
 */
export function getConfig(env: Record<string, string | undefined> = process.env): Config {
  cachedConfig ??= loadConfig(env);
  return cachedConfig;
}

export function getContext(env: Record<string, string | undefined> = process.env): Promise<AppContext> {
  cached ??= Promise.resolve()
    .then(() => buildContext(getConfig(env)))
    .catch((error: unknown) => {
      cached = null;
      throw error;
    });
  return cached;
}

export async function buildContext(config: Config, overrides: Partial<AppContext> = {}): Promise<AppContext> {
  const client = overrides.client ?? (await getMongoClient(config.MONGODB_URI.reveal()));
  const db = overrides.db ?? client.db(config.MONGODB_DB);
  await ensureIndexes(db);
  return {
    config,
    client,
    db,
    clock: overrides.clock ?? systemClock,
    log: overrides.log ?? jsonLogger(config.LOG_LEVEL),
    publisher: overrides.publisher !== undefined ? overrides.publisher : qstashPublisher(config),
    ...(overrides.runJobsNow ? { runJobsNow: overrides.runJobsNow } : {}),
    ...(overrides.runRecoveryNow ? { runRecoveryNow: overrides.runRecoveryNow } : {}),
  };
}

/**
 * Use this context for every later `getContext`/`getConfig` call (tests, the local runner).
 * `null` forgets it.
 */
export function provideContext(ctx: AppContext | null): void {
  cachedConfig = ctx ? ctx.config : null;
  cached = ctx ? Promise.resolve(ctx) : null;
}

/** Forget the cached context and configuration (tests that change the environment). */
export function resetContext(): void {
  cached = null;
  cachedConfig = null;
}

const fallbackLog = jsonLogger('error');

/** The logger of the built context, or a JSON error logger when none was built (startup failures). */
export async function currentLogger(): Promise<Logger> {
  if (!cached) return fallbackLog;
  try {
    return (await cached).log;
  } catch {
    return fallbackLog;
  }
}
