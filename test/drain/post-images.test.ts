/**
 * Issue 14 case 3: update triggers are judged on the state the update left. With
 * `changeStreamPreAndPostImages` on (what `npm run ops -- enable-post-images` sets) the drain reads
 * `fullDocument: 'whenAvailable'` post-images; without, it reads `updateLookup` documents and
 * marks those jobs `judgedOn: 'lookup'` (counted on the run and in status).
 */
import { describe, expect, it } from 'vitest';
import { ObjectId } from 'mongodb';
import { testDbName, useTestDb } from '../support/mongo.js';
import { seedWorkflow, testContext } from '../support/context.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream, partitionStream } from '../../lib/streams/refs.js';
import { COLLECTIONS, ensureIndexes, submissionsCollection } from '../../lib/data/mongo.js';
import { enablePostImages } from '../../lib/drain/images.js';
import { readStatus } from '../../lib/status/report.js';
import type { JobDoc } from '../../lib/data/documents.js';

const mongo = useTestDb('drain_post_images');

/** The example: workflow A (update, filter approved) on form a, B (update, no filter) on form b. */
async function scenario(orgId: string, postImages: boolean) {
  const ctx = await testContext(mongo.db(), mongo.client());
  const a = await seedWorkflow(mongo.db(), { organizationId: orgId, formId: 'a', name: 'A', trigger: { on: ['update'], filter: { 'data.status': 'approved' } } });
  const b = await seedWorkflow(mongo.db(), { organizationId: orgId, formId: 'b', name: 'B', trigger: { on: ['update'] } });
  if (postImages) expect(await enablePostImages(ctx, { orgId })).toEqual([submissionsCollection(orgId)]);
  const coll = mongo.db().collection(submissionsCollection(orgId));
  const ids = { a: new ObjectId(), b: new ObjectId() };
  await coll.insertMany([
    { _id: ids.a, organizationId: orgId, formId: 'a', data: { status: 'new' }, submittedAt: new Date() },
    { _id: ids.b, organizationId: orgId, formId: 'b', data: { status: 'new' }, submittedAt: new Date() },
  ]);
  await drainStream(ctx, orgStream(orgId));
  for (const status of ['approved', 'archived']) await coll.updateMany({ _id: { $in: [ids.a, ids.b] } }, { $set: { 'data.status': status } });
  const run = await drainStream(ctx, orgStream(orgId));
  const jobs = (wf: string) => mongo.db().collection<JobDoc>(COLLECTIONS.jobs).find({ workflowId: wf }, { sort: { eventClusterTime: 1 } }).toArray();
  return { ctx, run, jobsA: await jobs(String(a._id)), jobsB: await jobs(String(b._id)) };
}

const statusOf = (jobs: JobDoc[]) => jobs.map((j) => (j.submission as { data: { status: string } }).data.status);

describe('case 3: update triggers judged on the right document state', () => {
  it('post-images on: A gets one job with the approved snapshot, B two jobs with approved and archived', async () => {
    const { run, jobsA, jobsB } = await scenario('images_on', true);
    expect(statusOf(jobsA)).toEqual(['approved']);
    expect(statusOf(jobsB)).toEqual(['approved', 'archived']);
    expect([...jobsA, ...jobsB].map((j) => j.judgedOn)).toEqual(['post_image', 'post_image', 'post_image']);
    expect(run.judgedOnLookup).toBe(0);
  });

  it('post-images off: the documents are looked up, and the jobs and the run say so (status shows the count)', async () => {
    const { ctx, run, jobsA, jobsB } = await scenario('images_off', false);
    // A lookup sees the later state: both updates of B show archived, A's approval is not seen.
    expect(statusOf(jobsA)).toEqual([]);
    expect(statusOf(jobsB)).toEqual(['archived', 'archived']);
    expect(jobsB.map((j) => j.judgedOn)).toEqual(['lookup', 'lookup']);
    expect(run.judgedOnLookup).toBe(2);
    const status = await readStatus(ctx);
    expect(status.streams.find((s) => s.id === 'org:images_off')?.lastRun?.judgedOnLookup).toBe(2);
  });
});

describe('case 3 on a database-level partition stream', () => {
  it('a collection with post-images is judged on them; updates of one without are looked up and marked lookup', async () => {
    const db = mongo.client().db(testDbName('imgpart'));
    try {
      await ensureIndexes(db);
      const ctx = await testContext(db, mongo.client(), { STREAM_LAYOUT: 'database' });
      const wfOn = await seedWorkflow(db, { organizationId: 'pon', formId: 'b', trigger: { on: ['update'] } });
      const wfOff = await seedWorkflow(db, { organizationId: 'poff', formId: 'b', trigger: { on: ['update'] } });
      expect(await enablePostImages(ctx, { orgId: 'pon' })).toEqual(['submissions_pon']);
      const stream = partitionStream(0, 1);
      const ids = { pon: new ObjectId(), poff: new ObjectId() };
      for (const org of ['pon', 'poff'] as const) {
        await db.collection(submissionsCollection(org)).insertOne({ _id: ids[org], organizationId: org, formId: 'b', data: { status: 'new' }, submittedAt: new Date() });
      }
      await drainStream(ctx, stream);
      for (const status of ['approved', 'archived']) {
        for (const org of ['pon', 'poff'] as const) await db.collection(submissionsCollection(org)).updateOne({ _id: ids[org] }, { $set: { 'data.status': status } });
      }
      const run = await drainStream(ctx, stream);
      const jobs = (wf: string) => db.collection<JobDoc>(COLLECTIONS.jobs).find({ workflowId: wf }, { sort: { eventClusterTime: 1 } }).toArray();
      const on = await jobs(String(wfOn._id));
      const off = await jobs(String(wfOff._id));
      expect(statusOf(on)).toEqual(['approved', 'archived']);
      expect(on.map((j) => j.judgedOn)).toEqual(['post_image', 'post_image']);
      expect(statusOf(off)).toEqual(['archived', 'archived']);
      expect(off.map((j) => j.judgedOn)).toEqual(['lookup', 'lookup']);
      expect(run.judgedOnLookup).toBe(2);
    } finally {
      await db.dropDatabase().catch(() => undefined);
    }
  });
});
