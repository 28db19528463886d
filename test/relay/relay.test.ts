/**
 * The continuous relay (lib/fanout/relay.ts): windows of a chain hand a stream on under a
 * generation fence. Promises tried (DESIGN section 8): no lost trigger and no duplicate job across
 * windows; a duplicate delivery or a forked chain drains once and stops itself; the watchdog
 * restarts a dead chain and leaves a live one alone.
 *
 * QStash is the Publisher port: `FakeQStash` accepts each deduplication id once (QStash's
 * documented deduplication) and delivers accepted relay messages by calling the window directly.
 */
import { describe, expect, it } from 'vitest';
import { useTestDb } from '../support/mongo.js';
import { insertSubmissions, jobCounts, seedWorkflow, testContext, until } from '../support/context.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream, type StreamRef } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import type { AppContext } from '../../lib/platform/context.js';
import type { PublishMessage, PublishResult, Publisher } from '../../lib/qstash/publisher.js';
import { handoverWaitMs, publishSuccessor, relayWindow, type RelayWindowResult } from '../../lib/fanout/relay.js';
import { runRelay } from '../../lib/fanout/runner.js';
import { relayDedupId, relayRestartDedupId } from '../../lib/qstash/messages.js';
import type { CheckpointDoc } from '../../lib/data/documents.js';

const mongo = useTestDb('relay');

/** Relay windows short enough to see several in a test; the lead is what the handover waits on. */
const RELAY_ENV = { DRAIN_WINDOW_MS: '1200', RELAY_HANDOVER_LEAD_MS: '400', DRAIN_MAX_AWAIT_MS: '50', DRAIN_IDLE_MS: '300', PUBLIC_BASE_URL: 'http://relay.test' };

class FakeQStash implements Publisher {
  readonly accepted: PublishMessage[] = [];
  private readonly ids = new Set<string>();
  readonly deliveries: Promise<unknown>[] = [];
  deliver: ((m: PublishMessage) => Promise<unknown>) | null = null;
  async publishBatch(messages: PublishMessage[]): Promise<PublishResult[]> {
    return messages.map((m) => {
      const duplicate = this.ids.has(m.deduplicationId);
      if (!duplicate) {
        this.ids.add(m.deduplicationId);
        this.accepted.push(m);
        // Delivered asynchronously, like QStash: never inside the publisher's call.
        if (this.deliver) this.deliveries.push(Promise.resolve().then(() => this.deliver!(m)));
      }
      return { messageId: `msg-${this.accepted.length}`, deduplicated: duplicate };
    });
  }
  /** Wait for every delivery so far, including those published by deliveries. */
  async settle(): Promise<void> {
    for (let seen = -1; seen !== this.deliveries.length; ) {
      seen = this.deliveries.length;
      await Promise.all(this.deliveries);
    }
  }
}

async function relayContext(fake: FakeQStash | null, env: Record<string, string> = {}): Promise<AppContext> {
  const ctx = await testContext(mongo.db(), mongo.client(), { ...RELAY_ENV, ...env });
  ctx.publisher = fake;
  return ctx;
}

/** Deliver relay messages of `stream` up to `lastGeneration`, recording every window's result. */
function deliverChain(ctx: AppContext, fake: FakeQStash, stream: StreamRef, lastGeneration: number, continuous: boolean) {
  const results: RelayWindowResult[] = [];
  fake.deliver = async (m) => {
    const generation = m.body.generation as number;
    if (m.body.streamId !== stream.id || generation > lastGeneration) return;
    results.push(await relayWindow(ctx, stream, generation, { continuous }));
  };
  return results;
}

function checkpoint(streamId: string): Promise<CheckpointDoc | null> {
  return mongo.db().collection<CheckpointDoc>(COLLECTIONS.checkpoints).findOne({ _id: streamId });
}

/** Insert submissions without pause until stopped; returns every id inserted. */
function writer(orgId: string) {
  const ids: string[] = [];
  let on = true;
  const done = (async () => {
    while (on) {
      ids.push(...(await insertSubmissions(mongo.db(), 3, { orgId })));
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    ids,
    async stop() {
      on = false;
      await done;
      return ids;
    },
  };
}

async function expectEachOnce(orgId: string, ids: string[]) {
  const counts = await jobCounts(mongo.db(), { organizationId: orgId });
  const lost = ids.filter((id) => !counts.get(id));
  const duplicated = ids.filter((id) => (counts.get(id) ?? 0) > 1);
  expect({ inserted: ids.length, lost: lost.length, duplicated: duplicated.length }).toEqual({ inserted: ids.length, lost: 0, duplicated: 0 });
}

describe('relay: handover between windows', () => {
  it('each successor takes the lease its predecessor releases, and no event is lost or doubled across 4 windows', async () => {
    const fake = new FakeQStash();
    const ctx = await relayContext(fake);
    const stream = orgStream('handover');
    await seedWorkflow(mongo.db(), { organizationId: 'handover' });
    await drainStream(ctx, stream); // the stream's token starts here
    const results = deliverChain(ctx, fake, stream, 4, true);
    const w = writer('handover');
    await publishSuccessor(ctx, stream, 1);
    await until(async () => results.some((r) => r.run.generation === 4), 'window 4', 30_000);
    await fake.settle();
    const ids = await w.stop();
    await drainStream(ctx, stream); // what came after window 4
    await expectEachOnce('handover', ids);

    const byGeneration = results.map((r) => [r.run.generation, r.run.status] as const);
    expect(byGeneration).toEqual([
      [1, 'completed'],
      [2, 'completed'],
      [3, 'completed'],
      [4, 'completed'],
    ]);
    // Windows 2..4 arrived while the lease was held (published before the deadline) and took it
    // within the wait bound; each measured its gap from the predecessor's release.
    for (const r of results.slice(1)) {
      expect(r.gapMs).not.toBeNull();
      expect(r.waitedMs).toBeLessThan(handoverWaitMs(ctx.config));
    }
    const cp = await checkpoint(stream.id);
    expect(cp?.relay).toMatchObject({ generation: 4 });
    expect(cp?.relay?.gaps).toHaveLength(3);
    expect(cp?.relay?.lastGapMs).toBe(results[3]!.gapMs);
    const relayed = fake.accepted.filter((m) => m.url.endsWith('/api/drain'));
    expect(relayed.map((m) => m.deduplicationId)).toEqual([1, 2, 3, 4, 5].map((g) => relayDedupId(stream.id, g)));
    expect(relayed.every((m) => m.parallelism === 2 && m.flowControlKey === 'relay-org_handover')).toBe(true);
    // Flushes that created jobs asked for processor runs: at most one per second (kick.test.ts).
    expect(fake.accepted.some((m) => m.url.endsWith('/api/jobs/process'))).toBe(true);
    console.log('handover gaps (ms):', cp?.relay?.gaps);
  });

  it('a window of a stream that is not continuous ends its chain when it ends idle', async () => {
    const fake = new FakeQStash();
    const ctx = await relayContext(fake);
    const stream = orgStream('ends');
    await seedWorkflow(mongo.db(), { organizationId: 'ends' });
    const result = await relayWindow(ctx, stream, 1);
    expect(result.run).toMatchObject({ status: 'completed', stoppedBy: 'idle', busy: false });
    expect(result.successor).toBeNull();
    expect(fake.accepted).toHaveLength(0);
    expect((await checkpoint(stream.id))?.relay).toMatchObject({ generation: 1, live: false });
  });
});

describe('relay: the generation fence', () => {
  it('a duplicate delivery of one generation drains once; the other answers superseded', async () => {
    const fake = new FakeQStash();
    const ctx = await relayContext(fake);
    const stream = orgStream('dup');
    await seedWorkflow(mongo.db(), { organizationId: 'dup' });
    await drainStream(ctx, stream);
    const ids = await insertSubmissions(mongo.db(), 20, { orgId: 'dup' });
    const both = await Promise.all([relayWindow(ctx, stream, 1), relayWindow(ctx, stream, 1)]);
    const ran = both.filter((r) => r.run.status === 'completed');
    const refused = both.filter((r) => r.superseded);
    expect(ran).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.run).toMatchObject({ status: 'skipped', stoppedBy: 'superseded', generation: 1, events: 0 });
    expect(refused[0]!.successor).toBeNull();
    // Redelivered later, after the first one finished: still refused.
    expect((await relayWindow(ctx, stream, 1)).superseded).toBe(true);
    await expectEachOnce('dup', ids);
  });

  it('a stale generation is refused and publishes nothing, while the stored generation stays', async () => {
    const fake = new FakeQStash();
    const ctx = await relayContext(fake);
    const stream = orgStream('stale');
    await seedWorkflow(mongo.db(), { organizationId: 'stale' });
    for (const g of [1, 2, 3]) expect((await relayWindow(ctx, stream, g)).run.status).toBe('completed');
    const stale = await relayWindow(ctx, stream, 2);
    expect(stale).toMatchObject({ superseded: true, successor: null });
    expect(stale.run.stoppedBy).toBe('superseded');
    expect(fake.accepted).toHaveLength(0);
    expect((await checkpoint(stream.id))?.relay?.generation).toBe(3);
  });

  it('a plain drain does not move the generation, and a relay window still follows it', async () => {
    const ctx = await relayContext(new FakeQStash());
    const stream = orgStream('plain');
    await seedWorkflow(mongo.db(), { organizationId: 'plain' });
    expect((await relayWindow(ctx, stream, 5)).run.status).toBe('completed');
    expect((await drainStream(ctx, stream)).status).toBe('completed');
    expect((await checkpoint(stream.id))?.relay?.generation).toBe(5);
    expect((await relayWindow(ctx, stream, 6)).run.status).toBe('completed');
  });

  it('two chains of one stream (a restart racing a live chain) converge to one, losing and doubling nothing', async () => {
    const fake = new FakeQStash();
    const ctx = await relayContext(fake);
    const stream = orgStream('fork');
    await seedWorkflow(mongo.db(), { organizationId: 'fork' });
    await drainStream(ctx, stream);
    const results = deliverChain(ctx, fake, stream, 6, true);
    const w = writer('fork');
    await publishSuccessor(ctx, stream, 1);
    await until(async () => ((await checkpoint(stream.id))?.relay?.generation ?? 0) >= 2, 'generation 2');
    // A restart of generation 3 while generation 2 is live: the same generation its successor gets.
    const [restart] = await fake.publishBatch([
      { url: 'http://relay.test/api/drain', body: { streamId: stream.id, generation: 3 }, deduplicationId: relayRestartDedupId(stream.id, 3, 'test'), flowControlKey: 'relay-org_fork', parallelism: 2 },
    ]);
    expect(restart?.deduplicated).toBe(false);
    await until(async () => results.some((r) => r.run.generation === 6 && r.run.status === 'completed'), 'window 6', 30_000);
    await fake.settle();
    const ids = await w.stop();
    await drainStream(ctx, stream);
    await expectEachOnce('fork', ids);
    const completed = results.filter((r) => r.run.status === 'completed').map((r) => r.run.generation);
    expect(completed).toEqual([1, 2, 3, 4, 5, 6]);
    const superseded = results.filter((r) => r.superseded).map((r) => r.run.generation);
    expect(superseded).toEqual([3]);
  });
});

describe('relay: in-process runner (no QStash)', () => {
  it('keeps draining window after window, with jobs for every submission, and stops on abort', async () => {
    const ctx = await relayContext(null);
    const stream = orgStream('inproc');
    await seedWorkflow(mongo.db(), { organizationId: 'inproc' });
    await drainStream(ctx, stream);
    const controller = new AbortController();
    const windows: RelayWindowResult[] = [];
    const running = runRelay(ctx, stream, controller.signal, { continuous: true, onWindow: (r) => windows.push(r) });
    const w = writer('inproc');
    await until(async () => windows.filter((r) => r.run.status === 'completed').length >= 3, '3 windows', 30_000);
    const ids = await w.stop();
    await until(async () => (await jobCounts(mongo.db(), { organizationId: 'inproc' })).size >= ids.length, 'jobs for every submission');
    controller.abort();
    const summary = await running;
    expect(summary).toMatchObject({ streamId: stream.id, stoppedBy: 'aborted' });
    expect(summary.windows).toBeGreaterThanOrEqual(3);
    await expectEachOnce('inproc', ids);
    const cp = await checkpoint(stream.id);
    expect(cp?.relay?.generation).toBe(summary.generation);
    expect(cp?.lease).toBeNull();
  });

  it('of two runners on one stream, one stops as superseded and the other goes on', async () => {
    const ctx = await relayContext(null);
    const stream = orgStream('runners');
    await seedWorkflow(mongo.db(), { organizationId: 'runners' });
    const controller = new AbortController();
    const a = runRelay(ctx, stream, controller.signal, { continuous: true });
    const b = runRelay(ctx, stream, controller.signal, { continuous: true });
    const first = await Promise.race([a, b]);
    expect(first.stoppedBy).toBe('superseded');
    const cp = await until(async () => ((await checkpoint(stream.id))?.relay?.generation ?? 0) > first.generation && checkpoint(stream.id), 'the other runner going on');
    expect(cp?.relay?.generation).toBeGreaterThan(first.generation);
    controller.abort();
    const both = await Promise.all([a, b]);
    expect(both.map((s) => s.stoppedBy).sort()).toEqual(['aborted', 'superseded']);
  });
});

describe('relay: the lease store under a generation', () => {
  it('acquire with a generation stores it in the same update as the fence, and refuses one not above it', async () => {
    const store = new CheckpointStore(mongo.db());
    const stream = orgStream('fence');
    const now = new Date();
    const later = new Date(now.getTime() + 60_000);
    const lease = await store.acquire(stream, 'a', now, later, 7);
    expect(lease).toMatchObject({ generation: 7 });
    expect((await checkpoint(stream.id))?.relay?.generation).toBe(7);
    expect(await store.acquire(stream, 'b', new Date(later.getTime() + 1), new Date(later.getTime() + 60_000), 7)).toBeNull();
    const next = await store.acquire(stream, 'c', new Date(later.getTime() + 1), new Date(later.getTime() + 60_000), 8);
    expect(next?.fence).toBe((lease?.fence ?? 0) + 1);
    expect((await checkpoint(stream.id))?.relay?.generation).toBe(8);
  });
});
