/**
 * Fan-out planning and publishing against a fake Publisher (the port), and the in-process fallback.
 * Promise 1/2 at the fan-out hop: duplicate cron deliveries of one tick publish the same
 * deduplication ids, so QStash accepts each stream's drain once per tick.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fanOut, planTick, tickOf } from '../../lib/fanout/tick.js';
import { flowKeyFor } from '../../lib/qstash/messages.js';
import { publishContinuation } from '../../lib/fanout/continuation.js';
import type { PublishMessage, Publisher } from '../../lib/qstash/publisher.js';
import { provideContext } from '../../lib/platform/context.js';
import type { CheckpointDoc } from '../../lib/data/documents.js';
import type { StreamRef } from '../../lib/streams/refs.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { OffsetClock, insertSubmissions, jobCounts, seedWorkflow } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { useRouteContext } from '../api/support.js';

const stream = (id: string): StreamRef => ({ id, kind: id.startsWith('org:') ? 'org' : 'shared', orgId: id.startsWith('org:') ? id.slice(4) : null, db: null, collection: id }) as StreamRef;
const cp = (id: string, savedAt: number | null, leaseUntil: number | null = null, state: CheckpointDoc['state'] = 'idle') => ({
  _id: id,
  tokenSavedAt: savedAt === null ? null : new Date(savedAt),
  lease: leaseUntil === null ? null : { owner: 'x', expiresAt: new Date(leaseUntil) },
  state,
});

describe('planTick', () => {
  const streams = ['org:a', 'org:b', 'org:c', 'org:d'].map(stream);
  const now = 1_000_000;

  it('goes stalest first, never-drained before all', () => {
    const plan = planTick(streams, [cp('org:a', 500), cp('org:b', 100), cp('org:c', 900)], now, 10);
    expect(plan.selected.map((s) => s.id)).toEqual(['org:d', 'org:b', 'org:a', 'org:c']);
  });

  it('caps the tick at MAX_CONCURRENT_DRAINS and defers the rest', () => {
    const plan = planTick(streams, [cp('org:a', 500), cp('org:b', 100), cp('org:c', 900), cp('org:d', 50)], now, 2);
    expect(plan.selected.map((s) => s.id)).toEqual(['org:d', 'org:b']);
    expect(plan.deferred.map((s) => s.id)).toEqual(['org:a', 'org:c']);
  });

  it('counts live leases against the cap and skips their streams', () => {
    const plan = planTick(streams, [cp('org:a', 500, now + 1), cp('org:b', 100), cp('org:c', 900), cp('org:d', 50)], now, 2);
    expect(plan.leased.map((s) => s.id)).toEqual(['org:a']);
    expect(plan.selected.map((s) => s.id)).toEqual(['org:d']);
  });

  it('treats an expired lease as free (its drain died)', () => {
    const plan = planTick(streams, [cp('org:a', 10, now - 1)], now, 10);
    expect(plan.leased).toEqual([]);
    expect(plan.selected.map((s) => s.id)).toEqual(['org:b', 'org:c', 'org:d', 'org:a']);
  });

  it('leaves paused streams out', () => {
    const plan = planTick(streams, [cp('org:a', 10, null, 'paused')], now, 10);
    expect(plan.paused.map((s) => s.id)).toEqual(['org:a']);
    expect(plan.selected.map((s) => s.id)).not.toContain('org:a');
  });

  it('rotates: with a cap below the number of streams, every stream is published within a few ticks', () => {
    const saved = new Map<string, number>();
    const seen = new Set<string>();
    for (let tick = 0; tick < 2; tick++) {
      const plan = planTick(streams, [...saved].map(([id, at]) => cp(id, at)), now + tick, 2);
      for (const s of plan.selected) {
        seen.add(s.id);
        saved.set(s.id, now + tick); // the drain saved its token
      }
    }
    expect([...seen].sort()).toEqual(streams.map((s) => s.id));
  });
});

describe('ids and keys', () => {
  it('tick is the UTC cron minute', () => {
    expect(tickOf(Date.parse('2025-03-04T05:06:07.890Z'))).toBe('202503040506');
    expect(tickOf(Date.parse('2025-03-04T05:06:59.999Z'))).toBe('202503040506');
    expect(tickOf(Date.parse('2025-03-04T05:07:00.000Z'))).toBe('202503040507');
  });
  it('flow-control key is the organization (org and source streams share it), else the stream', () => {
    expect(flowKeyFor('org:acme')).toBe('org-acme');
    expect(flowKeyFor('source:acme')).toBe('org-acme');
    expect(flowKeyFor('shared:global_submissions')).toBe('stream-shared_global_submissions');
  });
});

/** A publisher with QStash's deduplication semantics, recording what it accepted. */
class FakePublisher implements Publisher {
  accepted: PublishMessage[] = [];
  calls: PublishMessage[][] = [];
  private seen = new Set<string>();
  async publishBatch(messages: PublishMessage[]) {
    this.calls.push(messages);
    return messages.map((m) => {
      const dup = this.seen.has(m.deduplicationId);
      if (!dup) {
        this.seen.add(m.deduplicationId);
        this.accepted.push(m);
      }
      return { messageId: `msg_${m.deduplicationId}`, deduplicated: dup };
    });
  }
}

const t = useTestDb('surface_fanout');
const PUBLIC = 'https://triggers.example.com';
const QSTASH_ENV = { PUBLIC_BASE_URL: PUBLIC, QSTASH_TOKEN: 'tok', QSTASH_CURRENT_SIGNING_KEY: 'sig_a', MAX_CONCURRENT_DRAINS: '80' };

/** A clock at second 5 of a minute, so a test's ticks fall in one minute. */
function minuteClock(): OffsetClock {
  const clock = new OffsetClock();
  const now = Date.now();
  clock.advance(Math.ceil(now / 60_000) * 60_000 + 5_000 - now);
  return clock;
}

beforeAll(async () => {
  for (const org of ['acme', 'beta', 'gamma']) await seedWorkflow(t.db(), { organizationId: org });
});
beforeEach(async () => {
  await Promise.all([COLLECTIONS.checkpoints, COLLECTIONS.runs, COLLECTIONS.fanoutTicks, COLLECTIONS.jobs].map((c) => t.db().collection(c).deleteMany({})));
});
afterAll(() => provideContext(null));

describe('fanOut with a publisher', () => {
  it('publishes one drain per stream to PUBLIC_BASE_URL/api/drain with per-tick dedup ids and org flow keys', async () => {
    const pub = new FakePublisher();
    const clock = minuteClock();
    const ctx = await useRouteContext(t.db(), t.client(), QSTASH_ENV, { publisher: pub, clock });
    const summary = await fanOut(ctx);
    const tick = tickOf(clock.now());
    expect(summary).toMatchObject({ mode: 'qstash', tick, streams: 5 });
    expect(pub.accepted.map((m) => m.body.streamId).sort()).toEqual(['org:acme', 'org:beta', 'org:gamma', 'shared:form_submissions', 'shared:global_submissions']);
    for (const m of pub.accepted) {
      expect(m.url).toBe(`${PUBLIC}/api/drain`);
      expect(m.deduplicationId).toBe(`drain-${String(m.body.streamId).replace(':', '_')}-${tick}`);
      expect(m.flowControlKey).toBe(flowKeyFor(String(m.body.streamId)));
    }
    // Nothing drained here: the drains run in their own invocations.
    expect(await t.db().collection(COLLECTIONS.runs).countDocuments()).toBe(0);
  });

  it('repeated cron deliveries of one tick are deduplicated; the next minute publishes again', async () => {
    const pub = new FakePublisher();
    const clock = minuteClock();
    const ctx = await useRouteContext(t.db(), t.client(), QSTASH_ENV, { publisher: pub, clock });
    const first = await fanOut(ctx);
    clock.advance(20_000);
    const again = await Promise.all([fanOut(ctx), fanOut(ctx)]);
    expect(first.published.every((p) => !p.deduplicated)).toBe(true);
    for (const s of again) expect(s.published.every((p) => p.deduplicated)).toBe(true);
    expect(pub.accepted).toHaveLength(5);
    const tickDoc = await t.db().collection<{ _id: string; deliveries: number }>(COLLECTIONS.fanoutTicks).findOne({ _id: first.tick });
    expect(tickDoc?.deliveries).toBe(3);

    clock.advance(60_000);
    const next = await fanOut(ctx);
    expect(next.tick).not.toBe(first.tick);
    expect(pub.accepted).toHaveLength(10);
  });

  it('respects MAX_CONCURRENT_DRAINS, counting streams that are draining now', async () => {
    const pub = new FakePublisher();
    const clock = minuteClock();
    const ctx = await useRouteContext(t.db(), t.client(), { ...QSTASH_ENV, MAX_CONCURRENT_DRAINS: '3' }, { publisher: pub, clock });
    await t.db().collection<{ _id: string }>(COLLECTIONS.checkpoints).insertOne({
      _id: 'org:acme',
      lease: { owner: 'other', expiresAt: new Date(clock.now() + 30_000) },
      tokenSavedAt: new Date(clock.now() - 1_000),
      state: 'draining',
    } as never);
    const s = await fanOut(ctx);
    expect(s.leased).toEqual(['org:acme']);
    expect(s.published).toHaveLength(2);
    expect(s.deferred).toHaveLength(2);
  });

  it('publishes a continuation with its own dedup id, once per run', async () => {
    const pub = new FakePublisher();
    const ctx = await useRouteContext(t.db(), t.client(), QSTASH_ENV, { publisher: pub });
    const a = await publishContinuation(ctx, 'org:acme', 'run1');
    const b = await publishContinuation(ctx, 'org:acme', 'run1');
    const c = await publishContinuation(ctx, 'org:acme', 'run2');
    expect([a.deduplicated, b.deduplicated, c.deduplicated]).toEqual([false, true, false]);
    expect(pub.accepted.map((m) => [m.body, m.deduplicationId, m.flowControlKey])).toEqual([
      [{ streamId: 'org:acme', continuationOf: 'run1' }, 'drain-cont-org_acme-run1', 'org-acme'],
      [{ streamId: 'org:acme', continuationOf: 'run2' }, 'drain-cont-org_acme-run2', 'org-acme'],
    ]);
  });
});

describe('fanOut without QStash', () => {
  it('drains every stream in-process, one after another, and creates the jobs', async () => {
    const ctx = await useRouteContext(t.db(), t.client(), {}, { publisher: null });
    expect((await fanOut(ctx)).runs).toHaveLength(5); // establishes tokens: streams start at "now"
    const ids = await insertSubmissions(t.db(), 7, { orgId: 'beta' });
    const s = await fanOut(ctx);
    expect(s.mode).toBe('in_process');
    expect(s.published).toEqual([]);
    expect(s.runs.map((r) => r.trigger)).toEqual(Array(5).fill('fanout'));
    expect(s.runs.find((r) => r.streamId === 'org:beta')?.jobsCreated).toBe(7);
    const counts = await jobCounts(t.db(), { organizationId: 'beta' });
    expect(ids.map((id) => counts.get(id))).toEqual(Array(7).fill(1));
    await expect(publishContinuation(ctx, 'org:beta', 'r')).resolves.toMatchObject({ published: false, reason: 'qstash_not_configured' });
  });
});
