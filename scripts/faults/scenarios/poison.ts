/**
 * Submissions that can never become a job (no formId, an empty or non-string formId) between good
 * ones. The good ones get their jobs, each poison one is dead-lettered exactly once with a reason,
 * and the stream goes on — also when the same events are read again.
 */
import { ObjectId } from 'mongodb';
import { CheckpointStore } from '../../../lib/streams/checkpoint.js';
import { drainStream } from '../../../lib/drain/drain.js';
import { COLLECTIONS, submissionsCollection } from '../../../lib/data/mongo.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { drainUntilQuiet, faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

const POISON = [
  (orgId: string) => ({ _id: new ObjectId(), organizationId: orgId, data: { noForm: true }, submittedAt: new Date() }),
  (orgId: string) => ({ _id: new ObjectId(), organizationId: orgId, formId: '', data: {}, submittedAt: new Date() }),
  (orgId: string) => ({ _id: new ObjectId(), organizationId: orgId, formId: 42, data: {}, submittedAt: new Date() }),
];

export const poisonScenario: Scenario = {
  name: 'poison documents',
  promises: '1, 5',
  description:
    'malformed submissions (no formId, empty formId, numeric formId) among good ones; good ones get jobs, each poison one is dead-lettered once with a reason, also when the events are read a second time',
  full: { trials: 6, events: 120 },
  quick: { trials: 1, events: 40 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await faultContext(env);
    const store = new CheckpointStore(env.db);
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const orgId = trialOrg('poison', t);
      const stream = orgStream(orgId);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, stream);
      const start = (await store.get(stream.id))?.token ?? null;
      const good1 = await insertBacklog(env.db, orgId, Math.ceil(opts.events / 2), 25);
      const poison = POISON.map((make) => make(orgId));
      await env.db.collection(submissionsCollection(orgId)).insertMany(poison);
      const good2 = await insertBacklog(env.db, orgId, Math.floor(opts.events / 2), 25);
      await drainUntilQuiet(ctx, stream);
      // Read the same events again (as after a token reset): nothing is dead-lettered twice.
      await store.collection.updateOne({ _id: stream.id }, { $set: { token: start, tokenPos: null } });
      await drainUntilQuiet(ctx, stream);
      const dead = await env.db.collection(COLLECTIONS.deadLetters).find({ streamId: stream.id }).toArray();
      const withReason = dead.filter((d) => d.code === 'malformed_submission' && /formId/.test(String(d.reason)));
      tally.rejections(poison.length, Math.min(poison.length, withReason.length));
      tally.check(dead.length === poison.length, `trial ${t}: ${dead.length} dead letters for ${poison.length} poison documents`);
      await tally.jobs(env.db, orgId, [...good1.ids, ...good2.ids]);
    }
    tally.note('rejected = poison documents dead-lettered with a reason naming formId (exactly once each)');
    return tally.done();
  },
};
