/**
 * The job processor dies mid-run (at a random database operation: after a claim, after a webhook
 * was delivered but before its result was recorded …), and a frozen processor comes back after its
 * leases were taken over. Every job must end `succeeded` exactly once; no attempt may run twice; the
 * stale processor's writes must be refused.
 */
import { randomBytes } from 'node:crypto';
import type { Db } from 'mongodb';
import { claimJob } from '../../../lib/jobs/claim.js';
import { processJobs } from '../../../lib/jobs/process.js';
import { recordSuccess } from '../../../lib/jobs/complete.js';
import type { ProcessedJobDoc } from '../../../lib/data/documents.js';
import { planJobs } from '../../../lib/dispatch/plan.js';
import { loadWorkflows } from '../../../lib/dispatch/workflows.js';
import { COLLECTIONS } from '../../../lib/data/mongo.js';
import { crashingDb } from '../../../test/support/crash.js';
import { OffsetClock } from '../../../test/support/context.js';
import { seedWorkflow, submission } from '../../bench/setup.js';
import { startWebhookReceiver, type WebhookReceiver } from '../receiver.js';
import { faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

const LEASE_MS = 30_000;
const CONCURRENCY = 4;

export const processorScenario: Scenario = {
  name: 'processor crashes',
  promises: '1, 2 (jobs)',
  description: `a job processor (${CONCURRENCY} at a time) dies at a random database operation; another frozen processor holds claims past their lease; after the leases expire the next run completes every job, no (job, attempt) is delivered twice, and the frozen processor's late results are refused`,
  full: { trials: 12, events: 40 },
  quick: { trials: 2, events: 12 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const receiver = await startWebhookReceiver();
    const db = env.client.db(`${env.db.databaseName}_jobs`);
    try {
      const clock = new OffsetClock();
      const ctx = await faultContext(env, { JOB_LEASE_MS: String(LEASE_MS), JOB_WINDOW_MS: '20000', JOB_CONCURRENCY: String(CONCURRENCY), WEBHOOK_SIGNING_SECRET: randomBytes(16).toString('hex') }, clock, db);
      await queueJobs(db, receiver, trialOrg('probe', 0), opts.events);
      const clean = crashingDb(db, Number.MAX_SAFE_INTEGER);
      await processJobs({ ...ctx, db: clean.db }, { concurrency: CONCURRENCY });
      const opsPerRun = clean.operations();
      tally.note(`a clean run over ${opts.events} jobs makes ${opsPerRun} database calls; crash points drawn from 1..${opsPerRun}`);
      let redelivered = 0;
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgId = trialOrg('proc', t);
        const keys = await queueJobs(db, receiver, orgId, opts.events);
        // A frozen processor claims two jobs and never reports.
        const frozen = [];
        for (let i = 0; i < 2; i++) {
          const got = await claimJob(db, { owner: 'frozen', now: new Date(clock.now()), leaseMs: LEASE_MS, maxAttempts: ctx.config.JOB_MAX_ATTEMPTS });
          if (got) frozen.push(got.claim);
        }
        const crashing = crashingDb(db, 1 + Math.floor(env.random() * opsPerRun));
        await processJobs({ ...ctx, db: crashing.db }, { concurrency: CONCURRENCY }).catch(() => undefined);
        clock.advance(LEASE_MS + 1_000);
        for (let i = 0; i < 5; i++) {
          const s = await processJobs(ctx, { concurrency: CONCURRENCY });
          if (!s.moreDue) break;
        }
        // The frozen processor wakes up and reports success for the jobs it claimed long ago.
        let refused = 0;
        for (const claim of frozen) if (!(await recordSuccess(db, claim, new Date(clock.now())))) refused++;
        tally.rejections(frozen.length, refused);
        tally.check(frozen.length === 2, `trial ${t}: the frozen processor claimed ${frozen.length} jobs`);

        const jobs = await db.collection<ProcessedJobDoc>(COLLECTIONS.jobs).find({ organizationId: orgId }).toArray();
        const succeeded = jobs.filter((j) => j.status === 'succeeded').length;
        const mine = receiver.deliveries.filter((d) => keys.has(d.key));
        const pairs = new Set(mine.map((d) => `${d.key}#${d.attempt}`));
        redelivered += mine.length - new Set(mine.map((d) => d.key)).size;
        tally.result.events += keys.size;
        tally.result.jobsExpected += keys.size;
        tally.result.jobsFound += succeeded;
        tally.result.lost += keys.size - succeeded;
        tally.result.duplicated += mine.length - pairs.size + (jobs.length - new Set(jobs.map((j) => j.key)).size);
        tally.check(jobs.length === keys.size, `trial ${t}: ${jobs.length} job documents for ${keys.size} jobs`);
      }
      tally.note(`jobs found = jobs that ended succeeded; duplicated = a (job, attempt) delivered twice or a second job document; redeliveries of an abandoned attempt as the next attempt (same Idempotency-Key, at-least-once): ${redelivered}`);
      return tally.done();
    } finally {
      await receiver.close();
      await db.dropDatabase().catch(() => undefined);
    }
  },
};

/** Queue `n` jobs for one organization the way the dispatcher does (planJobs); returns their keys. */
async function queueJobs(db: Db, receiver: WebhookReceiver, orgId: string, n: number): Promise<Set<string>> {
  await seedWorkflow(db, orgId, receiver.url);
  const registry = await loadWorkflows(db, orgId);
  const now = new Date(Date.now() - 1_000);
  const plan = planJobs(
    Array.from({ length: n }, (_, i) => ({ operationType: 'insert' as const, document: submission(orgId, i) as unknown as Record<string, unknown>, eventId: null, clusterTime: null, wallTime: null })),
    registry,
    { source: `org:${orgId}`, path: 'change_stream', now, orgId },
  );
  await db.collection(COLLECTIONS.jobs).insertMany(plan.jobs.map((j) => ({ ...j })));
  return new Set(plan.jobs.map((j) => j.key));
}
