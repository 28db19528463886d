/**
 * The status read model and its three renderings. Promise 5 (no silent gap: every recovery is
 * visible in status) and promise 6 (no secret or connection string in any rendering).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as statusRoute from '../../api/status.js';
import type { Clock } from '../../lib/platform/clock.js';
import { provideContext, type AppContext } from '../../lib/platform/context.js';
import { ENV_KEYS } from '../../lib/platform/config.js';
import { effectiveState, readStatus, streamStatus, type StatusReport } from '../../lib/status/report.js';
import { evaluateConditions } from '../../lib/status/alerts.js';
import type { CheckpointDoc, GapRecord } from '../../lib/data/documents.js';
import { renderHtml } from '../../lib/status/html.js';
import { pageStreams } from '../../lib/status/page.js';
import { summarizeRuns } from '../../lib/status/aggregates.js';
import { renderPrometheus } from '../../lib/status/prometheus.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, bearer, request, useRouteContext } from '../api/support.js';
import { checkpoint, gap, run, seedStatus } from './seed.js';

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
    // acme's last drain stopped because the stream was idle: it had read everything, so its lag is 0
    // while its resume point is 5 s old.
    expect(byId['org:acme']).toMatchObject({ kind: 'org', state: 'idle', lagMs: 0, resumeAgeMs: 5_000, tokenAgeMs: 1_000, consecutiveFailures: 0, listed: true });
    expect(byId['org:beta']).toMatchObject({ lagMs: 7_200_000, resumeAgeMs: 7_200_000 });
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
    // Runs 1–4 minutes ago (1 s each) with 30·m events. The latest ended 59 s ago, less than a
    // minute, so the rate window is the 241 s from 5 min ago to that end: 300 events / 241 s.
    expect(report.throughput.runs).toBe(5);
    expect(report.throughput.events).toBe(300);
    expect(report.throughput.eventsPerSec).toBe(Math.round((300 / 241) * 100) / 100);
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

  it('places events where they were read: a steady 60 events/min read by 45 s windows shows 60 per minute and 1/s', () => {
    // One drain per minute, starting at :10 and reading for 45 s, 60 events each (the demo:
    // grouped by start minute this read 44/88/0 depending on where runs started).
    const base = Date.parse('2025-06-01T11:30:00Z');
    const runs = Array.from({ length: 30 }, (_, m) => {
      const startedAt = new Date(base + m * 60_000 + 10_000);
      return run('org:x', startedAt, { events: 60, endedAt: new Date(startedAt.getTime() + 45_000), durationMs: 45_000 });
    });
    const s = summarizeRuns(runs, NOW);
    const full = s.series.filter((b) => b.at.getTime() + 60_000 <= NOW);
    expect(full.length).toBeGreaterThan(25);
    expect(new Set(full.map((b) => b.events))).toEqual(new Set([60]));
    // 273.3 events (a third of the 11:55 run, then four whole runs) over the 265 s from 11:55:30 to
    // the end of the latest run at 11:59:55: 1.03/s for a true 1/s.
    expect(s.eventsPerSec).toBe(1.03);
  });

  it('spreads a run across the minutes it spans', () => {
    const startedAt = new Date(Date.parse('2025-06-01T11:50:30Z'));
    const s = summarizeRuns([run('org:x', startedAt, { events: 120, endedAt: new Date(startedAt.getTime() + 60_000), durationMs: 60_000 })], NOW);
    const at = (iso: string) => s.series.find((b) => b.at.toISOString() === iso)!;
    expect(at('2025-06-01T11:50:00.000Z')).toMatchObject({ events: 60, runs: 1 });
    expect(at('2025-06-01T11:51:00.000Z')).toMatchObject({ events: 60, runs: 0 });
    expect(s.events).toBe(120);
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

describe('gaps mean lost history; reconciles on purpose are listed, not counted, coloured or alerted', () => {
  const manual = (count: number): GapRecord => ({ id: `manual:${count}`, from: new Date(NOW - 3_600_000), to: new Date(NOW - 60_000), count, jobsCreated: 0, reason: 'manual', recordedAt: new Date(NOW - 60_000), runId: 'r' });
  const lost = gap(NOW, 3);

  it('splits the recovery windows by reason, with per-reason counters or from the kept records', () => {
    const withCounters = streamStatus(null, checkpoint('org:x', NOW, { gaps: [lost, manual(0), manual(5)], gapCount: 12, gapsByReason: { history_lost: 2, manual: 10 } }), 0, NOW, 'org:x');
    expect(withCounters.gaps.count).toBe(2);
    expect(withCounters.gaps.recent.map((g) => g.reason)).toEqual(['history_lost']);
    expect(withCounters.reconciles).toMatchObject({ count: 10, recent: [{ reason: 'manual', count: 5 }, { reason: 'manual', count: 0 }] });
    const legacy = streamStatus(null, checkpoint('org:x', NOW, { gaps: [manual(0)], gapCount: 1 }), 0, NOW, 'org:x');
    expect(legacy.gaps.count).toBe(0);
    expect(legacy.reconciles.count).toBe(1);
  });

  it('a manual reconcile raises no gap alert; lost history does', () => {
    const reportWith = (cp: CheckpointDoc) => ({ ...report, streams: [streamStatus(null, cp, 0, NOW, cp._id)] });
    const gapValue = (r: StatusReport) => evaluateConditions(r).find((c) => c.kind === 'gap_recorded')!.value;
    expect(gapValue(reportWith(checkpoint('org:x', NOW, { gaps: [manual(0)], gapCount: 1, gapsByReason: { manual: 1 } })))).toBe(0);
    expect(gapValue(reportWith(checkpoint('org:x', NOW, { gaps: [manual(0), lost], gapCount: 2, gapsByReason: { manual: 1, history_lost: 1 } })))).toBe(1);
  });

  it('the page lists a reconcile with its reason and says why a gap was recorded', () => {
    const r: StatusReport = {
      ...report,
      streams: [
        streamStatus(null, checkpoint('org:recon', NOW, { gaps: [manual(0)], gapCount: 1, gapsByReason: { manual: 1 } }), 0, NOW, 'org:recon'),
        streamStatus(null, checkpoint('org:lost', NOW, { gaps: [lost], gapCount: 1, gapsByReason: { history_lost: 1 } }), 0, NOW, 'org:lost'),
      ],
    };
    const html = renderHtml(r);
    const row = (id: string) => html.slice(html.indexOf(`data-stream="${id}"`), html.indexOf('</tr>', html.indexOf(`data-stream="${id}"`)));
    expect(row('org:recon')).toContain('1 reconcile');
    expect(row('org:recon')).toContain('manual at 11:59:30: scanned 0 docs, 0 jobs created — manual reconcile');
    expect(row('org:recon')).not.toMatch(/lost-history|class="err"/);
    expect(row('org:lost')).toContain('1 lost-history');
    expect(row('org:lost')).toContain('the resume point had left the oplog');
  });

  it('lag: 0 when the last drain caught up, the resume point age when it did not or is running', () => {
    const lagOf = (over: Partial<CheckpointDoc>) => streamStatus(null, checkpoint('org:x', NOW, over), 0, NOW, 'org:x').lagMs;
    expect(lagOf({})).toBe(0); // stopped by idle, token 5 s old
    expect(lagOf({ lastRun: run('org:x', new Date(NOW - 30_000), { stoppedBy: 'deadline' }) })).toBe(5_000);
    expect(lagOf({ lastRun: run('org:x', new Date(NOW - 30_000), { stoppedBy: 'max_events' }) })).toBe(5_000);
    expect(lagOf({ state: 'draining', lease: { owner: 'o', expiresAt: new Date(NOW + 10_000) } })).toBe(5_000);
    expect(lagOf({ state: 'failing' })).toBe(5_000);
    expect(lagOf({ tokenTime: null })).toBeNull();
  });
});

describe('dashboard paging and search', () => {
  const many = Array.from({ length: 10_000 }, (_, i) =>
    streamStatus(null, checkpoint(`org:o${String(i).padStart(5, '0')}`, NOW, { lastRun: run('x', new Date(NOW - 30_000), { stoppedBy: i % 100 === 7 ? 'deadline' : 'idle' }), tokenTime: new Date(NOW - 1_000 - i) }), 0, NOW, `org:o${String(i).padStart(5, '0')}`),
  );

  it('pages 50 rows at a time, failing first then most lagging', () => {
    const failing = { ...many[42]!, state: 'failing' as const };
    const rows = [...many.slice(0, 42), failing, ...many.slice(43)];
    const first = pageStreams(rows, { q: '', page: 1 });
    expect(first).toMatchObject({ matched: 10_000, page: 1, pages: 200 });
    expect(first.rows).toHaveLength(50);
    expect(first.rows[0]!.id).toBe('org:o00042');
    // The lagging ones (last drain stopped by its deadline) come next, largest lag first.
    expect(first.rows.slice(1, 4).map((s) => s.id)).toEqual(['org:o09907', 'org:o09807', 'org:o09707']);
    expect(first.rows.slice(1, 100).every((s, i, a) => i === 0 || (a[i - 1]!.lagMs ?? -1) >= (s.lagMs ?? -1))).toBe(true);
    const last = pageStreams(rows, { q: '', page: 999 });
    expect(last).toMatchObject({ page: 200 });
    expect(last.rows).toHaveLength(50);
  });

  it('searches by organization or stream id, case-insensitively', () => {
    const hit = pageStreams(many, { q: 'O0123', page: 1 });
    expect(hit.matched).toBe(10);
    expect(hit.rows.map((s) => s.id).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `org:o0123${i}`));
    expect(pageStreams(many, { q: 'nobody', page: 1 })).toMatchObject({ matched: 0, rows: [] });
  });

  it('the rendered page carries one page of rows, a pager that keeps the search, and the count', () => {
    const p = pageStreams(many, { q: 'o01', page: 2 });
    const html = renderHtml({ ...report, streams: p.rows, streamsPage: { q: 'o01', page: p.page, pages: p.pages, limit: 50, matched: p.matched, order: '' } });
    expect(html.match(/<tr data-stream=/g)).toHaveLength(50);
    expect(html).toContain('51–100 of 1,000 matching “o01”');
    expect(html).toContain('href="?q=o01&amp;page=3"');
    expect(html).toContain('page 2 of 20');
  });

  it('the route takes ?q= and ?page=, and refuses a bad page by name', async () => {
    const html = await (await statusRoute.GET(request('GET', '/api/status?format=html&q=beta', { headers: bearer(ADMIN) }))).text();
    expect(html.match(/<tr data-stream=/g)).toHaveLength(1);
    expect(html).toContain('data-stream="org:beta"');
    const bad = await statusRoute.GET(request('GET', '/api/status?format=html&page=0', { headers: bearer(ADMIN) }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('page must be a positive integer');
  });
});
