import { describe, expect, it } from 'vitest';
import { BSON } from 'mongodb';
import { useTestDb } from '../support/mongo.js';
import { seedWorkflow, testContext } from '../support/context.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { COLLECTIONS, submissionsCollection } from '../../lib/data/mongo.js';
import { dispatchExplicit, redispatchSubmission } from '../../lib/dispatch/explicit.js';
import type { SubmissionDoc } from '../../lib/data/documents.js';

const mongo = useTestDb('submission_ids');

describe('job keys: one job per submission for every _id type', () => {
  it('compound, numeric and string _ids that look alike get one job each, on every path', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'ids' });
    await drainStream(ctx, orgStream('ids'));
    const ids: unknown[] = [
      { form: 'contact', seq: 1 },
      { form: 'contact', seq: 2 },
      1,
      '1',
      new BSON.ObjectId(),
      BSON.Long.fromString('708198820995006475'),
      new Date('2025-01-31T12:00:00Z'),
    ];
    const docs = ids.map((_id) => ({ _id, organizationId: 'ids', formId: 'contact', data: {}, submittedAt: new Date() }));
    await mongo.db().collection(submissionsCollection('ids')).insertMany(docs as never[]);

    const run = await drainStream(ctx, orgStream('ids'));
    expect(run).toMatchObject({ status: 'completed', events: ids.length, jobsCreated: ids.length, duplicates: 0 });
    const jobs = await mongo.db().collection(COLLECTIONS.jobs).find({ organizationId: 'ids' }).toArray();
    expect(new Set(jobs.map((j) => j.submissionId)).size).toBe(ids.length);
    expect(jobs.find((j) => j.submissionId === (ids[4] as BSON.ObjectId).toHexString())).toBeDefined();

    // The explicit path, given what the application saved, computes the same keys: no duplicates.
    for (const doc of docs) {
      const r = await dispatchExplicit(ctx, doc as unknown as SubmissionDoc);
      expect(r).toMatchObject({ jobsCreated: 0, duplicates: 1 });
    }
    // A manual re-dispatch by a job's submissionId finds the same submission and the same key.
    for (const job of jobs) {
      const r = await redispatchSubmission(ctx, 'ids', job.submissionId as string);
      expect(r).toMatchObject({ submissionId: job.submissionId, jobsCreated: 0, duplicates: 1 });
    }
    expect(await mongo.db().collection(COLLECTIONS.jobs).countDocuments({ organizationId: 'ids' })).toBe(ids.length);
  });
});
