/**
 * Promise 6 (only authorized callers drain, trigger or read status; secrets never appear in
 * responses): every route × missing / wrong / other route's secret / unset secret (503) / right.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fanout from '../../api/cron/fanout.js';
import * as drain from '../../api/drain.js';
import * as health from '../../api/health.js';
import * as process_ from '../../api/jobs/process.js';
import * as retry from '../../api/jobs/retry.js';
import * as status from '../../api/status.js';
import * as trigger from '../../api/trigger.js';
import { provideContext } from '../../lib/platform/context.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { seedWorkflow } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, CRON, body, request, useRouteContext } from './support.js';

const t = useTestDb('api_auth');

type Handler = (r: Request) => Promise<Response>;
interface Case {
  name: string;
  handler: Handler;
  method: string;
  path: string;
  secretEnv: 'CRON_SECRET' | 'ADMIN_TOKEN';
  token: string;
  /** A token for another route: must not open this one. */
  otherToken: string;
  body?: unknown;
}

const cases: Case[] = [
  { name: 'GET /api/cron/fanout', handler: fanout.GET, method: 'GET', path: '/api/cron/fanout', secretEnv: 'CRON_SECRET', token: CRON, otherToken: ADMIN },
  { name: 'POST /api/drain (cron bearer)', handler: drain.POST, method: 'POST', path: '/api/drain', secretEnv: 'CRON_SECRET', token: CRON, otherToken: ADMIN, body: { orgId: 'acme' } },
  { name: 'POST /api/trigger', handler: trigger.POST, method: 'POST', path: '/api/trigger', secretEnv: 'ADMIN_TOKEN', token: ADMIN, otherToken: CRON, body: { orgId: 'acme' } },
  { name: 'GET /api/status', handler: status.GET, method: 'GET', path: '/api/status', secretEnv: 'ADMIN_TOKEN', token: ADMIN, otherToken: CRON },
  { name: 'GET /api/jobs/process', handler: process_.GET, method: 'GET', path: '/api/jobs/process', secretEnv: 'CRON_SECRET', token: CRON, otherToken: ADMIN },
  { name: 'POST /api/jobs/process (cron bearer)', handler: process_.POST, method: 'POST', path: '/api/jobs/process', secretEnv: 'CRON_SECRET', token: CRON, otherToken: ADMIN, body: {} },
  { name: 'POST /api/jobs/retry', handler: retry.POST, method: 'POST', path: '/api/jobs/retry', secretEnv: 'ADMIN_TOKEN', token: ADMIN, otherToken: CRON, body: { ids: ['no-such-job'], dryRun: true } },
];

function call(c: Case, headers: Record<string, string>): Promise<Response> {
  const h = c.body !== undefined ? { 'content-type': 'application/json', ...headers } : headers;
  return c.handler(request(c.method, c.path, { headers: h, ...(c.body !== undefined ? { body: JSON.stringify(c.body) } : {}) }));
}

async function sideEffects(): Promise<number> {
  const db = t.db();
  const [runs, checkpoints, ticks] = await Promise.all([
    db.collection(COLLECTIONS.runs).countDocuments(),
    db.collection(COLLECTIONS.checkpoints).countDocuments(),
    db.collection(COLLECTIONS.fanoutTicks).countDocuments(),
  ]);
  return runs + checkpoints + ticks;
}

beforeAll(async () => {
  await seedWorkflow(t.db(), { organizationId: 'acme' });
});
afterAll(() => provideContext(null));

describe.each(cases)('$name', (c) => {
  it('refuses a missing, malformed, wrong or foreign credential with 401 and does nothing', async () => {
    await useRouteContext(t.db(), t.client());
    const before = await sideEffects();
    const attempts: Record<string, Record<string, string>> = {
      missing: {},
      'wrong scheme': { authorization: `Basic ${Buffer.from(`x:${c.token}`).toString('base64')}` },
      'empty bearer': { authorization: 'Bearer ' },
      wrong: { authorization: `Bearer ${c.token}x` },
      prefix: { authorization: `Bearer ${c.token.slice(0, -1)}` },
      "another route's secret": { authorization: `Bearer ${c.otherToken}` },
      'bearer undefined': { authorization: 'Bearer undefined' },
    };
    if (c.path === '/api/status') delete attempts['wrong scheme']; // the dashboard accepts Basic with the admin token (tested below)
    for (const [what, headers] of Object.entries(attempts)) {
      const res = await call(c, headers);
      expect(res.status, what).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text).error.code, what).toBe('unauthorized');
      expect(text).not.toContain(c.token);
      expect(text).not.toContain(c.otherToken);
      // The answer names the credential the route expects, by variable name.
      const message: string = JSON.parse(text).error.message;
      expect(message, what).toContain(`Authorization: Bearer <${c.secretEnv}>`);
      if (c.name.includes('(cron bearer)')) expect(message, what).toContain('QStash Upstash-Signature');
      expect(message, what).toMatch(what === 'missing' ? /no Authorization header was sent/ : /does not match|malformed/);
    }
    expect(await sideEffects()).toBe(before);
  });

  it('answers 503 not_configured when its secret is unset, even to a caller that sends one', async () => {
    await useRouteContext(t.db(), t.client(), { [c.secretEnv]: undefined });
    for (const headers of [{}, { authorization: `Bearer ${c.token}` }, { authorization: 'Bearer undefined' }, { authorization: 'Bearer ' }] as Record<string, string>[]) {
      const res = await call(c, headers);
      expect(res.status).toBe(503);
      const b = await body(res);
      expect(b.error?.code).toBe('not_configured');
      expect(b.error?.message).toContain(c.secretEnv);
    }
  });

  it('accepts the right secret', async () => {
    await useRouteContext(t.db(), t.client());
    const res = await call(c, { authorization: `Bearer ${c.token}` });
    expect(res.status, await res.clone().text()).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(CRON);
    expect(text).not.toContain(ADMIN);
  });
});

describe('GET /api/status from a browser', () => {
  it('challenges with WWW-Authenticate and accepts the admin token as the Basic password', async () => {
    await useRouteContext(t.db(), t.client());
    const denied = await status.GET(request('GET', '/api/status', { headers: { accept: 'text/html' } }));
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const wrong = await status.GET(request('GET', '/api/status', { headers: { authorization: `Basic ${Buffer.from('ops:nope').toString('base64')}` } }));
    expect(wrong.status).toBe(401);
    const ok = await status.GET(request('GET', '/api/status', { headers: { accept: 'text/html', authorization: `Basic ${Buffer.from(`ops:${ADMIN}`).toString('base64')}` } }));
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toContain('text/html');
  });
});

describe('POST /api/drain without any drain credential configured', () => {
  it('answers 503 when neither QStash keys nor CRON_SECRET are set', async () => {
    await useRouteContext(t.db(), t.client(), { CRON_SECRET: undefined });
    const res = await drain.POST(request('POST', '/api/drain', { headers: { 'content-type': 'application/json' }, body: '{"orgId":"acme"}' }));
    expect(res.status).toBe(503);
    expect((await body(res)).error?.code).toBe('not_configured');
  });
});

describe('GET /api/health', () => {
  it('needs no credential, pings MongoDB and shows no configuration', async () => {
    await useRouteContext(t.db(), t.client());
    const res = await health.GET(request('GET', '/api/health'));
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ ok: true, mongo: { ok: true } });
    for (const marker of [CRON, ADMIN, 'mongodb://', t.db().databaseName]) expect(text).not.toContain(marker);
  });
});
