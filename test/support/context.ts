import type { Db, MongoClient } from 'mongodb';
import { ObjectId } from 'mongodb';
import { loadConfig } from '../../lib/platform/config.js';
import { buildContext, type AppContext } from '../../lib/platform/context.js';
import { systemClock, type Clock } from '../../lib/platform/clock.js';
import { silentLogger } from '../../lib/platform/log.js';
import { COLLECTIONS, submissionsCollection } from '../../lib/data/mongo.js';
import type { WorkflowDoc } from '../../lib/data/documents.js';

/** Environment for drain tests: change streams on for every org, short windows. */
export const TEST_ENV = {
  USE_CHANGE_STREAMS: 'true',
  CHANGE_STREAMS_ALL_ORGS: 'true',
  TRIGGER_MODE: 'dual',
  // The per-organization layout, which most drain tests exercise; partition tests set `database`.
  STREAM_LAYOUT: 'collection',
  DRAIN_WINDOW_MS: '4000',
  DRAIN_IDLE_MS: '400',
  DRAIN_MAX_AWAIT_MS: '100',
  DRAIN_BATCH_SIZE: '50',
  LOG_LEVEL: 'silent',
  // Webhook receivers in these tests listen on loopback, which the processor refuses unless allowed.
  WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8',
};

export async function testContext(
  db: Db,
  client: MongoClient,
  env: Record<string, string> = {},
  clock: Clock = systemClock,
): Promise<AppContext> {
  const config = loadConfig({ MONGODB_URI: 'mongodb://127.0.0.1:1', ...TEST_ENV, ...env });
  return buildContext(config, { db, client, clock, log: silentLogger, publisher: null });
}

/** The real clock moved forward on demand (to expire leases without waiting). */
export class OffsetClock implements Clock {
  offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return systemClock.sleep(ms, signal);
  }
  advance(ms: number): void {
    this.offset += ms;
  }
}

export async function seedWorkflow(db: Db, overrides: Partial<WorkflowDoc> = {}): Promise<WorkflowDoc> {
  const wf: WorkflowDoc = {
    _id: new ObjectId().toHexString(),
    organizationId: 'acme',
    formId: 'contact',
    name: 'Notify',
    status: 'active',
    steps: [{ type: 'webhook', url: 'http://127.0.0.1:9/hook' }],
    updatedAt: new Date(),
    ...overrides,
  };
  await db.collection<WorkflowDoc>(COLLECTIONS.workflows).insertOne(wf);
  return wf;
}

/** Insert n submissions for a form; returns their ids (hex). */
export async function insertSubmissions(
  db: Db,
  n: number,
  opts: { orgId?: string; formId?: string; collection?: string; data?: (i: number) => Record<string, unknown> } = {},
): Promise<string[]> {
  const orgId = opts.orgId ?? 'acme';
  const docs = Array.from({ length: n }, (_, i) => ({
    _id: new ObjectId(),
    organizationId: orgId,
    formId: opts.formId ?? 'contact',
    data: opts.data?.(i) ?? { i },
    submittedAt: new Date(),
  }));
  if (docs.length) await db.collection(opts.collection ?? submissionsCollection(orgId)).insertMany(docs);
  return docs.map((d) => d._id.toHexString());
}

/** Jobs per submission id, to assert "exactly one each". */
export async function jobCounts(db: Db, filter: Record<string, unknown> = {}): Promise<Map<string, number>> {
  const jobs = await db.collection(COLLECTIONS.jobs).find(filter, { projection: { submissionId: 1 } }).toArray();
  const counts = new Map<string, number>();
  for (const j of jobs) counts.set(j.submissionId as string, (counts.get(j.submissionId as string) ?? 0) + 1);
  return counts;
}

/** Poll until `check` returns a truthy value (never a fixed sleep). */
export async function until<T>(check: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 20_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
