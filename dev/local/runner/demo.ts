import type { Db } from 'mongodb';
import { COLLECTIONS, submissionsCollection } from '../../../lib/data/mongo.js';
import type { CheckpointDoc } from '../../../lib/data/documents.js';
import type { SubmissionDoc, WorkflowDoc } from '../../../lib/data/documents.js';

/**
 * Demo data for `npm start`: one organization, one active workflow whose webhook step posts to the
 * local sink, and a steady trickle of submissions, so a newcomer sees submissions become jobs and
 * jobs run. Everything it writes is in the demo organization only.
 */
export const DEMO_ORG = 'demo';
const FORM = 'signup';
const PLANS = ['free', 'team', 'enterprise'];

export interface DemoCounters {
  submissions: number;
  sinkHits: number;
}

export interface Demo {
  counters: DemoCounters;
  /** Count one webhook delivery received by the sink. */
  hit(): void;
  /** One progress line: submissions, jobs waiting for a first attempt / retrying / running / succeeded / dead, lag of the demo stream, sink hits. */
  progress(nowMs: number): Promise<string>;
  stop(): Promise<void>;
}

export async function seedDemo(db: Db, sinkUrl: string, now: Date): Promise<void> {
  await db.collection<WorkflowDoc>(COLLECTIONS.workflows).updateOne(
    { _id: 'demo-welcome-webhook' },
    {
      $set: {
        organizationId: DEMO_ORG,
        formId: FORM,
        name: 'Welcome webhook',
        status: 'active',
        trigger: { on: ['insert'] },
        steps: [{ type: 'webhook', url: sinkUrl }],
        updatedAt: now,
      },
    },
    { upsert: true },
  );
}

/** Insert one submission every `intervalMs` until stopped. */
/**
 * Insert a demo submission every `intervalMs` and report progress. `streamId` is the stream that
 * serves the demo organization (`platformStreamOf`: a partition in the database layout).
 */
export function startDemo(db: Db, opts: { intervalMs: number; now: () => number; streamId: string; onError?: (error: unknown) => void }): Demo {
  const counters: DemoCounters = { submissions: 0, sinkHits: 0 };
  const submissions = db.collection<Omit<SubmissionDoc, '_id'>>(submissionsCollection(DEMO_ORG));
  let pending: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    const n = counters.submissions + 1;
    pending = submissions
      .insertOne({
        organizationId: DEMO_ORG,
        formId: FORM,
        data: { email: `user${n}@example.com`, plan: PLANS[n % PLANS.length] },
        submittedAt: new Date(opts.now()),
      })
      .then(() => {
        counters.submissions = n;
      })
      .catch((error: unknown) => opts.onError?.(error));
  }, opts.intervalMs);
  return {
    counters,
    hit: () => {
      counters.sinkHits += 1;
    },
    async progress(nowMs) {
      const jobs = db.collection(COLLECTIONS.jobs);
      const [queued, retrying, running, succeeded, dead, cp] = await Promise.all([
        jobs.countDocuments({ organizationId: DEMO_ORG, status: 'queued' }),
        // Queued after a failed attempt (waiting for its backoff), as against waiting for a first attempt.
        jobs.countDocuments({ organizationId: DEMO_ORG, status: 'queued', attempts: { $gt: 0 } }),
        jobs.countDocuments({ organizationId: DEMO_ORG, status: 'running' }),
        jobs.countDocuments({ organizationId: DEMO_ORG, status: 'succeeded' }),
        jobs.countDocuments({ organizationId: DEMO_ORG, status: 'dead' }),
        db.collection<CheckpointDoc>(COLLECTIONS.checkpoints).findOne({ _id: opts.streamId }),
      ]);
      // How far behind the stream is: the newest job's insert → job time (an idle stream's token
      // time only moves every DRAIN_IDLE_SAVE_MS, so the token's age is no measure of lag).
      const newest = await jobs.findOne({ organizationId: DEMO_ORG, eventWallTime: { $type: 'date' } }, { sort: { createdAt: -1 }, projection: { createdAt: 1, eventWallTime: 1 } });
      const lag = !cp
        ? 'not drained yet'
        : newest
          ? `${cp.state}, last insert→job ${Math.max(0, (newest.createdAt as Date).getTime() - (newest.eventWallTime as Date).getTime())} ms`
          : cp.state;
      return `submissions ${counters.submissions} · jobs new ${queued - retrying} retrying ${retrying} running ${running} succeeded ${succeeded} dead ${dead} · ${opts.streamId} ${lag} · webhooks received ${counters.sinkHits}`;
    },
    async stop() {
      clearInterval(timer);
      await pending;
    },
  };
}
