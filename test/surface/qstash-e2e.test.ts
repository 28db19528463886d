/**
 * The serverless surface over real sockets: the api/ routes served by the local runner's adapter,
 * the real `@upstash/qstash` Client publishing to the local QStash server (dev/qstash), signed
 * deliveries verified by the real Receiver in the route.
 *   - promise 2: repeated cron ticks in one minute drain each stream once (QStash deduplication);
 *   - promise 1: a busy stream continues itself through QStash until every submission has its one job;
 *   - job processing continues through QStash while due jobs remain.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startQStashServer, type QStashServer } from '../../dev/qstash/server.js';
import { serveWeb, type WebServer } from '../../dev/local/runner/adapter.js';
import { loadRoutes } from '../../dev/local/runner/routes.js';
import { provideContext } from '../../lib/platform/context.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { OffsetClock, insertSubmissions, jobCounts, seedWorkflow, until } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { CRON, useRouteContext } from '../api/support.js';

const t = useTestDb('surface_qstash_e2e');
let qstash: QStashServer;
let web: WebServer;
let sink: Server;
let sinkUrl = '';
let sinkHits = 0;

/**
 * A clock 2 s into a minute of its own: each test's ticks get dedup ids no earlier test used
 * (QStash keeps them for its dedup window), and ticks within a test stay in one minute.
 */
let minutesAhead = 0;
function minuteClock(): OffsetClock {
  const clock = new OffsetClock();
  const now = Date.now();
  minutesAhead += 10;
  clock.advance(Math.ceil(now / 60_000) * 60_000 + minutesAhead * 60_000 + 2_000 - now);
  return clock;
}

async function env(extra: Record<string, string> = {}, clock = minuteClock()) {
  const ctx = await useRouteContext(
    t.db(),
    t.client(),
    {
      QSTASH_URL: qstash.url,
      QSTASH_TOKEN: qstash.token,
      QSTASH_CURRENT_SIGNING_KEY: qstash.currentSigningKey,
      QSTASH_NEXT_SIGNING_KEY: qstash.nextSigningKey,
      PUBLIC_BASE_URL: `http://127.0.0.1:${web.port}`,
      ...extra,
    },
    { publisher: 'from-config', clock },
  );
  return { ctx, clock };
}

const cron = async (path: string) => {
  const res = await fetch(`http://127.0.0.1:${web.port}${path}`, { headers: { authorization: `Bearer ${CRON}`, 'user-agent': 'vercel-cron/1.0' } });
  expect(res.status, await res.clone().text()).toBe(200);
  return res.json() as Promise<Record<string, unknown>>;
};

const drainDeliveries = () => qstash.messages().filter((m) => m.url.endsWith('/api/drain'));

beforeAll(async () => {
  qstash = await startQStashServer({ port: 0, retryDelayScale: 0.001 });
  const routes = await loadRoutes(join(import.meta.dirname, '..', '..', 'api'));
  web = await serveWeb((r) => routes.dispatch(r), { port: 0 });
  // A webhook receiver that takes a little while, so a short job window leaves work for a continuation.
  sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      sinkHits++;
      setTimeout(() => res.writeHead(200).end('ok'), 60);
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hook`;
  for (const org of ['acme', 'beta']) await seedWorkflow(t.db(), { organizationId: org, steps: [{ type: 'webhook', url: sinkUrl }] });
});

beforeEach(async () => {
  await qstash.idle();
  await Promise.all([COLLECTIONS.checkpoints, COLLECTIONS.runs, COLLECTIONS.fanoutTicks, COLLECTIONS.jobs].map((c) => t.db().collection(c).deleteMany({})));
});

afterAll(async () => {
  provideContext(null);
  await qstash?.close();
  await web?.close();
  await new Promise<void>((r) => (sink ? sink.close(() => r()) : r()));
});

describe('fan-out through the local QStash server', () => {
  it('drains each stream once however often the cron tick is delivered in its minute', async () => {
    const { clock } = await env();
    const before = drainDeliveries().length;
    const first = await cron('/api/cron/fanout');
    clock.advance(10_000);
    const repeats = await Promise.all([cron('/api/cron/fanout'), cron('/api/cron/fanout')]);
    await qstash.idle();

    const published = first.published as { streamId: string; deduplicated: boolean }[];
    expect(published).toHaveLength(4); // acme, beta and the two legacy shared collections
    expect(published.every((p) => !p.deduplicated)).toBe(true);
    for (const r of repeats) expect((r.published as { deduplicated: boolean }[]).every((p) => p.deduplicated)).toBe(true);

    const delivered = drainDeliveries().slice(before);
    expect(delivered).toHaveLength(4);
    expect(delivered.every((m) => m.state === 'delivered')).toBe(true);
    const runs = await t.db().collection(COLLECTIONS.runs).find({}, { projection: { streamId: 1, trigger: 1 } }).toArray();
    expect(runs.map((r) => r.streamId).sort()).toEqual(['org:acme', 'org:beta', 'shared:form_submissions', 'shared:global_submissions']);
    expect(runs.every((r) => r.trigger === 'qstash')).toBe(true);
  });

  it('continues a busy stream through QStash until every submission has exactly one job', async () => {
    const { clock } = await env({ DRAIN_MAX_EVENTS: '5' });
    await cron('/api/cron/fanout'); // first drains save a token: streams start at "now"
    await qstash.idle();
    const ids = await insertSubmissions(t.db(), 23, { orgId: 'acme' });
    clock.advance(60_000);
    await cron('/api/cron/fanout');
    await qstash.idle();

    const counts = await jobCounts(t.db(), { organizationId: 'acme' });
    expect(ids.filter((id) => counts.get(id) !== 1)).toEqual([]);
    expect(counts.size).toBe(23);
    const runs = await t.db().collection(COLLECTIONS.runs).find({ streamId: 'org:acme' }).sort({ startedAt: 1 }).toArray();
    const continuations = runs.filter((r) => r.trigger === 'continuation');
    expect(continuations.length).toBeGreaterThanOrEqual(4); // 23 events, at most 5 per run
    expect(runs.at(-1)?.busy).toBe(false);
    const contMessages = drainDeliveries().filter((m) => m.body.toString().includes('continuationOf'));
    expect(contMessages.every((m) => m.state === 'delivered')).toBe(true);
  });
});

describe('job processing through the local QStash server', () => {
  it('a drain that creates jobs kicks the processor through QStash at once; it continues while due jobs remain and ends with every job succeeded', async () => {
    // 500 ms runs, one job at a time, ~60 ms per webhook: one run cannot finish 12 jobs.
    await env({ JOB_WINDOW_MS: '500', JOB_CONCURRENCY: '1', WEBHOOK_TIMEOUT_MS: '200', JOB_BACKOFF_BASE_MS: '1', JOB_BACKOFF_MAX_MS: '10' });
    await cron('/api/cron/fanout');
    await qstash.idle();
    await insertSubmissions(t.db(), 12, { orgId: 'beta' });
    const hitsBefore = sinkHits;
    // Drain now; no processor cron follows: the drain's kick must get the jobs run.
    const res = await fetch(`http://127.0.0.1:${web.port}/api/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CRON}`, 'content-type': 'application/json' },
      body: JSON.stringify({ orgId: 'beta' }),
    });
    expect(res.status).toBe(200);
    const drained = (await res.json()) as { run: { jobsCreated: number; jobsKick?: { sent: number; failed: number } } };
    expect(drained.run.jobsCreated).toBe(12);
    expect(drained.run.jobsKick).toMatchObject({ sent: 1, failed: 0 });

    await until(async () => (await t.db().collection(COLLECTIONS.jobs).countDocuments({ organizationId: 'beta', status: 'succeeded' })) === 12, 'all jobs succeeded', 30_000);
    await qstash.idle();
    const processMessages = qstash.messages().filter((m) => m.url.endsWith('/api/jobs/process'));
    // The kick, then at least one continuation (one 500 ms run cannot send 12 webhooks of ~60 ms).
    expect(JSON.parse(processMessages[0]!.body.toString())).toHaveProperty('kick');
    expect(processMessages.length).toBeGreaterThanOrEqual(2);
    // The chain ends: the last continuation found nothing more to do.
    const last = JSON.parse(processMessages.at(-1)!.attempts.at(-1)!.responseBody!.toString()) as { continuation: unknown };
    expect(last.continuation).toBeNull();
    expect(processMessages.every((m) => m.state === 'delivered')).toBe(true);
    expect(sinkHits - hitsBefore).toBeGreaterThanOrEqual(12);
  });
});
