import type { Db, MongoClient } from 'mongodb';
import { buildContext, type AppContext } from '../../../lib/platform/context.js';
import type { Clock } from '../../../lib/platform/clock.js';
import { silentLogger } from '../../../lib/platform/log.js';
import { useTestDb } from '../../support/mongo.js';
import { jobsConfig } from './config.js';

export interface JobsDb {
  readonly db: Db;
  readonly client: MongoClient;
  /** An AppContext over this database with the given clock and job settings (no QStash). */
  context(clock: Clock, env?: Record<string, string>): Promise<AppContext>;
}

/** A database of its own for the calling test file; call at the file's top level (registers hooks). */
export function useJobsDb(name: string): JobsDb {
  const test = useTestDb(name);
  return {
    get db() {
      return test.db();
    },
    get client() {
      return test.client();
    },
    context: (clock, env = {}) =>
      buildContext(jobsConfig(env), { client: test.client(), db: test.db(), clock, log: silentLogger, publisher: null }),
  };
}
