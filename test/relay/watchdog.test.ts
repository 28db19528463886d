/**
 * The minute cron as the continuous relay's watchdog (lib/fanout/watchdog.ts): it restarts a chain
 * whose lease expired with no successor on its way, leaves a live chain alone, and a duplicate
 * delivery of one tick restarts once.
 */
import { describe, expect, it } from 'vitest';
import { planWatchdog } from '../../lib/fanout/watchdog.js';
import { fanOut } from '../../lib/fanout/tick.js';
import { orgStream, partitionStream, type StreamRef } from '../../lib/streams/refs.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import type { CheckpointDoc, RelayState } from '../../lib/data/documents.js';
import { RecordingPublisher } from '../support/publisher.js';
import { relayDedupId } from '../../lib/qstash/messages.js';
import { seedWorkflow, testContext } from '../support/context.js';
import { systemClock } from '../../lib/platform/clock.js';
import { useTestDb } from '../support/mongo.js';

const mongo = useTestDb('watchdog');
const NOW = 10_000_000;
const AFTER = 20_000;

function relay(partial: Partial<RelayState>): RelayState {
  return { generation: 1, live: true, handoverAt: null, lastPublishedAt: null, releasedAt: null, lastGapMs: null, gaps: [], restarts: 0, lastRestartAt: null, ...partial };
}
const cp = (id: string, opts: { leaseUntil?: number; relay?: Partial<RelayState>; state?: CheckpointDoc['state'] } = {}) => ({
  _id: id,
  state: opts.state ?? ('idle' as const),
  lease: opts.leaseUntil === undefined ? null : { owner: 'x', expiresAt: new Date(opts.leaseUntil) },
  ...(opts.relay ? { relay: relay(opts.relay) } : {}),
});

describe('planWatchdog', () => {
  const p = partitionStream(0, 1);
  const ids = (s: StreamRef[]) => s.map((x) => x.id);

  it('restarts a partition with no checkpoint at generation 1 (the chain never started)', () => {
    const plan = planWatchdog([p], [], NOW, AFTER);
    expect(plan.restart).toEqual([{ stream: p, generation: 1 }]);
  });

  it('restarts a chain whose lease expired and whose last publish is older than the bound, at stored + 1', () => {
    const plan = planWatchdog([p], [cp(p.id, { leaseUntil: NOW - 1, relay: { generation: 41, lastPublishedAt: new Date(NOW - AFTER) } })], NOW, AFTER);
    expect(plan.restart).toEqual([{ stream: p, generation: 42 }]);
  });

  it('leaves a chain alone while its lease is held', () => {
    const plan = planWatchdog([p], [cp(p.id, { leaseUntil: NOW + 1, relay: { generation: 3, lastPublishedAt: new Date(NOW - 10 * AFTER) } })], NOW, AFTER);
    expect(ids(plan.live)).toEqual([p.id]);
    expect(plan.restart).toEqual([]);
  });

  it('leaves a chain alone while a successor published within the bound is on its way', () => {
    const plan = planWatchdog([p], [cp(p.id, { relay: { generation: 3, lastPublishedAt: new Date(NOW - AFTER + 1) } })], NOW, AFTER);
    expect(ids(plan.live)).toEqual([p.id]);
  });

  it('leaves paused streams out', () => {
    const plan = planWatchdog([p], [cp(p.id, { state: 'paused' })], NOW, AFTER);
    expect(ids(plan.paused)).toEqual([p.id]);
    expect(plan.restart).toEqual([]);
  });

  it('watches other streams only while their chain is live; the rest go to the tick fan-out', () => {
    const busy = orgStream('busy');
    const ended = orgStream('ended');
    const never = orgStream('never');
    const plan = planWatchdog(
      [busy, ended, never],
      [cp(busy.id, { relay: { generation: 2, live: true, lastPublishedAt: new Date(NOW - AFTER) } }), cp(ended.id, { relay: { generation: 5, live: false } })],
      NOW,
      AFTER,
    );
    expect(plan.restart).toEqual([{ stream: busy, generation: 3 }]);
    expect(ids(plan.ticked)).toEqual([ended.id, never.id]);
  });
});

describe('fanOut in the continuous relay', () => {
  it('restarts the dead chain, not the live one, ticks the rest, and a duplicate tick restarts once', async () => {
    const publisher = new RecordingPublisher();
    // One instant for both deliveries of the tick (a pinned clock: the tick id is the minute).
    const now = Date.now();
    const clock = { now: () => now, sleep: systemClock.sleep };
    const ctx = await testContext(mongo.db(), mongo.client(), { RELAY: 'continuous', STREAM_LAYOUT: 'collection', PUBLIC_BASE_URL: 'http://relay.test' }, clock);
    ctx.publisher = publisher;
    for (const org of ['dead', 'live', 'plain']) await seedWorkflow(mongo.db(), { organizationId: org });
    const checkpoints = mongo.db().collection(COLLECTIONS.checkpoints);
    await checkpoints.insertMany([
      { _id: 'org:dead', state: 'idle', lease: { owner: 'gone', expiresAt: new Date(now - 1_000) }, relay: relay({ generation: 7, lastPublishedAt: new Date(now - 60_000) }) },
      { _id: 'org:live', state: 'draining', lease: { owner: 'window', expiresAt: new Date(now + 30_000) }, relay: relay({ generation: 3, lastPublishedAt: new Date(now - 60_000) }) },
    ] as never[]);

    const summary = await fanOut(ctx);
    expect(summary.relay.mode).toBe('continuous');
    expect(summary.relay.live).toEqual(['org:live']);
    expect(summary.relay.restarted).toEqual([expect.objectContaining({ streamId: 'org:dead', generation: 8, published: true, deduplicated: false })]);
    const restart = publisher.messages.find((m) => m.body.streamId === 'org:dead');
    expect(restart).toMatchObject({ url: 'http://relay.test/api/drain', body: { streamId: 'org:dead', generation: 8 }, flowControlKey: 'relay-org_dead', parallelism: 2 });
    expect(restart?.deduplicationId).not.toBe(relayDedupId('org:dead', 8)); // per tick, apart from the chain's own id
    // Streams not on a chain are published as today's tick drains.
    expect(summary.published.map((p) => p.streamId)).toContain('org:plain');
    expect(summary.published.map((p) => p.streamId)).not.toContain('org:live');

    const dead = await checkpoints.findOne({ _id: 'org:dead' as never });
    expect(dead?.relay).toMatchObject({ generation: 7, restarts: 1, live: true });

    // The same tick delivered again: the restart is deduplicated and not counted twice.
    await checkpoints.updateOne({ _id: 'org:dead' as never }, { $set: { 'relay.lastPublishedAt': new Date(now - 60_000) } });
    const again = await fanOut(ctx);
    expect(again.tick).toBe(summary.tick);
    expect(again.relay.restarted).toEqual([expect.objectContaining({ streamId: 'org:dead', deduplicated: true })]);
    expect((await checkpoints.findOne({ _id: 'org:dead' as never }))?.relay?.restarts).toBe(1);
  });

  it('in the tick relay the cron keeps its fan-out and restarts nothing', async () => {
    const publisher = new RecordingPublisher();
    const ctx = await testContext(mongo.db(), mongo.client(), { RELAY: 'tick', STREAM_LAYOUT: 'collection', PUBLIC_BASE_URL: 'http://relay.test' });
    ctx.publisher = publisher;
    await seedWorkflow(mongo.db(), { organizationId: 'ticked' });
    const summary = await fanOut(ctx);
    expect(summary.relay).toEqual({ mode: 'tick', live: [], restarted: [] });
    expect(publisher.messages.every((m) => m.body.generation === undefined)).toBe(true);
  });
});
