/**
 * `POST /api/trigger` does what each body asks and returns the summaries: drain one stream now,
 * drain all (only with the explicit flag), reconcile since a time, re-dispatch one submission —
 * and never a second job for the same submission (promise 2).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Timestamp } from 'mongodb';
import * as trigger from '../../api/trigger.js';
import { provideContext } from '../../lib/platform/context.js';
import type { DrainSummary } from '../../lib/data/documents.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { insertSubmissions, jobCounts, seedWorkflow } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, jsonHeaders, request, useRouteContext } from './support.js';

const t = useTestDb('api_trigger');

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await trigger.POST(request('POST', '/api/trigger', { headers: jsonHeaders(ADMIN), body: JSON.stringify(body) }));
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  await seedWorkflow(t.db(), { organizationId: 'acme' });
  await seedWorkflow(t.db(), { organizationId: 'beta' });
  await useRouteContext(t.db(), t.client());
});
afterAll(() => provideContext(null));

describe('POST /api/trigger', () => {
  let before: string[] = [];

  it('{orgId}: drains that stream now and returns its run', async () => {
    const first = await post({ orgId: 'acme' }); // the first drain starts the stream at "now"
    expect(first.status).toBe(200);
    const ids = await insertSubmissions(t.db(), 4, { orgId: 'acme' });
    const { status, json } = await post({ orgId: 'acme' });
    expect(status).toBe(200);
    const runs = json.runs as DrainSummary[];
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ streamId: 'org:acme', trigger: 'manual', status: 'completed', events: 4, jobsCreated: 4 });
    const counts = await jobCounts(t.db(), { organizationId: 'acme' });
    expect(ids.map((id) => counts.get(id))).toEqual([1, 1, 1, 1]);
  });

  it('{all: true}: drains every listed stream in-process and returns every run', async () => {
    const { status, json } = await post({ all: true });
    expect(status).toBe(200);
    expect((json.runs as DrainSummary[]).map((r) => r.streamId).sort()).toEqual(['org:acme', 'org:beta', 'shared:form_submissions', 'shared:global_submissions']);
    expect(json.notReached).toEqual([]);
  });

  it('{orgId, reconcileSince}: scans since then, finds what a drain missed, creates no duplicate', async () => {
    // Inserted while no drain runs, then the stream is started past them: only a scan finds them.
    before = await insertSubmissions(t.db(), 3, { orgId: 'beta' });
    // The stream stands past them: no token, opening at the cluster's time now (a new stream would start earlier).
    const last = (await t.db().command({ ping: 1 })).operationTime as Timestamp;
    const now = new Timestamp({ t: last.high, i: last.low + 1 }); // startAtOperationTime is inclusive
    await t.db().collection(COLLECTIONS.checkpoints).updateOne({ _id: 'org:beta' as never }, { $set: { token: null, tokenPos: null, startAt: now } }, { upsert: true });
    await post({ orgId: 'beta' });
    expect((await jobCounts(t.db(), { organizationId: 'beta' })).size).toBe(0);

    const since = new Date(Date.now() - 3_600_000).toISOString();
    const { status, json } = await post({ orgId: 'beta', reconcileSince: since });
    expect(status).toBe(200);
    expect(json.reconcile).toMatchObject({ streamId: 'org:beta', scanned: 3, jobsCreated: 3 });
    const again = await post({ orgId: 'beta', reconcileSince: since });
    expect(again.json.reconcile).toMatchObject({ scanned: 3, jobsCreated: 0, duplicates: 3 });
    const counts = await jobCounts(t.db(), { organizationId: 'beta' });
    expect(before.map((id) => counts.get(id))).toEqual([1, 1, 1]);
    // The reconcile is visible as a gap on the stream.
    const cp = await t.db().collection(COLLECTIONS.checkpoints).findOne({ _id: 'org:beta' as never });
    expect(cp?.gapCount).toBe(2);
  });

  it('{orgId, submissionId}: dispatches one submission again without duplicating its job', async () => {
    const [id] = await insertSubmissions(t.db(), 1, { orgId: 'beta' });
    const first = await post({ orgId: 'beta', submissionId: id });
    expect(first.status).toBe(200);
    expect(first.json.redispatch).toMatchObject({ submissionId: id, jobsCreated: 1 });
    const again = await post({ orgId: 'beta', submissionId: id });
    expect(again.json.redispatch).toMatchObject({ submissionId: id, jobsCreated: 0 });
    expect((await jobCounts(t.db(), { organizationId: 'beta' })).get(id!)).toBe(1);
  });
});
