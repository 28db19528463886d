/** Calling the api/ handlers in-process, with the context of a fault scenario. */
import { loadConfig } from '../../../lib/platform/config.js';
import { buildContext, provideContext, type AppContext } from '../../../lib/platform/context.js';
import { silentLogger } from '../../../lib/platform/log.js';
import type { Clock } from '../../../lib/platform/clock.js';
import { systemClock } from '../../../lib/platform/clock.js';
import { FAULT_ENV } from '../support.js';
import type { FaultEnv } from '../types.js';

/** Secrets of the route scenarios (random per run would do as well; these are easy to grep for in output). */
export const CRON = 'faults-cron-secret-00000000000001';
export const ADMIN = 'faults-admin-token-0000000000002';
export const SIGNING = { current: 'sig_faults_current_key_000000001', next: 'sig_faults_next_key_00000000002' };
export const PUBLIC_BASE_URL = 'https://triggers.example.com';

/** Build a context with the route secrets and make the api/ handlers use it. Undo with `provideContext(null)`. */
export async function routeContext(env: FaultEnv, overrides: Record<string, string> = {}, clock: Clock = systemClock): Promise<AppContext> {
  const config = loadConfig({
    MONGODB_URI: env.uri,
    MONGODB_DB: env.db.databaseName,
    ...FAULT_ENV,
    CRON_SECRET: CRON,
    ADMIN_TOKEN: ADMIN,
    QSTASH_CURRENT_SIGNING_KEY: SIGNING.current,
    QSTASH_NEXT_SIGNING_KEY: SIGNING.next,
    PUBLIC_BASE_URL,
    JOB_WINDOW_MS: '2000',
    ...overrides,
  });
  const ctx = await buildContext(config, { client: env.client, db: env.db, clock, log: silentLogger, publisher: null });
  provideContext(ctx);
  return ctx;
}

export function request(method: string, path: string, headers: Record<string, string> = {}, body?: string): Request {
  return new Request(`http://localhost${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
}

export async function errorOf(res: Response): Promise<{ code?: string; message?: string }> {
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    return body.error ?? {};
  } catch {
    return {};
  }
}
