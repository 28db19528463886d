import type { Db, MongoClient } from 'mongodb';
import { loadConfig, type Config } from './config.js';
import { systemClock, type Clock } from './clock.js';
import { jsonLogger, type Logger } from './log.js';
import { ensureIndexes, getMongoClient } from './mongo.js';

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
}

let cached: Promise<AppContext> | null = null;

export function getContext(env: Record<string, string | undefined> = process.env): Promise<AppContext> {
  cached ??= buildContext(loadConfig(env)).catch((error: unknown) => {
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
  };
}

/** Forget the cached context (tests that change the environment). */
export function resetContext(): void {
  cached = null;
}
