/**
 * The continuous relay under concurrent windows: a chain of relay windows drains one stream while
 * submissions keep arriving; one generation is delivered twice at once (a QStash redelivery), a
 * watchdog restart races the live chain (a forked chain), and a stale generation arrives late.
 * The generation fence must let exactly one window per generation drain and stop every other one.
 */
import { drainStream } from '../../../lib/drain/drain.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { relayWindow, type RelayWindowResult } from '../../../lib/fanout/relay.js';
import type { PublishMessage, PublishResult, Publisher } from '../../../lib/qstash/publisher.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

/** QStash as the Publisher port: each deduplication id accepted once, accepted messages delivered at once. */
class ChainDelivery implements Publisher {
  private readonly ids = new Set<string>();
  readonly deliveries: Promise<unknown>[] = [];
  constructor(private readonly deliver: (m: PublishMessage) => Promise<unknown>) {}
  async publishBatch(messages: PublishMessage[]): Promise<PublishResult[]> {
    return messages.map((m) => {
      const deduplicated = this.ids.has(m.deduplicationId);
      this.ids.add(m.deduplicationId);
      if (!deduplicated) this.deliveries.push(Promise.resolve().then(() => this.deliver(m)));
      return { messageId: deduplicated ? null : m.deduplicationId, deduplicated };
    });
  }
  async settle(): Promise<void> {
    for (let seen = -1; seen !== this.deliveries.length; ) {
      seen = this.deliveries.length;
      await Promise.all(this.deliveries);
    }
  }
}

const GENERATIONS = 5;

export const relayScenario: Scenario = {
  name: 'relay: concurrent windows, forked chain',
  promises: '1, 2, 3',
  description: `a relay chain of ${GENERATIONS} windows drains one stream under steady inserts while one generation is delivered twice at once, a watchdog restart forks the chain, and a stale generation arrives late: one window per generation may drain, every other one must answer superseded`,
  full: { trials: 4, events: 300 },
  quick: { trials: 1, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await faultContext(env, { DRAIN_WINDOW_MS: '1000', RELAY_HANDOVER_LEAD_MS: '300', DRAIN_MAX_AWAIT_MS: '50', PUBLIC_BASE_URL: 'http://relay.faults' });
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const orgId = trialOrg('relay', t);
      const stream = orgStream(orgId);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, stream);
      const results: RelayWindowResult[] = [];
      const publisher = new ChainDelivery(async (m) => {
        // Only this stream's relay messages (job-processor kicks are published too).
        const g = m.body.generation;
        if (m.body.streamId !== stream.id || typeof g !== 'number' || g > GENERATIONS) return;
        // Generation 2 arrives twice at once (a redelivery racing the first delivery).
        const copies = g === 2 ? 2 : 1;
        results.push(...(await Promise.all(Array.from({ length: copies }, () => relayWindow(ctx, stream, g, { continuous: true })))));
      });
      ctx.publisher = publisher;
      const ids: string[] = [];
      let writing = true;
      const writer = (async () => {
        const per = Math.max(1, Math.ceil(opts.events / 40));
        while (writing && ids.length < opts.events) {
          ids.push(...(await insertBacklog(env.db, orgId, Math.min(per, opts.events - ids.length), per)).ids);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await publisher.publishBatch([{ url: 'http://relay.faults/api/drain', body: { streamId: stream.id, generation: 1 }, deduplicationId: `relay-${stream.id}-1`, flowControlKey: 'relay', parallelism: 2 }]);
      // A watchdog restart at generation 3 while the chain is live: the chain's own 3 and this one race.
      while (!results.some((r) => r.run.generation === 2 && r.run.status === 'completed')) await new Promise((r) => setTimeout(r, 20));
      await publisher.publishBatch([{ url: 'http://relay.faults/api/drain', body: { streamId: stream.id, generation: 3 }, deduplicationId: `restart-${stream.id}-3`, flowControlKey: 'relay', parallelism: 2 }]);
      await publisher.settle();
      writing = false;
      await writer;
      // A stale generation delivered late.
      const stale = await relayWindow(ctx, stream, 1, { continuous: true });
      // What arrived after the last window: one plain drain.
      await drainStream(ctx, stream);

      const completed = results.filter((r) => r.run.status === 'completed').map((r) => r.run.generation).sort();
      tally.check(
        JSON.stringify(completed) === JSON.stringify(Array.from({ length: GENERATIONS }, (_, i) => i + 1)),
        `trial ${t}: windows that drained by generation ${JSON.stringify(completed)} (expected one each of 1..${GENERATIONS})`,
      );
      const superseded = results.filter((r) => r.superseded).length + (stale.superseded ? 1 : 0);
      // The duplicate of 2, the loser of the two 3s, and the stale 1.
      tally.rejections(3, superseded);
      tally.check(stale.successor === null, `trial ${t}: the stale window handed on a successor`);
      await tally.jobs(env.db, orgId, ids);
    }
    tally.note('rejections: a duplicate delivery, the losing window of a forked chain and a stale generation, per trial, each answered superseded');
    return tally.done();
  },
};
