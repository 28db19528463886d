/**
 * Issue 14 cases 1, 2 and 7 as fault scenarios:
 *
 * - large events: change events over 16 MiB among ordinary ones, read through
 *   `$changeStreamSplitLargeEvent` (alternate trials: without it, BSONObjectTooLarge 10334);
 * - refused resume points: failCommand answers 280 ChangeStreamFatalError to every aggregate for
 *   several runs, then the stream is restarted by an operator;
 * - writer clock skew: submissions backdated past the skew allowance, then a single 286.
 */
import { ObjectId } from 'mongodb';
import { CheckpointStore } from '../../../lib/streams/checkpoint.js';
import { drainStream } from '../../../lib/drain/drain.js';
import { restartStream } from '../../../lib/drain/restart.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { COLLECTIONS, submissionsCollection } from '../../../lib/data/mongo.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { armFailPoint, clearFailPoint } from '../failpoint.js';
import { drainUntilQuiet, faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

const MB = 1024 * 1024;
const LAYOUT = { STREAM_LAYOUT: 'collection' };

export const largeEventsScenario: Scenario = {
  name: 'events over 16 MiB',
  promises: '1',
  description:
    'a 9.5 MB insert, an 8.5 MB $set (a 17 MB update event with updateLookup) and ordinary inserts; read through $changeStreamSplitLargeEvent and reassembled, or (alternate trials, DRAIN_SPLIT_LARGE_EVENTS=off) stepped over on 10334 with one dead letter naming its position; every ordinary submission gets its job, no run fails',
  full: { trials: 4, events: 60 },
  quick: { trials: 2, events: 10 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    let split = 0;
    let steppedOver = 0;
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const splitOn = t % 2 === 0;
      const ctx = await faultContext(env, { ...LAYOUT, DRAIN_SPLIT_LARGE_EVENTS: splitOn ? 'auto' : 'off' });
      const orgId = trialOrg('large', t);
      const stream = orgStream(orgId);
      const wf = await seedWorkflow(env.db, orgId);
      await env.db.collection(COLLECTIONS.workflows).updateOne({ _id: wf._id as never }, { $set: { trigger: { on: ['insert', 'update'] } } });
      await drainStream(ctx, stream);
      const before = await insertBacklog(env.db, orgId, Math.ceil(opts.events / 2), 50);
      const coll = env.db.collection(submissionsCollection(orgId));
      const large = new ObjectId();
      await coll.insertOne({ _id: large, organizationId: orgId, formId: 'contact', data: { blob: 'a'.repeat(9.5 * MB) }, submittedAt: new Date() });
      await coll.updateOne({ _id: large }, { $set: { 'data.blob': 'b'.repeat(8.5 * MB) } });
      const after = await insertBacklog(env.db, orgId, Math.floor(opts.events / 2), 50);
      const runs = await drainUntilQuiet(ctx, stream);
      tally.check(runs.every((r) => r.status === 'completed'), `trial ${t}: a run failed (${runs.map((r) => r.error?.code).join(',')})`);
      const updateJobs = await env.db.collection(COLLECTIONS.jobs).countDocuments({ submissionId: large.toHexString(), event: 'update' });
      const dead = await env.db.collection(COLLECTIONS.deadLetters).countDocuments({ streamId: stream.id, code: 'oversized' });
      if (splitOn) {
        tally.check(updateJobs === 1 && dead === 0, `trial ${t}: split event not dispatched once (jobs ${updateJobs}, dead letters ${dead})`);
        if (updateJobs === 1) split++;
      } else {
        tally.check(updateJobs === 0 && dead === 1, `trial ${t}: oversized event not stepped over once (jobs ${updateJobs}, dead letters ${dead})`);
        if (dead === 1) steppedOver++;
      }
      const cp = await new CheckpointStore(env.db).get(stream.id);
      tally.check(cp?.state !== 'failing', `trial ${t}: stream is failing`);
      // The large submission's jobs are checked above; the tally counts the ordinary submissions'.
      await env.db.collection(COLLECTIONS.jobs).deleteMany({ submissionId: large.toHexString() });
      await tally.jobs(env.db, orgId, [...before.ids, ...after.ids]);
      await coll.drop();
    }
    tally.note(`reassembled from fragments: ${split}; stepped over with a dead letter: ${steppedOver}`);
    return tally.done();
  },
};

export const refusedResumeScenario: Scenario = {
  name: 'refused resume points',
  promises: '1, 5',
  description:
    'failCommand answers 280 ChangeStreamFatalError ("resume token not found") to every aggregate for three drains while submissions arrive; each drain scans and records a gap, no run fails, then an operator restart at now scans the skipped window; every submission gets one job',
  full: { trials: 4, events: 120 },
  quick: { trials: 1, events: 20 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await faultContext(env, LAYOUT);
    const store = new CheckpointStore(env.db);
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const orgId = trialOrg('refused', t);
      const stream = orgStream(orgId);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, stream);
      const ids: string[] = [];
      await armFailPoint(env.client, { failCommands: ['aggregate'], errorCode: 280 }, 'alwaysOn');
      try {
        for (let r = 0; r < 3; r++) {
          ids.push(...(await insertBacklog(env.db, orgId, Math.ceil(opts.events / 4), 50)).ids);
          const run = await drainStream(ctx, stream);
          tally.check(run.status === 'completed', `trial ${t}: run ${r} under 280 ended ${run.status} (${run.error?.code})`);
        }
      } finally {
        await clearFailPoint(env.client);
      }
      const cp = await store.get(stream.id);
      tally.check(cp?.state !== 'failing' && (cp?.gapCount ?? 0) >= 1, `trial ${t}: state ${cp?.state}, gaps ${cp?.gapCount}`);
      ids.push(...(await insertBacklog(env.db, orgId, Math.ceil(opts.events / 4), 50)).ids);
      await restartStream(ctx, stream.id, 'now');
      await drainUntilQuiet(ctx, stream);
      const restarted = await store.get(stream.id);
      tally.check(restarted?.gaps.some((g) => g.reason === 'restart') === true && restarted.recovery === null, `trial ${t}: restart gap not recorded`);
      await tally.jobs(env.db, orgId, ids);
    }
    return tally.done();
  },
};

export const writerSkewScenario: Scenario = {
  name: 'writer clock skew in recovery',
  promises: '1, 5',
  description:
    'submissions whose submittedAt is now, 5 minutes and 2 hours in the past, missing or a string, then a single 286: the recovery scan finds them by submittedAt or by _id creation time, dispatches each once and counts the ones submittedAt cannot place on the gap record',
  full: { trials: 4, events: 50 },
  quick: { trials: 1, events: 10 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await faultContext(env, LAYOUT);
    const store = new CheckpointStore(env.db);
    const skews: (number | 'missing' | 'string')[] = [0, 5 * 60_000, 2 * 3_600_000, 'missing', 'string'];
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const orgId = trialOrg('skew', t);
      const stream = orgStream(orgId);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, stream);
      const docs = Array.from({ length: opts.events }, (_, i) => {
        const skew = skews[i % skews.length]!;
        const submittedAt = skew === 'missing' ? undefined : skew === 'string' ? new Date().toISOString() : new Date(Date.now() - skew);
        return { _id: new ObjectId(), organizationId: orgId, formId: 'contact', data: { i }, ...(submittedAt === undefined ? {} : { submittedAt }) };
      });
      await env.db.collection(submissionsCollection(orgId)).insertMany(docs);
      const armedAt = Date.now();
      await armFailPoint(env.client, { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] }, { times: 1 });
      try {
        await drainStream(ctx, stream);
      } finally {
        await clearFailPoint(env.client);
      }
      await drainUntilQuiet(ctx, stream);
      // The gap of the armed fault: the first drain of a new stream may record its own (an empty
      // one when the start it asked for is older than the oplog).
      const gaps = (await store.get(stream.id))?.gaps ?? [];
      const gap = gaps.filter((g) => g.reason === 'history_lost' && g.recordedAt.getTime() >= armedAt).at(-1);
      const unplacedExpected = docs.filter((_, i) => typeof skews[i % skews.length] !== 'number' || skews[i % skews.length] === 2 * 3_600_000).length;
      tally.check(gap?.count === opts.events && gap.unplaced === unplacedExpected, `trial ${t}: gap ${JSON.stringify({ count: gap?.count, unplaced: gap?.unplaced })}, expected ${opts.events} / ${unplacedExpected}`);
      await tally.jobs(env.db, orgId, docs.map((d) => d._id.toHexString()));
    }
    return tally.done();
  },
};
