/**
 * The same work delivered more than once: the explicit path and the stream racing for the same
 * submissions (dual mode), the same drain delivered twice at once through `POST /api/drain`, and
 * delivered again afterwards.
 */
import * as drainRoute from '../../../api/drain.js';
import { provideContext } from '../../../lib/platform/context.js';
import { drainStream } from '../../../lib/drain/drain.js';
import { COLLECTIONS, submissionsCollection } from '../../../lib/data/mongo.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { dispatchExplicit } from '../../../lib/dispatch/explicit.js';
import type { SubmissionDoc } from '../../../lib/data/documents.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { drainUntilQuiet, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';
import { CRON, request, routeContext } from './routes.js';

export const duplicatesScenario: Scenario = {
  name: 'duplicate deliveries',
  promises: '1, 2',
  description:
    'in dual mode the explicit path and a drain race over the same submissions; then the drain is delivered twice at once through POST /api/drain (one must be refused as leased) and once more afterwards',
  full: { trials: 8, events: 150 },
  quick: { trials: 1, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await routeContext(env);
    try {
      let bothPaths = 0;
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgId = trialOrg('dup', t);
        await seedWorkflow(env.db, orgId);
        await drainStream(ctx, orgStream(orgId));
        const { ids } = await insertBacklog(env.db, orgId, opts.events, 50);
        const docs = await env.db.collection<SubmissionDoc>(submissionsCollection(orgId)).find({}).toArray();
        // The application's explicit call and a drain, at the same time, over the same submissions.
        await Promise.all([Promise.all(docs.map((d) => dispatchExplicit(ctx, d))), drainStream(ctx, orgStream(orgId))]);

        const more = await insertBacklog(env.db, orgId, opts.events, 50);
        const deliver = () => drainRoute.POST(request('POST', '/api/drain', { authorization: `Bearer ${CRON}`, 'content-type': 'application/json' }, JSON.stringify({ orgId })));
        const answers = await Promise.all([deliver(), deliver()]);
        const bodies = (await Promise.all(answers.map((a) => a.json()))) as { run?: { status: string; stoppedBy: string } }[];
        tally.check(answers.every((a) => a.status === 200), `trial ${t}: duplicate deliveries answered ${answers.map((a) => a.status).join(', ')}`);
        tally.rejections(1, bodies.filter((b) => b.run?.status === 'skipped' && b.run.stoppedBy === 'leased').length);
        const again = await deliver();
        tally.check(again.status === 200, `trial ${t}: the redelivery answered ${again.status}`);
        await drainUntilQuiet(ctx, orgStream(orgId));
        await tally.jobs(env.db, orgId, [...ids, ...more.ids]);
        bothPaths += await env.db.collection(COLLECTIONS.jobs).countDocuments({ organizationId: orgId, seenBy: { $all: ['explicit', 'change_stream'] } });
      }
      tally.note(`jobs seen by both the explicit path and the stream (one job each): ${bothPaths}`);
      return tally.done();
    } finally {
      provideContext(null);
    }
  },
};
