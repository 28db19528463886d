import { ObjectId, type Db } from 'mongodb';
import type { WorkflowStep, ProcessedJobDoc } from '../../../lib/data/documents.js';
import { COLLECTIONS } from '../../../lib/data/mongo.js';

/** A job as the dispatcher creates it: queued, no attempts, due at `runAt`. */
export function newJob(i: number, steps: WorkflowStep[], at: Date, overrides: Partial<ProcessedJobDoc> = {}): ProcessedJobDoc {
  const submissionId = new ObjectId().toHexString();
  const workflowId = overrides.workflowId ?? 'wf1';
  return {
    _id: new ObjectId(),
    key: `${workflowId}:${submissionId}:insert`,
    organizationId: 'acme',
    workflowId,
    workflowName: 'Notify',
    formId: 'contact',
    submissionId,
    source: 'org:acme',
    event: 'insert',
    createdBy: 'change_stream',
    seenBy: ['change_stream'],
    status: 'queued',
    attempts: 0,
    runAt: at,
    lease: null,
    lastError: null,
    steps,
    submission: { _id: submissionId, organizationId: 'acme', formId: 'contact', data: { i } },
    eventClusterTime: null,
    eventWallTime: null,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  };
}

export async function insertJobs(db: Db, jobs: ProcessedJobDoc[]): Promise<ProcessedJobDoc[]> {
  if (jobs.length) await db.collection<ProcessedJobDoc>(COLLECTIONS.jobs).insertMany(jobs);
  return jobs;
}

export async function getJob(db: Db, key: string): Promise<ProcessedJobDoc> {
  const job = await db.collection<ProcessedJobDoc>(COLLECTIONS.jobs).findOne({ key });
  if (!job) throw new Error(`job ${key} not found`);
  return job;
}

export async function allJobs(db: Db): Promise<ProcessedJobDoc[]> {
  return db.collection<ProcessedJobDoc>(COLLECTIONS.jobs).find({}).sort({ _id: 1 }).toArray();
}

/** A promise with its resolver, to wait for an event instead of sleeping. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
