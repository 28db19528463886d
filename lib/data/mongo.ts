import { MongoClient, type Db, type MongoClientOptions } from 'mongodb';

/** Collection names of the data contract (README "Data contract"). */
export const COLLECTIONS = {
  workflows: 'workflows',
  jobs: 'workflow_jobs',
  checkpoints: 'change_stream_checkpoints',
  runs: 'drain_runs',
  deadLetters: 'trigger_dead_letters',
  dataSources: 'data_sources',
  alerts: 'trigger_alerts',
  fanoutTicks: 'fanout_ticks',
  workflowTimeline: 'workflow_timeline',
} as const;

export const LEGACY_SHARED_COLLECTIONS = ['global_submissions', 'form_submissions'] as const;

export function submissionsCollection(orgId: string): string {
  return `submissions_${orgId}`;
}

/** Drain runs are kept this long (TTL index on `startedAt`). */
export const RUN_RETENTION_S = 7 * 24 * 3600;

const clients = new Map<string, Promise<MongoClient>>();

/**
 * One MongoClient per URI per warm serverless instance: created on first use, reused by every
 * later invocation of the same instance. Small pool, since one invocation does one thing at a time.
 */
export function getMongoClient(uri: string, options: MongoClientOptions = {}): Promise<MongoClient> {
  let pending = clients.get(uri);
  if (!pending) {
    const client = new MongoClient(uri, {
      maxPoolSize: 10,
      minPoolSize: 0,
      maxIdleTimeMS: 60_000,
      serverSelectionTimeoutMS: 10_000,
      appName: 'mongo-stream-triggers',
      ...options,
    });
    pending = client.connect().catch((error: unknown) => {
      clients.delete(uri);
      throw error;
    });
    clients.set(uri, pending);
  }
  return pending;
}

/** Close every cached client (tests, local server shutdown). */
export async function closeMongoClients(): Promise<void> {
  const all = [...clients.values()];
  clients.clear();
  await Promise.allSettled(all.map(async (p) => (await p).close()));
}

const indexed = new WeakSet<Db>();

/** Create the indexes the product relies on; idempotent, once per Db handle per instance. */
export async function ensureIndexes(db: Db): Promise<void> {
  if (indexed.has(db)) return;
  await Promise.all([
    db.collection(COLLECTIONS.jobs).createIndexes([
      { key: { key: 1 }, name: 'key_unique', unique: true },
      { key: { status: 1, runAt: 1 }, name: 'status_runAt' },
      { key: { status: 1, finishedAt: 1 }, name: 'status_finishedAt' },
      { key: { organizationId: 1, createdAt: 1 }, name: 'org_createdAt' },
      // The ordering check of the job claim: unfinished jobs of one workflow and submission.
      { key: { submissionId: 1, workflowId: 1, status: 1 }, name: 'submission_workflow_status' },
    ]),
    db.collection(COLLECTIONS.runs).createIndexes([
      { key: { startedAt: 1 }, name: 'startedAt_ttl', expireAfterSeconds: RUN_RETENTION_S },
      { key: { streamId: 1, startedAt: -1 }, name: 'stream_startedAt' },
    ]),
    db.collection(COLLECTIONS.deadLetters).createIndexes([
      { key: { key: 1 }, name: 'key_unique', unique: true },
      { key: { streamId: 1, createdAt: -1 }, name: 'stream_createdAt' },
      // Status: the dead letters not replayed yet, in total and for one page of streams.
      { key: { replayedAt: 1, streamId: 1 }, name: 'replayedAt_stream' },
    ]),
    // Status (lib/status/streams.ts, alerts): settled streams (state idle) by resume point, oldest
    // first; failing ones by equality; the search by organization id prefix.
    db.collection(COLLECTIONS.checkpoints).createIndexes([
      { key: { state: 1, tokenTime: 1, _id: 1 }, name: 'state_tokenTime' },
      { key: { orgId: 1 }, name: 'orgId' },
    ]),
    db.collection(COLLECTIONS.workflows).createIndexes([
      { key: { organizationId: 1, formId: 1, status: 1 }, name: 'org_form_status' },
    ]),
    db.collection(COLLECTIONS.workflowTimeline).createIndexes([
      { key: { workflowId: 1, atPos: 1 }, name: 'workflow_at_unique', unique: true },
      { key: { organizationId: 1 }, name: 'org' },
    ]),
    db.collection(COLLECTIONS.fanoutTicks).createIndexes([
      { key: { lastAt: 1 }, name: 'lastAt_ttl', expireAfterSeconds: RUN_RETENTION_S },
    ]),
    db.collection(COLLECTIONS.dataSources).createIndexes([
      { key: { organizationId: 1 }, name: 'org_unique', unique: true },
    ]),
  ]);
  indexed.add(db);
}
