import type { Db, MongoClient } from 'mongodb';
import { loadConfig } from '../../lib/platform/config.js';
import { buildContext, provideContext, type AppContext } from '../../lib/platform/context.js';
import { systemClock, type Clock } from '../../lib/platform/clock.js';
import { qstashPublisher, type Publisher } from '../../lib/qstash/publisher.js';
import { silentLogger } from '../../lib/platform/log.js';

/** Secrets of the route tests: distinctive, so a leak of any of them is easy to search for. */
export const CRON = 'cron-secret-value-for-tests-0001';
export const ADMIN = 'admin-token-value-for-tests-0002';

/** Change streams on for every organization, short windows so drains end quickly. */
export const ROUTE_ENV: Record<string, string> = {
  USE_CHANGE_STREAMS: 'true',
  STREAM_LAYOUT: 'collection',
  CHANGE_STREAMS_ALL_ORGS: 'true',
  TRIGGER_MODE: 'change_streams',
  DRAIN_WINDOW_MS: '3000',
  DRAIN_IDLE_MS: '300',
  DRAIN_MAX_AWAIT_MS: '100',
  JOB_WINDOW_MS: '2000',
  LOG_LEVEL: 'silent',
  // Webhook receivers in these tests listen on loopback, which the processor refuses unless allowed.
  WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8',
  CRON_SECRET: CRON,
  ADMIN_TOKEN: ADMIN,
};

/**
 * Build a context on the test database and make the api/ handlers use it. `env` entries set to
 * `undefined` are removed (to test an unset secret). Publisher: none by default, a fake, or
 * `'from-config'` for the real QStash Client built from the environment.
 */
export async function useRouteContext(
  db: Db,
  client: MongoClient,
  env: Record<string, string | undefined> = {},
  opts: { publisher?: Publisher | null | 'from-config'; clock?: Clock } = {},
): Promise<AppContext> {
  const merged: Record<string, string | undefined> = { MONGODB_URI: 'mongodb://127.0.0.1:1', MONGODB_DB: db.databaseName, ...ROUTE_ENV, ...env };
  const config = loadConfig(merged);
  const publisher = opts.publisher === 'from-config' ? qstashPublisher(config) : (opts.publisher ?? null);
  const ctx = await buildContext(config, { db, client, clock: opts.clock ?? systemClock, log: silentLogger, publisher });
  provideContext(ctx);
  return ctx;
}

export function request(method: string, path: string, init: { headers?: Record<string, string>; body?: string } = {}): Request {
  return new Request(`http://localhost${path}`, {
    method,
    headers: init.headers ?? {},
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
export const jsonHeaders = (token: string) => ({ ...bearer(token), 'content-type': 'application/json' });

export async function body(res: Response): Promise<{ error?: { code: string; message: string } } & Record<string, unknown>> {
  return (await res.json()) as { error?: { code: string; message: string } } & Record<string, unknown>;
}
