import { describe, expect, it, inject } from 'vitest';
import { MongoClient, ObjectId } from 'mongodb';
import { backendKind, useTestDb } from '../support/mongo.js';
import { startEmulator } from '../../dev/mongo/server.js';
import { insertSubmissions, jobCounts, seedWorkflow, testContext } from '../support/context.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream, sharedStream, listStreams, resolveStream } from '../../lib/streams/refs.js';
import { dispatchExplicit, redispatchSubmission } from '../../lib/dispatch/explicit.js';
import { upsertDataSource } from '../../lib/streams/sources.js';
import { COLLECTIONS, submissionsCollection } from '../../lib/data/mongo.js';
import type { SubmissionDoc } from '../../lib/data/documents.js';

const mongo = useTestDb('drain_modes');
const KEY = Buffer.alloc(32, 7).toString('base64');

describe('dual mode: the explicit call and the stream race on the same submissions', () => {
  it('gives one job per submission, and the job records that both paths saw it', async () => {
    const orgId = 'dual';
    const ctx = await testContext(mongo.db(), mongo.client(), { TRIGGER_MODE: 'dual' });
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const docs: SubmissionDoc[] = Array.from({ length: 60 }, (_, i) => ({ _id: new ObjectId(), organizationId: orgId, formId: 'contact', data: { i }, submittedAt: new Date() }));
    // The app saves then calls the explicit path; a drain runs at the same time.
    const app = (async () => {
      for (const doc of docs) {
        await mongo.db().collection<SubmissionDoc>(submissionsCollection(orgId)).insertOne(doc);
        await dispatchExplicit(ctx, doc);
      }
    })();
    const drain = drainStream(ctx, orgStream(orgId), { windowMs: 3000 });
    await Promise.all([app, drain]);
    await drainStream(ctx, orgStream(orgId));
    const counts = await jobCounts(mongo.db(), { organizationId: orgId });
    expect(docs.every((d) => counts.get((d._id as ObjectId).toHexString()) === 1)).toBe(true);
    const jobs = await mongo.db().collection(COLLECTIONS.jobs).find({ organizationId: orgId }).toArray();
    expect(jobs.every((j) => j.seenBy.includes('explicit') && j.seenBy.includes('change_stream'))).toBe(true);
  });

  it('in change_streams mode the explicit call does nothing; in explicit mode the org has no stream', async () => {
    const cs = await testContext(mongo.db(), mongo.client(), { TRIGGER_MODE: 'change_streams' });
    await seedWorkflow(mongo.db(), { organizationId: 'csonly' });
    const doc = { _id: new ObjectId(), organizationId: 'csonly', formId: 'contact', data: {}, submittedAt: new Date() };
    expect(await dispatchExplicit(cs, doc)).toMatchObject({ mode: 'change_streams', dispatched: false });
    const off = await testContext(mongo.db(), mongo.client(), { USE_CHANGE_STREAMS: 'false' });
    expect(await dispatchExplicit(off, doc)).toMatchObject({ mode: 'explicit', dispatched: true, jobsCreated: 1 });
    expect(await listStreams(off)).toEqual([]);
    await expect(resolveStream(off, { orgId: 'csonly' })).rejects.toMatchObject({ status: 409 });
    await expect(resolveStream(cs, { orgId: 'nobody' })).rejects.toMatchObject({ status: 404 });
    await expect(resolveStream(cs, { orgId: 'bad id!' })).rejects.toMatchObject({ status: 400 });
  });

  it('re-dispatching one submission by hand never duplicates its job', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'redo' });
    const [id] = await insertSubmissions(mongo.db(), 1, { orgId: 'redo' });
    expect(await redispatchSubmission(ctx, 'redo', id!)).toMatchObject({ jobsCreated: 1 });
    expect(await redispatchSubmission(ctx, 'redo', id!)).toMatchObject({ jobsCreated: 0, duplicates: 1 });
    await expect(redispatchSubmission(ctx, 'redo', new ObjectId().toHexString())).rejects.toMatchObject({ status: 404 });
  });
});

describe('update-triggered workflows and filters', () => {
  it('fires on matching inserts and on each update event, with distinct keys per event', async () => {
    const orgId = 'upd';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId, _id: 'on-insert-big', trigger: { filter: { 'data.amount': { $gte: 100 } } } });
    await seedWorkflow(mongo.db(), { organizationId: orgId, _id: 'on-update', trigger: { on: ['update', 'replace'] } });
    await drainStream(ctx, orgStream(orgId));
    const [small, big] = await insertSubmissions(mongo.db(), 2, { orgId, data: (i) => ({ amount: i === 0 ? 5 : 500 }) });
    const coll = mongo.db().collection(submissionsCollection(orgId));
    await coll.updateOne({ _id: new ObjectId(small) }, { $set: { 'data.amount': 6 } });
    await coll.updateOne({ _id: new ObjectId(small) }, { $set: { 'data.amount': 7 } });
    await coll.replaceOne({ _id: new ObjectId(big) }, { organizationId: orgId, formId: 'contact', data: { amount: 1 }, submittedAt: new Date() });
    await drainStream(ctx, orgStream(orgId));
    const jobs = await mongo.db().collection(COLLECTIONS.jobs).find({ organizationId: orgId }).toArray();
    const byWf = (wf: string) => jobs.filter((j) => j.workflowId === wf);
    expect(byWf('on-insert-big').map((j) => j.submissionId)).toEqual([big]);
    expect(byWf('on-update').map((j) => j.event).sort()).toEqual(['replace', 'update', 'update']);
    expect(new Set(byWf('on-update').map((j) => j.key)).size).toBe(3);
    // A rerun replays nothing new.
    await drainStream(ctx, orgStream(orgId));
    expect(await mongo.db().collection(COLLECTIONS.jobs).countDocuments({ organizationId: orgId })).toBe(4);
  });
});

describe('legacy shared collections', () => {
  it('take the organization from each document and dispatch only for orgs on change streams', async () => {
    const ctx = await testContext(mongo.db(), mongo.client(), { CHANGE_STREAMS_ALL_ORGS: 'false', CHANGE_STREAMS_ORG_IDS: 'shA' });
    await seedWorkflow(mongo.db(), { organizationId: 'shA' });
    await seedWorkflow(mongo.db(), { organizationId: 'shB' });
    const stream = sharedStream('global_submissions');
    await drainStream(ctx, stream);
    const a = await insertSubmissions(mongo.db(), 5, { orgId: 'shA', collection: 'global_submissions' });
    const b = await insertSubmissions(mongo.db(), 5, { orgId: 'shB', collection: 'global_submissions' });
    const run = await drainStream(ctx, stream);
    expect(run.jobsCreated).toBe(5);
    const counts = await jobCounts(mongo.db(), { source: 'shared:global_submissions' });
    expect(a.every((id) => counts.get(id) === 1)).toBe(true);
    expect(b.some((id) => counts.has(id))).toBe(false);
    expect((await listStreams(ctx)).map((s) => s.id)).toEqual(['org:shA', 'shared:global_submissions', 'shared:form_submissions']);
  });
});

describe('external data source (the organization\'s own cluster)', () => {
  it('drains a collection on another server through a stored, encrypted connection string', async () => {
    // On the emulator, the organization's cluster is a second emulator instance; elsewhere the same
    // server under another database (the connection string is what is under test).
    const second = backendKind() === 'emulator' ? await startEmulator({ port: 0 }) : null;
    const externalUri = second?.uri ?? inject('mongoUri');
    const external = await MongoClient.connect(externalUri);
    const extDb = external.db(`ext_${new ObjectId().toHexString().slice(-6)}`);
    try {
      const ctx = await testContext(mongo.db(), mongo.client(), { DATA_SOURCE_KEY: KEY });
      await seedWorkflow(mongo.db(), { organizationId: 'extorg' });
      await upsertDataSource(mongo.db(), ctx.config.DATA_SOURCE_KEY, { organizationId: 'extorg', uri: externalUri, db: extDb.databaseName, collection: 'forms_data' }, new Date());
      const stored = await mongo.db().collection(COLLECTIONS.dataSources).findOne({ organizationId: 'extorg' });
      expect(stored?.uri).not.toContain(externalUri);
      const stream = await resolveStream(ctx, { orgId: 'extorg' });
      expect(stream).toMatchObject({ id: 'source:extorg', kind: 'source', db: extDb.databaseName, collection: 'forms_data' });
      await drainStream(ctx, stream);
      const ids = await insertSubmissions(extDb, 12, { orgId: 'extorg', collection: 'forms_data' });
      const run = await drainStream(ctx, stream);
      expect(run.jobsCreated).toBe(12);
      const counts = await jobCounts(mongo.db(), { source: 'source:extorg' });
      expect(ids.every((id) => counts.get(id) === 1)).toBe(true);
      expect(JSON.stringify(run)).not.toContain(externalUri);
    } finally {
      await extDb.dropDatabase().catch(() => undefined);
      await external.close();
      await second?.close();
    }
  });
});
