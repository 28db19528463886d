import { ObjectId, type Db } from 'mongodb';
import type { CheckpointDoc, DrainSummary, GapRecord } from '../../lib/data/documents.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import type { JobDoc, JobStatus, JobOrigin } from '../../lib/data/documents.js';

/** Status fixtures: checkpoints, runs, dead letters and jobs written the way the product writes them. */

export function run(streamId: string, startedAt: Date, over: Partial<DrainSummary> = {}): DrainSummary {
  return {
    runId: new ObjectId().toHexString(),
    streamId,
    status: 'completed',
    stoppedBy: 'idle',
    trigger: 'qstash',
    events: 10,
    jobsCreated: 10,
    duplicates: 0,
    deadLettered: 0,
    flushes: 1,
    roundTrips: 5,
    reconnects: 0,
    recoveries: [],
    tokenBefore: null,
    tokenAfter: null,
    busy: false,
    latencyMsAvg: 400,
    latencyMsMax: 900,
    startedAt,
    endedAt: new Date(startedAt.getTime() + 1_000),
    durationMs: 1_000,
    error: null,
    ...over,
  };
}

export function checkpoint(id: string, now: number, over: Partial<CheckpointDoc> = {}): CheckpointDoc {
  return {
    _id: id,
    orgId: id.startsWith('org:') ? id.slice(4) : null,
    token: { _data: '8200000000' },
    tokenIsInvalidate: false,
    tokenTime: new Date(now - 5_000),
    tokenSavedAt: new Date(now - 1_000),
    fence: 3,
    lease: null,
    state: 'idle',
    consecutiveFailures: 0,
    lastRun: run(id, new Date(now - 30_000)),
    lastEventWallTime: null,
    gaps: [],
    gapCount: 0,
    recovery: null,
    createdAt: new Date(now - 3_600_000),
    updatedAt: new Date(now - 1_000),
    ...over,
  };
}

export function gap(now: number, count: number): GapRecord {
  return { id: `history_lost:${now}:${count}`, from: new Date(now - 600_000), to: new Date(now - 300_000), count, jobsCreated: count, reason: 'history_lost', recordedAt: new Date(now - 300_000), runId: 'r' };
}

export function job(orgId: string, i: number, status: JobStatus, createdBy: JobOrigin, seenBy: JobOrigin[], now: number): JobDoc {
  return {
    key: `${orgId}-wf:${i}:insert`,
    organizationId: orgId,
    workflowId: 'wf',
    workflowName: 'Notify',
    formId: 'contact',
    submissionId: `s${i}`,
    source: `org:${orgId}`,
    event: 'insert',
    createdBy,
    seenBy,
    status,
    attempts: status === 'queued' ? 0 : 1,
    runAt: new Date(now - 20_000),
    lease: null,
    lastError: null,
    steps: [],
    submission: {},
    eventClusterTime: null,
    eventWallTime: new Date(now - 25_000),
    createdAt: new Date(now - 20_000),
    updatedAt: new Date(now - 20_000),
  };
}

/**
 * acme: idle, dual mode, jobs seen by both paths / one path; beta: failing with two gaps and dead
 * letters; org:gone: a checkpoint whose organization is no longer listed.
 */
export async function seedStatus(db: Db, now: number): Promise<void> {
  await db.collection(COLLECTIONS.workflows).insertMany([
    { _id: 'wf-acme' as never, organizationId: 'acme', formId: 'contact', name: 'Notify', status: 'active', steps: [], updatedAt: new Date(now) },
    { _id: 'wf-beta' as never, organizationId: 'beta', formId: 'contact', name: 'Notify', status: 'active', steps: [], updatedAt: new Date(now) },
  ]);
  await db.collection<CheckpointDoc>(COLLECTIONS.checkpoints).insertMany([
    checkpoint('org:acme', now),
    checkpoint('org:beta', now, {
      state: 'failing',
      consecutiveFailures: 3,
      lastRun: run('org:beta', new Date(now - 20_000), { status: 'failed', stoppedBy: 'error', error: { code: 'transient', message: 'connection reset' } }),
      gaps: [gap(now, 4), gap(now, 7)],
      gapCount: 2,
      tokenTime: new Date(now - 7_200_000),
    }),
    checkpoint('org:gone', now, { tokenTime: new Date(now - 60_000) }),
  ]);
  await db.collection(COLLECTIONS.runs).insertMany([
    ...[1, 2, 3, 4].map((m) => ({ _id: new ObjectId(), ...run('org:acme', new Date(now - m * 60_000), { events: 30 * m, latencyMsAvg: 100 * m }) })),
    { _id: new ObjectId(), ...run('org:beta', new Date(now - 120_000), { status: 'failed', events: 0, latencyMsAvg: null, latencyMsMax: null }) },
  ]);
  await db.collection(COLLECTIONS.deadLetters).insertMany([
    { key: 'org:beta:1', streamId: 'org:beta', organizationId: 'beta', reason: 'too large', code: 'poison_event', documentKey: null, operationType: 'insert', clusterTime: null, event: null, createdAt: new Date(now), replayedAt: null },
    { key: 'org:beta:2', streamId: 'org:beta', organizationId: 'beta', reason: 'too large', code: 'poison_event', documentKey: null, operationType: 'insert', clusterTime: null, event: null, createdAt: new Date(now), replayedAt: new Date(now) },
  ]);
  await db.collection<JobDoc>(COLLECTIONS.jobs).insertMany([
    job('acme', 1, 'succeeded', 'explicit', ['explicit', 'change_stream'], now),
    job('acme', 2, 'succeeded', 'change_stream', ['change_stream', 'explicit'], now),
    job('acme', 3, 'queued', 'explicit', ['explicit'], now),
    job('acme', 4, 'queued', 'change_stream', ['change_stream'], now),
    job('acme', 5, 'dead', 'change_stream', ['change_stream'], now),
    job('acme', 6, 'succeeded', 'reconcile', ['reconcile'], now),
    job('beta', 1, 'running', 'change_stream', ['change_stream'], now),
  ]);
}
