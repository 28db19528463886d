/**
 * Building blocks the bench sections share: an AppContext over a bench database (the product's own
 * composition root, with a silent logger and no publisher), workflows, and submission backlogs.
 */
import { ObjectId, type Db, type MongoClient } from 'mongodb';
import { loadConfig } from '../../lib/platform/config.js';
import { buildContext, type AppContext } from '../../lib/platform/context.js';
import { systemClock, type Clock } from '../../lib/platform/clock.js';
import { silentLogger } from '../../lib/platform/log.js';
import { COLLECTIONS, submissionsCollection } from '../../lib/data/mongo.js';
import type { SubmissionDoc, WorkflowDoc } from '../../lib/data/documents.js';

/**
 * Configuration the bench runs with: change streams on for every organization, dual mode (so the
 * explicit path dispatches too), the default batch size of 100. Everything else is the product default
 * unless a section says otherwise.
 */
export const BENCH_ENV: Record<string, string> = {
  USE_CHANGE_STREAMS: 'true',
  STREAM_LAYOUT: 'collection',
  CHANGE_STREAMS_ALL_ORGS: 'true',
  TRIGGER_MODE: 'dual',
  DRAIN_BATCH_SIZE: '100',
  LOG_LEVEL: 'silent',
  // The benchmark's webhook sink listens on loopback, which the processor refuses unless allowed.
  WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8',
};

export async function benchContext(
  uri: string,
  client: MongoClient,
  db: Db,
  env: Record<string, string> = {},
  clock: Clock = systemClock,
): Promise<AppContext> {
  const config = loadConfig({ MONGODB_URI: uri, MONGODB_DB: db.databaseName, ...BENCH_ENV, ...env });
  return buildContext(config, { client, db, clock, log: silentLogger, publisher: null });
}

/** One active workflow on form `contact` of `orgId`, with a webhook step to `url`. */
export async function seedWorkflow(db: Db, orgId: string, url = 'http://127.0.0.1:9/hook'): Promise<WorkflowDoc> {
  const wf: WorkflowDoc = {
    _id: new ObjectId().toHexString(),
    organizationId: orgId,
    formId: 'contact',
    name: 'Notify',
    status: 'active',
    steps: [{ type: 'webhook', url }],
    updatedAt: new Date(),
  };
  await db.collection<WorkflowDoc>(COLLECTIONS.workflows).insertOne(wf);
  return wf;
}

/** A submission shaped like the platform's (a few fields of form data, ~300 bytes of BSON). */
export function submission(orgId: string, i: number, id = new ObjectId()): SubmissionDoc {
  return {
    _id: id,
    organizationId: orgId,
    formId: 'contact',
    data: { name: `User ${i}`, email: `user${i}@example.com`, message: `Hello from submission ${i}`, score: i % 100 },
    submittedAt: new Date(),
  };
}

/** Insert `n` submissions in insertMany batches; returns their ids (hex) and the insert time. */
export async function insertBacklog(db: Db, orgId: string, n: number, batch = 1000): Promise<{ ids: string[]; ms: number }> {
  const coll = db.collection<SubmissionDoc>(submissionsCollection(orgId));
  const ids: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i += batch) {
    const docs = Array.from({ length: Math.min(batch, n - i) }, (_, j) => submission(orgId, i + j));
    await coll.insertMany(docs, { ordered: true });
    for (const d of docs) ids.push((d._id as ObjectId).toHexString());
  }
  return { ids, ms: performance.now() - t0 };
}

/** Lost and duplicated jobs among `ids`, counted from `workflow_jobs` (one workflow per org). */
export async function countJobs(db: Db, orgId: string, ids: readonly string[]): Promise<{ expected: number; found: number; lost: number; duplicated: number }> {
  const counts = new Map<string, number>();
  const cursor = db.collection(COLLECTIONS.jobs).find({ organizationId: orgId }, { projection: { _id: 0, submissionId: 1 }, batchSize: 10_000 });
  let found = 0;
  for await (const j of cursor) {
    found++;
    counts.set(j.submissionId as string, (counts.get(j.submissionId as string) ?? 0) + 1);
  }
  let lost = 0;
  let duplicated = 0;
  for (const id of ids) {
    const c = counts.get(id) ?? 0;
    if (c === 0) lost++;
    else duplicated += c - 1;
  }
  return { expected: ids.length, found, lost, duplicated };
}
