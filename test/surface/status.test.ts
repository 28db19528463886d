/**
 * The status read model and its three renderings. Promise 5 (no silent gap: every recovery is
 * visible in status) and promise 6 (no secret or connection string in any rendering).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as statusRoute from '../../api/status.js';
import type { Clock } from '../../lib/platform/clock.js';
import { provideContext, type AppContext } from '../../lib/platform/context.js';
import { ENV_KEYS } from '../../lib/platform/config.js';
import { effectiveState, readStatus, type StatusReport } from '../../lib/status/report.js';
import { summarizeRuns } from '../../lib/status/aggregates.js';
import { renderPrometheus } from '../../lib/status/prometheus.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, bearer, request, useRouteContext } from '../api/support.js';
import { run, seedStatus } from './seed.js';

const t = useTestDb('surface_status');
const NOW = Date.parse('2025-06-01T12:00:30Z');
const fixed: Clock = { now: () => NOW, sleep: async () => undefined };
let ctx: AppContext;
let report: StatusReport;

beforeAll(async () => {
  await seedStatus(t.db(), NOW);
  ctx = await useRouteContext(t.db(), t.client(), { TRIGGER_MODE: 'dual' }, { clock: fixed });
  report = await readStatus(ctx);
});
afterAll(() => provideContext(null));

describe('readStatus', () => {
  it('lists every stream, listed or not, with state, lag, token age, failures and last run', () => {
    const byId = Object.fromEntries(report.streams.map((s) => [s.id, s]));
    expect(Object.keys(byId).sort()).toEqual(['org:acme', 'org:beta', 'org:gone', 'shared:form_submissions', 'shared:global_submissions']);
    expect(byId['org:acme']).toMatchObject({ state: 'idle', lagMs: 5_000, tokenAgeMs: 1_000, consecutiveFailures: 0, listed: true });
    expect(byId['org:beta']).toMatchObject({ state: 'failing', consecutiveFailures: 3, lastRun: { status: 'failed', error: { code: 'transient' } } });
    expect(byId['org:gone']?.listed).toBe(false);
    expect(byId['shared:global_submissions']).toMatchObject({ state: 'idle', lagMs: null, lastRun: null });
    expect(report.totals.byState).toEqual({ idle: 4, draining: 0, recovering: 0, failing: 1, paused: 0 });
    expect(report.totals.maxLagMs).toBe(7_200_000);
  });

  it('shows every recorded gap: count and the recent windows, newest first', () => {
    const beta = report.streams.find((s) => s.id === 'org:beta')!;
    expect(beta.gaps.count).toBe(2);
    expect(beta.gaps.recent.map((g) => g.count)).toEqual([7, 4]);
    expect(report.totals.gaps).toBe(2);
  });

  it('counts jobs by status, the oldest due queued job, and dead-letter sizes (replayed ones excluded)', () => {
    expect(report.jobs.byStatus).toEqual({ queued: 2, running: 1, succeeded: 3, failed: 0, dead: 1 });
    expect(report.jobs.oldestQueuedAgeMs).toBe(20_000);
    expect(report.deadLetters).toEqual({ events: 1, jobs: 1 });
    expect(report.streams.find((s) => s.id === 'org:beta')?.deadLetters).toBe(1);
  });

  it('reports dual-run agreement per organization in dual mode', () => {
    const acme = report.dualRun.orgs.find((o) => o.orgId === 'acme');
    expect(acme).toEqual({ orgId: 'acme', both: 2, explicitOnly: 1, changeStreamOnly: 2, other: 1, total: 6 });
    expect(report.dualRun.total.total).toBe(7);
  });

  it('derives events/s and insert→job latency from recent runs', () => {
    // Runs 1–4 minutes ago with 30·m events; events/s over the last 5 minutes = 300 / 300 s.
    expect(report.throughput.runs).toBe(5);
    expect(report.throughput.events).toBe(300);
    expect(report.throughput.eventsPerSec).toBe(1);
    expect(report.throughput.latencyMsAvg).toBe(Math.round((30 * 100 + 60 * 200 + 90 * 300 + 120 * 400) / 300));
    expect(report.throughput.series).toHaveLength(30);
    expect(report.throughput.series.filter((b) => b.failed > 0)).toHaveLength(1);
  });
});

describe('effectiveState', () => {
  const lease = (ms: number) => ({ owner: 'o', expiresAt: new Date(NOW + ms) });
  it.each([
    ['draining with a live lease', 'draining', lease(1000), 'draining'],
    ['draining whose lease expired (the drain died)', 'draining', lease(-1), 'idle'],
    ['recovering whose lease expired', 'recovering', null, 'idle'],
    ['idle with a live lease', 'idle', lease(1000), 'draining'],
    ['failing stays failing', 'failing', null, 'failing'],
    ['paused stays paused', 'paused', lease(1000), 'paused'],
  ] as const)('%s', (_n, state, l, expected) => {
    expect(effectiveState({ state, lease: l }, NOW)).toBe(expected);
  });
});

describe('summarizeRuns', () => {
  it('ignores runs outside the window and keeps 30 one-minute buckets', () => {
    const s = summarizeRuns([run('x', new Date(NOW - 3_600_000)), run('x', new Date(NOW))], NOW);
    expect(s.runs).toBe(1);
    expect(s.series.at(-1)?.events).toBe(10);
  });
});

describe('renderings', () => {
  it('Prometheus: valid exposition lines with HELP/TYPE for every metric', () => {
    const text = renderPrometheus(report);
    const lines = text.trimEnd().split('\n');
    const declared = new Set<string>();
    for (const line of lines) {
      if (line.startsWith('# HELP ')) continue;
      if (line.startsWith('# TYPE ')) {
        declared.add(line.split(' ')[2]!);
        continue;
      }
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+-]+$/);
      expect(declared.has(line.split(/[{ ]/)[0]!), line).toBe(true);
    }
    expect(text).toContain('stream_triggers_stream_state{stream="org:beta",org="beta",state="failing"} 1');
    expect(text).toContain('stream_triggers_stream_gaps_total{stream="org:beta",org="beta"} 2');
    expect(text).toContain('stream_triggers_jobs{status="dead"} 1');
    expect(text).toContain('stream_triggers_dual_run_jobs{org="acme",seen_by="explicit_only"} 1');
  });

  it('route: JSON by default, HTML for Accept: text/html, Prometheus for ?format=prometheus', async () => {
    const jsonRes = await statusRoute.GET(request('GET', '/api/status', { headers: bearer(ADMIN) }));
    expect(jsonRes.headers.get('content-type')).toContain('application/json');
    expect(((await jsonRes.json()) as StatusReport).streams).toHaveLength(5);
    const html = await statusRoute.GET(request('GET', '/api/status', { headers: { ...bearer(ADMIN), accept: 'text/html,application/xhtml+xml' } }));
    expect(html.headers.get('content-type')).toContain('text/html');
    expect(html.headers.get('content-security-policy')).toContain("default-src 'none'");
    const page = await html.text();
    expect(page).toContain('data-stream="org:beta"');
    expect(page).toContain('<meta http-equiv="refresh"');
    expect(page).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const prom = await statusRoute.GET(request('GET', '/api/status?format=prometheus', { headers: bearer(ADMIN) }));
    expect(prom.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  });

  it('HTML escapes what it shows', async () => {
    await t.db().collection('change_stream_checkpoints').updateOne({ _id: 'org:gone' as never }, { $set: { lastRun: run('org:gone', new Date(NOW), { status: 'failed', error: { code: 'x', message: '<img src=x onerror=alert(1)>' } }) } });
    const html = await statusRoute.GET(request('GET', '/api/status?format=html', { headers: bearer(ADMIN) }));
    const page = await html.text();
    expect(page).not.toContain('<img src=x');
    expect(page).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });
});

describe('no secret or connection string in any rendering', () => {
  it('with every secret set to a marker, JSON, HTML and Prometheus never contain it', async () => {
    const MARK = 'SECRETMARKER7f3a';
    const env: Record<string, string> = {
      TRIGGER_MODE: 'dual',
      MONGODB_URI: `mongodb://user:${MARK}@db.internal.example:27017/?replicaSet=rs0`,
      CRON_SECRET: `${MARK}-cron`,
      ADMIN_TOKEN: `${MARK}-admin`,
      QSTASH_TOKEN: `${MARK}-qstash`,
      QSTASH_CURRENT_SIGNING_KEY: `${MARK}-current`,
      QSTASH_NEXT_SIGNING_KEY: `${MARK}-next`,
      QSTASH_URL: `https://qstash.example/${MARK}`,
      PUBLIC_BASE_URL: `https://app.example/${MARK}`,
      WEBHOOK_SIGNING_SECRET: `${MARK}-webhook`,
      ALERT_WEBHOOK_URL: `https://hooks.example/${MARK}`,
      DATA_SOURCE_KEY: Buffer.alloc(32, 7).toString('base64'),
    };
    // Every secret-typed variable of the config is covered by this list.
    for (const key of ENV_KEYS.filter((k) => /SECRET|TOKEN|KEY|URI|URL/.test(k))) expect(Object.keys(env), key).toContain(key);
    await useRouteContext(t.db(), t.client(), env, { clock: fixed });
    const auth = bearer(`${MARK}-admin`);
    for (const [what, req] of [
      ['json', request('GET', '/api/status', { headers: auth })],
      ['html', request('GET', '/api/status', { headers: { ...auth, accept: 'text/html' } })],
      ['prometheus', request('GET', '/api/status?format=prometheus', { headers: auth })],
    ] as const) {
      const res = await statusRoute.GET(req);
      expect(res.status, what).toBe(200);
      const text = await res.text();
      expect(text, what).not.toContain(MARK);
      expect(text, what).not.toContain('mongodb://');
      expect(text, what).not.toContain(Buffer.alloc(32, 7).toString('base64'));
      expect(text, what).not.toContain(t.db().databaseName);
    }
    await useRouteContext(t.db(), t.client(), { TRIGGER_MODE: 'dual' }, { clock: fixed });
  });
});
