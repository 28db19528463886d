/**
 * Replaying dead jobs. Promises tried: "all" is never the meaning of an empty filter; a dry run
 * writes nothing; a replayed job runs again from attempt 1 and can succeed; history is kept.
 */
import { ObjectId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { BadRequestError } from '../../lib/platform/errors.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { processJobs } from '../../lib/jobs/process.js';
import { requeueDeadJobs } from '../../lib/jobs/requeue.js';
import type { WorkflowDoc, WorkflowStep, ProcessedJobDoc } from '../../lib/data/documents.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { allJobs, getJob, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const t = useJobsHarness('jobs_retry', (h) => ({ receiver, clock, ctx } = h));

const now = () => new Date(clock.now());
const at = (isoHour: number) => new Date(Date.UTC(2030, 0, 1, isoHour));

function dead(i: number, over: Partial<ProcessedJobDoc> = {}): ProcessedJobDoc {
  return newJob(i, [{ type: 'webhook', url: receiver.url }], at(10), {
    status: 'dead',
    attempts: 3,
    deadReason: 'attempts_exhausted',
    finishedAt: at(11),
    lastError: { code: 'webhook_server_error', message: `answered 500 (#${i})`, retryable: true, at: at(11) },
    ...over,
  });
}

async function refused(req: unknown): Promise<BadRequestError> {
  const error = await requeueDeadJobs(ctx, req).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BadRequestError);
  return error as BadRequestError;
}

describe('requeueDeadJobs: refusals', () => {
  it.each([
    ['an empty filter', { filter: {} }, /empty filter would select every dead job/],
    ['an empty filter on a dry run', { filter: {}, dryRun: true }, /empty filter/],
    ['all: false', { filter: {}, all: false }, /all must be true/],
    ['empty ids', { ids: [] }, /ids must not be empty/],
    ['an empty id', { ids: [''] }, /invalid retry request/],
    ['ids and filter together', { ids: ['a'], filter: { organizationId: 'acme' } }, /invalid retry request/],
    ['neither', {}, /invalid retry request/],
    ['not an object', 'everything', /invalid retry request/],
    ['a bad date', { filter: { from: 'yesterday' } }, /invalid retry request/],
    ['from after to', { filter: { from: at(12).toISOString(), to: at(10).toISOString() } }, /from must be before to/],
    ['an unknown filter field', { filter: { status: 'queued' } }, /invalid retry request/],
  ])('refuses %s', async (_name, req, message) => {
    await insertJobs(t.db, [dead(0)]);
    const before = await allJobs(t.db);
    expect((await refused(req)).message).toMatch(message);
    expect(await allJobs(t.db)).toEqual(before);
  });
});

describe('requeueDeadJobs: selection and dry run', () => {
  it('a dry run reports count and sample and writes nothing', async () => {
    await insertJobs(t.db, [dead(0), dead(1), dead(2, { organizationId: 'globex' }), newJob(3, [], now())]);
    const before = await allJobs(t.db);
    const result = await requeueDeadJobs(ctx, { filter: { organizationId: 'acme' }, dryRun: true });
    expect(result).toEqual({ dryRun: true, matched: 2, requeued: 0, sample: before.slice(0, 2).map((j) => j.key) });
    expect(await allJobs(t.db)).toEqual(before);
  });

  it('all: true with an empty filter selects every dead job, and only dead jobs', async () => {
    await insertJobs(t.db, [dead(0), dead(1, { organizationId: 'globex' }), newJob(2, [], now(), { status: 'succeeded' })]);
    const result = await requeueDeadJobs(ctx, { filter: {}, all: true });
    expect(result).toMatchObject({ matched: 2, requeued: 2 });
    expect((await allJobs(t.db)).map((j) => j.status)).toEqual(['queued', 'queued', 'succeeded']);
  });

  it.each([
    ['organization', { organizationId: 'globex' }, [1]],
    ['workflow', { workflowId: 'wf2' }, [2]],
    ['organization and workflow', { organizationId: 'acme', workflowId: 'wf1' }, [0, 3]],
    ['from (inclusive)', { from: at(9).toISOString() }, [0, 1, 2]],
    ['to (exclusive)', { to: at(9).toISOString() }, [3]],
    ['range', { from: at(8).toISOString(), to: at(10).toISOString() }, [3]],
  ])('filter by %s', async (_name, filter, expected) => {
    const jobs = await insertJobs(t.db, [
      dead(0),
      dead(1, { organizationId: 'globex' }),
      dead(2, { workflowId: 'wf2' }),
      dead(3, { createdAt: at(8) }),
    ]);
    const result = await requeueDeadJobs(ctx, { filter });
    expect(result.requeued).toBe(expected.length);
    expect(result.sample.sort()).toEqual(expected.map((i) => jobs[i]!.key).sort());
  });

  it('by ids: keys and _ids; jobs that are not dead are left alone', async () => {
    const [a, b, c] = await insertJobs(t.db, [dead(0), dead(1), newJob(2, [], now(), { status: 'running', attempts: 1 })]);
    const result = await requeueDeadJobs(ctx, { ids: [a!.key, b!._id.toHexString(), c!.key, new ObjectId().toHexString(), 'nope'] });
    expect(result).toMatchObject({ matched: 2, requeued: 2 });
    expect((await getJob(t.db, c!.key)).status).toBe('running');
  });
});

describe('requeueDeadJobs: requeue', () => {
  it('requeues due now with attempts reset, keeping the last error in previousErrors', async () => {
    const [job] = await insertJobs(t.db, [dead(0, { previousErrors: [{ code: 'older', message: 'x', retryable: true, at: at(1) }] })]);
    await requeueDeadJobs(ctx, { ids: [job!.key] });
    const stored = await getJob(t.db, job!.key);
    expect(stored).toMatchObject({ status: 'queued', attempts: 0, lease: null, lastError: null, finishedAt: null, replays: 1, replayedAt: now() });
    expect(stored.runAt).toEqual(now());
    expect(stored.deadReason).toBeUndefined();
    expect(stored.previousErrors?.map((e) => e.code)).toEqual(['older', 'webhook_server_error']);
    // A second request finds nothing dead: no double requeue.
    expect(await requeueDeadJobs(ctx, { ids: [job!.key] })).toMatchObject({ matched: 0, requeued: 0 });
  });

  it('dead jobs replayed after the receiver recovers then succeed', async () => {
    const jobs = await insertJobs(t.db, [0, 1, 2].map((i) => newJob(i, [{ type: 'webhook', url: receiver.url }], now())));
    receiver.behave = () => ({ status: 410, body: 'gone' });
    expect(await processJobs(ctx)).toMatchObject({ dead: 3 });
    receiver.behave = () => ({ status: 200 });
    expect(await requeueDeadJobs(ctx, { filter: { workflowId: 'wf1' } })).toMatchObject({ matched: 3, requeued: 3 });
    expect(await processJobs(ctx)).toMatchObject({ claimed: 3, succeeded: 3 });
    for (const job of jobs) {
      const stored = await getJob(t.db, job.key);
      expect(stored).toMatchObject({ status: 'succeeded', attempts: 1, replays: 1 });
      expect(stored.previousErrors?.[0]).toMatchObject({ code: 'webhook_rejected' });
      expect(receiver.hits.filter((h) => h.key === job.key).map((h) => h.attempt)).toEqual([1, 1]);
    }
  });

  it('requeues more jobs than one write batch', async () => {
    await insertJobs(t.db, Array.from({ length: 1_203 }, (_, i) => dead(i)));
    const result = await requeueDeadJobs(ctx, { filter: { organizationId: 'acme' } });
    expect(result).toMatchObject({ matched: 1_203, requeued: 1_203 });
    expect(result.sample).toHaveLength(20);
    expect(await t.db.collection(COLLECTIONS.jobs).countDocuments({ status: 'queued' })).toBe(1_203);
  });
});

describe('requeueDeadJobs: the workflow as it is now, deliberate redelivery, and why nothing was requeued', () => {
  const workflows = () => t.db.collection<WorkflowDoc>(COLLECTIONS.workflows);
  async function workflow(id: string, steps: WorkflowStep[]) {
    await workflows().deleteMany({});
    await workflows().insertOne({ _id: id, organizationId: 'acme', formId: 'contact', name: 'Notify', status: 'active', steps, updatedAt: now() });
  }

  it('useCurrentWorkflow: the dry run shows which jobs change and how, with URLs redacted, and writes nothing', async () => {
    const broken = 'https://user:pw@wrong.example/hook?token=s3cret';
    await workflow('wf1', [{ type: 'webhook', url: receiver.url }]);
    const jobs = await insertJobs(t.db, [0, 1, 2].map((i) => dead(i, { steps: [{ type: 'webhook', url: broken }] })));
    await insertJobs(t.db, [dead(3)]); // already has the current steps
    const before = await allJobs(t.db);
    const result = await requeueDeadJobs(ctx, { filter: { workflowId: 'wf1' }, useCurrentWorkflow: true, dryRun: true });
    expect(result).toMatchObject({ dryRun: true, matched: 4, requeued: 0, unchanged: 1 });
    expect(result.changes).toEqual([
      { workflowId: 'wf1', from: ['webhook https://wrong.example/hook'], to: [`webhook ${receiver.url}`], jobs: 3, sample: jobs.map((j) => j.key) },
    ]);
    expect(JSON.stringify(result)).not.toMatch(/s3cret|pw@/);
    expect(await allJobs(t.db)).toEqual(before);
  });

  it('useCurrentWorkflow: jobs that died on the old URL succeed on the fixed one; without it they die again', async () => {
    await workflow('wf1', [{ type: 'webhook', url: 'http://127.0.0.1:1/old' }]);
    const jobs = await insertJobs(t.db, [0, 1].map((i) => newJob(i, [{ type: 'webhook', url: `${receiver.url}-old` }], now())));
    receiver.behave = (hit) => (hit.path.endsWith('-old') ? { status: 404 } : { status: 200 });
    expect(await processJobs(ctx)).toMatchObject({ dead: 2 });
    // The workflow is fixed.
    await workflow('wf1', [{ type: 'webhook', url: receiver.url }]);
    expect(await requeueDeadJobs(ctx, { filter: { workflowId: 'wf1' } })).toMatchObject({ requeued: 2 });
    expect(await processJobs(ctx)).toMatchObject({ dead: 2, succeeded: 0 });
    expect(await requeueDeadJobs(ctx, { filter: { workflowId: 'wf1' }, useCurrentWorkflow: true })).toMatchObject({ requeued: 2, changes: [{ jobs: 2 }] });
    expect(await processJobs(ctx)).toMatchObject({ succeeded: 2, dead: 0 });
    for (const job of jobs) {
      const stored = await getJob(t.db, job.key);
      expect(stored.steps).toEqual([{ type: 'webhook', url: receiver.url }]);
      expect(stored.history?.map((h) => [h.kind, h.stepsReplaced ?? false])).toEqual([['replay', false], ['replay', true]]);
    }
  });

  it('useCurrentWorkflow: a job whose workflow is gone is left dead and listed', async () => {
    await workflows().deleteMany({});
    const [job] = await insertJobs(t.db, [dead(0, { workflowId: 'wf-gone' })]);
    const result = await requeueDeadJobs(ctx, { ids: [job!.key], useCurrentWorkflow: true });
    expect(result).toMatchObject({ matched: 0, requeued: 0, notRequeued: [{ id: job!.key, status: 'workflow_missing' }] });
    expect(result.message).toMatch(/workflow wf-gone no longer exists/);
    expect((await getJob(t.db, job!.key)).status).toBe('dead');
  });

  it('redeliver: a succeeded job is delivered again with the same Idempotency-Key, recorded as a manual redelivery', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url: receiver.url }], now())]);
    expect(await processJobs(ctx)).toMatchObject({ succeeded: 1 });
    const first = await getJob(t.db, job!.key);
    // Without redeliver the succeeded job is not touched, and the answer says why.
    const refusedResult = await requeueDeadJobs(ctx, { ids: [job!.key] });
    expect(refusedResult).toMatchObject({ matched: 0, notRequeued: [{ id: job!.key, status: 'succeeded' }] });
    expect(refusedResult.message).toMatch(/succeeded.*"redeliver": true/);
    clock.advance(5_000);
    expect(await requeueDeadJobs(ctx, { ids: [job!.key], redeliver: true })).toMatchObject({ matched: 1, requeued: 1, redelivered: 1 });
    expect(await processJobs(ctx)).toMatchObject({ succeeded: 1 });
    const keys = receiver.hits.filter((h) => h.key === job!.key);
    expect(keys).toHaveLength(2);
    const stored = await getJob(t.db, job!.key);
    expect(stored).toMatchObject({ status: 'succeeded', redeliveries: 1 });
    expect(stored.replays).toBeUndefined();
    expect(stored.history).toEqual([{ kind: 'manual_redelivery', at: new Date(first.finishedAt!.getTime() + 5_000), previousStatus: 'succeeded', previousFinishedAt: first.finishedAt }]);
  });

  it('says why when the named jobs are not dead, or when a filter finds only jobs in other states', async () => {
    const [queued, running] = await insertJobs(t.db, [newJob(0, [], now()), newJob(1, [], now(), { status: 'running', attempts: 1 }), newJob(2, [], now(), { status: 'succeeded' })]);
    const byIds = await requeueDeadJobs(ctx, { ids: [queued!.key, running!._id.toHexString(), 'nope'] });
    expect(byIds.notRequeued).toEqual([
      { id: queued!.key, status: 'queued', reason: expect.stringMatching(/queued and will run/) },
      { id: running!._id.toHexString(), status: 'running', reason: expect.stringMatching(/attempt is running/) },
      { id: 'nope', status: 'not_found', reason: 'no job has this key or _id' },
    ]);
    expect(byIds.message).toMatch(/^no dead job among the ids given/);
    const byFilter = await requeueDeadJobs(ctx, { filter: { organizationId: 'acme' } });
    expect(byFilter.matched).toBe(0);
    expect(byFilter.notRequeued?.map((n) => n.id)).toEqual(['1 queued', '1 running', '1 succeeded']);
    expect(byFilter.message).toMatch(/no dead job matches the filter; it matches 1 queued, 1 running, 1 succeeded/);
  });
});
