/**
 * Status at scale: the stream rows and totals read by MongoDB queries (lib/status/streams.ts) give
 * exactly what a full read of every checkpoint would — order, search, paging, totals — with the
 * listed streams that have no checkpoint and the checkpoints no longer listed; and the dual-run
 * agreement covers dual-mode organizations in the database layout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as statusRoute from '../../api/status.js';
import type { Clock } from '../../lib/platform/clock.js';
import { provideContext, type AppContext } from '../../lib/platform/context.js';
import type { CheckpointDoc, GapRecord, StreamState } from '../../lib/data/documents.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { readStatus, streamStatus, STREAM_STATES, type StatusReport, type StreamStatus } from '../../lib/status/report.js';
import { byUrgency, pageStreams } from '../../lib/status/page.js';
import { listStreams } from '../../lib/streams/refs.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, bearer, request, useRouteContext } from '../api/support.js';
import { checkpoint, gap, job, run } from './seed.js';

const t = useTestDb('surface_status_query');
const NOW = Date.parse('2025-06-01T12:00:30Z');
const fixed: Clock = { now: () => NOW, sleep: async () => undefined };
const org = (i: number) => `m${String(i).padStart(3, '0')}`;
const N = 300;

/** A checkpoint of organization i in one of a dozen situations (the mix every rule of the order and totals meets). */
function mixed(i: number): CheckpointDoc {
  const id = `org:${org(i)}`;
  const base = checkpoint(id, NOW, { tokenTime: new Date(NOW - 1_000 - ((i * 7919) % 5_000) * 10) });
  const lease = (ms: number) => ({ owner: 'w', expiresAt: new Date(NOW + ms) });
  const manual: GapRecord = { ...gap(NOW, 3), id: `manual:${i}`, reason: 'manual' };
  switch (i % 12) {
    case 0:
      return { ...base, state: 'failing', consecutiveFailures: 2, lastRun: run(id, new Date(NOW - 30_000), { status: 'failed' }) };
    case 1:
      return { ...base, lastRun: run(id, new Date(NOW - 30_000), { stoppedBy: 'deadline' }) };
    case 2:
      return { ...base, state: 'draining', lease: lease(20_000) };
    case 3:
      return { ...base, state: 'draining', lease: lease(-20_000) }; // expired: a drain that died, idle and caught up
    case 4:
      return { ...base, state: 'idle', lease: lease(5_000) }; // live lease on an idle checkpoint: draining
    case 5:
      return { ...base, tokenTime: null, lastRun: null };
    case 6:
      return { ...base, paused: true };
    case 7:
      return { ...base, state: 'failing', paused: true };
    case 8:
      return { ...base, gaps: [gap(NOW, 4), manual], gapCount: 2 }; // no per-reason counters: the records say 1 lost, 1 manual
    case 9:
      return { ...base, gaps: [gap(NOW, 4)], gapCount: 5, gapsByReason: { history_lost: 3, manual: 2 } };
    case 10:
      return { ...base, state: 'recovering', lease: lease(20_000), recovery: { from: new Date(NOW - 60_000) } as never };
    default:
      return { ...base, state: 'failing', tokenTime: null, lastRun: null }; // failing before any token
  }
}

let ctx: AppContext;
let reference: StreamStatus[];

/** What a full read gives: every listed stream and every checkpoint, built in Node (the status model before paging moved into MongoDB). */
async function fullRead(c: AppContext): Promise<StreamStatus[]> {
  const listed = await listStreams(c);
  const cps = await t.db().collection<CheckpointDoc>(COLLECTIONS.checkpoints).find({}).toArray();
  const byId = new Map(cps.map((d) => [d._id, d]));
  const listedIds = new Set(listed.map((s) => s.id));
  return [...listed.map((s) => streamStatus(s, byId.get(s.id) ?? null, 0, NOW, s.id)), ...cps.filter((d) => !listedIds.has(d._id)).map((d) => streamStatus(null, d, 0, NOW, d._id))].sort(byUrgency);
}

beforeAll(async () => {
  const db = t.db();
  // N organizations with a checkpoint, 20 listed without one (never drained), 10 checkpoints of organizations without an active workflow.
  const listedOrgs = Array.from({ length: N + 20 }, (_, i) => org(i));
  await db.collection(COLLECTIONS.workflows).insertMany(listedOrgs.map((o) => ({ _id: `wf-${o}` as never, organizationId: o, formId: 'f', name: 'Notify', status: 'active', steps: [], updatedAt: new Date(NOW) })));
  await db.collection(COLLECTIONS.workflows).insertMany(Array.from({ length: 10 }, (_, i) => ({ _id: `wf-gone${i}` as never, organizationId: `gone${i}`, formId: 'f', name: 'Old', status: 'disabled', steps: [], updatedAt: new Date(NOW) })));
  await db.collection<CheckpointDoc>(COLLECTIONS.checkpoints).insertMany([...Array.from({ length: N }, (_, i) => mixed(i)), ...Array.from({ length: 10 }, (_, i) => checkpoint(`org:gone${i}`, NOW, { tokenTime: new Date(NOW - 40_000 - i) }))]);
  await db.collection(COLLECTIONS.deadLetters).insertMany([
    { key: 'd1', streamId: 'org:m000', replayedAt: null, createdAt: new Date(NOW) },
    { key: 'd2', streamId: 'org:m000', replayedAt: null, createdAt: new Date(NOW) },
    { key: 'd3', streamId: 'org:m000', replayedAt: new Date(NOW), createdAt: new Date(NOW) },
  ]);
  ctx = await useRouteContext(db, t.client(), {}, { clock: fixed });
  reference = await fullRead(ctx);
});
afterAll(() => provideContext(null));

const pageOf = (q: string, page: number, limit: number) => readStatus(ctx, { q, page, limit });
const ids = (r: StatusReport) => r.streams.map((s) => s.id);

describe('stream rows read by query', () => {
  it('every page, concatenated, is the full read in the status order, row for row', async () => {
    // N checkpoints, 20 listed without one, 10 no longer listed, the 2 legacy shared collections (listed, never drained).
    expect(reference).toHaveLength(N + 20 + 10 + 2);
    const limit = 37;
    const pages = Math.ceil(reference.length / limit);
    const seen: StreamStatus[] = [];
    for (let p = 1; p <= pages; p++) {
      const r = await pageOf('', p, limit);
      expect(r.streamsPage).toMatchObject({ page: p, pages, limit, matched: reference.length });
      seen.push(...r.streams);
    }
    // Dead letters are per page (the reference has none): compare them apart.
    expect(seen.find((s) => s.id === 'org:m000')?.deadLetters).toBe(2);
    expect(seen.map((s) => ({ ...s, deadLetters: 0 }))).toEqual(reference);
    // The order itself: failing first, then lag largest first, tokenless last.
    expect(reference[0]!.state).toBe('failing');
    expect(reference.at(-1)!.lagMs).toBeNull();
  });

  it('listed streams without a checkpoint are idle rows with no lag; checkpoints no longer listed stay, marked', async () => {
    const last = await pageOf('', 1_000, 50);
    const never = last.streams.filter((s) => s.lastRun === null && s.tokenAgeMs === null && s.kind === 'org');
    expect(never.map((s) => s.id)).toEqual(Array.from({ length: 20 }, (_, i) => `org:${org(N + i)}`));
    for (const s of never) expect(s).toMatchObject({ listed: true, state: 'idle', lagMs: null, orgId: s.id.slice(4) });
    const gone = await pageOf('gone', 1, 50);
    expect(gone.streams.map((s) => s.id).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `org:gone${i}`));
    expect(gone.streams.every((s) => !s.listed && s.resumeAgeMs === 40_000 + Number(s.id.slice(-1)))).toBe(true);
  });

  it('totals equal what the full read counts', async () => {
    const r = await pageOf('', 1, 10);
    const byState = Object.fromEntries(STREAM_STATES.map((s) => [s, reference.filter((x) => x.state === s).length])) as Record<StreamState, number>;
    const lags = reference.map((s) => s.lagMs).filter((l): l is number => l !== null);
    expect(r.totals).toEqual({
      streams: reference.length,
      byState,
      maxLagMs: Math.max(...lags),
      gaps: reference.reduce((n, s) => n + s.gaps.count, 0),
      reconciles: reference.reduce((n, s) => n + s.reconciles.count, 0),
      neverDrained: 22,
      unlisted: 10,
    });
    // Every state of the mix is there, so each rule of the server-side state is exercised.
    for (const s of STREAM_STATES) expect(byState[s], s).toBeGreaterThan(0);
    expect(r.totals.gaps).toBeGreaterThan(0);
    expect(r.totals.reconciles).toBeGreaterThan(0);
    expect(r.deadLetters.events).toBe(2);
  });

  it('searches by organization or stream id prefix, case-insensitively, in the same order', async () => {
    for (const q of ['M01', 'org:m2', 'm31', 'GONE']) {
      const want = pageStreams(reference, { q, page: 1, limit: 500 });
      const got = await pageOf(q, 1, 500);
      expect(got.streamsPage.matched, q).toBe(want.matched);
      expect(ids(got), q).toEqual(want.rows.map((s) => s.id));
    }
    expect((await pageOf('m01', 1, 50)).streamsPage.matched).toBe(10);
    expect((await pageOf('M0', 1, 50)).streamsPage.matched).toBe(100);
    // A prefix, not a substring: "01" starts no organization id.
    expect((await pageOf('01', 1, 50)).streamsPage).toMatchObject({ matched: 0, pages: 1, page: 1 });
  });

  it('paging edges: the last page is partial, a page past the end shows the last, limits 1 and 500', async () => {
    const total = reference.length;
    const lastPage = Math.ceil(total / 50);
    const last = await pageOf('', lastPage, 50);
    expect(last.streams).toHaveLength(total - (lastPage - 1) * 50);
    expect(ids(await pageOf('', 99, 50))).toEqual(ids(last));
    expect(ids(await pageOf('', 1, 1))).toEqual([reference[0]!.id]);
    expect(ids(await pageOf('', 2, 1))).toEqual([reference[1]!.id]);
    expect(ids(await pageOf('', 1, 500))).toEqual(reference.map((s) => s.id));
  });

  it('the route: ?org=, ?page=, ?limit= on JSON; bad values are a 400 naming the parameter', async () => {
    const get = (qs: string) => statusRoute.GET(request('GET', `/api/status?${qs}`, { headers: bearer(ADMIN) }));
    const ok = (await (await get('org=M0&page=2&limit=7')).json()) as StatusReport;
    expect(ok.streamsPage).toMatchObject({ q: 'M0', page: 2, limit: 7, matched: 100 });
    expect(ok.streams.map((s) => s.id)).toEqual(pageStreams(reference, { q: 'M0', page: 2, limit: 7 }).rows.map((s) => s.id));
    for (const [qs, name] of [['limit=0', 'limit'], ['limit=501', 'limit'], ['limit=x', 'limit'], ['page=0', 'page'], ['page=1.5', 'page'], ['org=a%20b', 'org'], ['org=' + 'a'.repeat(101), 'org']] as const) {
      const res = await get(qs);
      expect(res.status, qs).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message, qs).toMatch(new RegExp(`^${name} must`));
    }
  });

  it('Prometheus: per-stream series for failing and non-org streams only, totals for all', async () => {
    const text = await (await statusRoute.GET(request('GET', '/api/status?format=prometheus', { headers: bearer(ADMIN) }))).text();
    const seriesStreams = new Set([...text.matchAll(/^stream_triggers_stream_state\{stream="([^"]+)"/gm)].map((m) => m[1]));
    const failing = reference.filter((s) => s.state === 'failing').map((s) => s.id);
    expect([...seriesStreams].sort()).toEqual([...failing, 'shared:form_submissions', 'shared:global_submissions'].sort());
    expect(text).toContain(`stream_triggers_streams{state="idle"} ${reference.filter((s) => s.state === 'idle').length}`);
    expect(text).toContain('stream_triggers_streams_never_drained 22');
    expect(text).toContain('stream_triggers_streams_unlisted 10');
  });

  it('alerts read only the streams they need and still see every failing one', async () => {
    const { alertStreams } = await import('../../lib/status/alerts.js');
    const input = await alertStreams(ctx, { oplogWindowMs: 3_600_000 }, []);
    const failing = reference.filter((s) => s.state === 'failing').map((s) => s.id).sort();
    expect(input.streams.filter((s) => s.state === 'failing').map((s) => s.id)).toEqual(failing);
    expect(input.streams.length).toBeLessThan(reference.length);
    expect(input.streams.every((s) => s.state === 'failing' || s.gaps.count + s.reconciles.count > 0 || s.state === 'paused')).toBe(true);
  });
});

describe('dual-run agreement in the database layout', () => {
  it('covers the organizations in dual mode, which have no stream of their own there', async () => {
    const db = t.db();
    await db.collection(COLLECTIONS.jobs).insertMany([
      job('m001', 1, 'succeeded', 'explicit', ['explicit', 'change_stream'], NOW),
      job('m001', 2, 'succeeded', 'explicit', ['explicit'], NOW),
      job('m002', 3, 'succeeded', 'change_stream', ['change_stream'], NOW),
      job('m003', 4, 'succeeded', 'change_stream', ['change_stream'], NOW), // overridden to change_streams: not counted
    ].map((j) => ({ ...j, createdAt: new Date(NOW - 60_000) })));
    const dbCtx = await useRouteContext(db, t.client(), { STREAM_LAYOUT: 'database', STREAM_PARTITIONS: '4', TRIGGER_MODE: 'dual', TRIGGER_MODE_BY_ORG: 'm003:change_streams' }, { clock: fixed });
    const r = await readStatus(dbCtx, { q: 'partition:', page: 1, limit: 50 });
    expect(r.streams.map((s) => s.id)).toEqual(['partition:0/4', 'partition:1/4', 'partition:2/4', 'partition:3/4']);
    // The search narrows the dual-run rows, not its totals.
    expect(r.dualRun).toMatchObject({ organizations: 2, orgs: [] });
    const all = (await readStatus(dbCtx)).dualRun;
    expect(all.organizations).toBe(2);
    expect(all.total).toEqual({ both: 1, explicitOnly: 1, changeStreamOnly: 1, other: 0, total: 3 });
    expect(all.orgs.map((o) => o.orgId)).toEqual(['m001', 'm002']);
    // An allow-list selects the same way.
    const listed = await useRouteContext(db, t.client(), { STREAM_LAYOUT: 'database', CHANGE_STREAMS_ALL_ORGS: 'false', CHANGE_STREAMS_ORG_IDS: 'm002,m003', TRIGGER_MODE: 'dual' }, { clock: fixed });
    const only = (await readStatus(listed)).dualRun;
    expect(only.orgs.map((o) => o.orgId)).toEqual(['m002', 'm003']);
    expect(only.total.total).toBe(2);
    // Not on change streams at all: nothing is in dual mode.
    const off = await useRouteContext(db, t.client(), { STREAM_LAYOUT: 'database', TRIGGER_MODE: 'explicit' }, { clock: fixed });
    expect((await readStatus(off)).dualRun).toMatchObject({ organizations: 0, orgs: [] });
    provideContext(ctx);
  });
});
