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
import type { ProcessedJobDoc } from '../../lib/jobs/types.js';
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
    ['all: false', { filter: {}, all: false }, /empty filter/],
    ['empty ids', { ids: [] }, /ids must not be empty/],
    ['an empty id', { ids: [''] }, /invalid retry request/],
    ['ids and filter together', { ids: ['a'], filter: { organizationId: 'acme' } }, /invalid retry request/],
    ['neither', {}, /invalid retry request/],
    ['not an object', 'everything', /invalid retry request/],
    ['a bad date', { filter: { from: 'yesterday' } }, /invalid retry request/],
    ['from after to', { filter: { from: at(12).toISOString(), to: at(10).toISOString() } }, /from must be before filter.to/],
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
