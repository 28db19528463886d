/**
 * Issue 14 cases 2 and 7: every resume point the server refuses is recovered by a scan with a
 * recorded gap, and a recovery scan does not trust the writer's `submittedAt` alone. Faults are
 * injected the way mongod allows (failCommand on aggregate with the server's error codes).
 */
import { describe, expect, it } from 'vitest';
import { ObjectId } from 'mongodb';
import { useTestDb, failCommand, clearFailPoints } from '../support/mongo.js';
import { seedWorkflow, testContext } from '../support/context.js';
import { expectExactlyOne } from '../support/assert.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { submissionsCollection } from '../../lib/data/mongo.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { readStatus } from '../../lib/status/report.js';
import { evaluateConditions } from '../../lib/status/alerts.js';

const mongo = useTestDb('drain_refused_resume');

async function insertOne(orgId: string, fields: Record<string, unknown> = {}): Promise<string> {
  const _id = new ObjectId();
  await mongo.db().collection(submissionsCollection(orgId)).insertOne({ _id, organizationId: orgId, formId: 'contact', data: {}, submittedAt: new Date(), ...fields });
  return _id.toHexString();
}

describe('case 2: resume points the server refuses', () => {
  it('280 "resume token not found" on every aggregate: 3 drains → the waiting submission gets its job, a gap is recorded, the stream is not failing', async () => {
    const orgId = 'refused280';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const waiting = await insertOne(orgId);
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 280 }, 'alwaysOn');
    const runs = [];
    const arriving: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        // Submissions keep arriving while the server refuses: each run's scan dispatches them.
        if (i > 0) arriving.push(await insertOne(orgId));
        runs.push(await drainStream(ctx, orgStream(orgId)));
      }
    } finally {
      await clearFailPoints(mongo.client());
    }
    expect(runs.map((r) => r.error?.message ?? r.status)).toEqual(['completed', 'completed', 'completed']);
    await expectExactlyOne(mongo.db(), orgId, arriving);
    expect(runs[0]!.recoveries).toContainEqual({ kind: 'invalid_token', count: expect.any(Number) });
    await expectExactlyOne(mongo.db(), orgId, [waiting]);
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.state).not.toBe('failing');
    expect(cp?.consecutiveFailures).toBe(0);
    expect(cp?.gapCount).toBeGreaterThanOrEqual(1);
    expect(cp?.gaps[0]).toMatchObject({ reason: 'invalid_token', count: 1, jobsCreated: 1 });
    // Once the server takes aggregates again, the stream opens at the time the scans reached.
    const later = await insertOne(orgId);
    await drainStream(ctx, orgStream(orgId));
    const after = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(after?.recovery).toBeNull();
    expect(after?.token).not.toBeNull();
    await expectExactlyOne(mongo.db(), orgId, [waiting, later]);
  });

  it.each([
    ['InvalidResumeToken', 260],
    ['ChangeStreamHistoryLost', 286],
    ['CappedPositionLost', 136],
  ] as const)('%s (%i) once: recovered by a scan with a recorded gap', async (_name, code) => {
    const orgId = `refused${code}`;
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const waiting = await insertOne(orgId);
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: code });
    let run;
    try {
      run = await drainStream(ctx, orgStream(orgId));
    } finally {
      await clearFailPoints(mongo.client());
    }
    expect(run.status).toBe('completed');
    await expectExactlyOne(mongo.db(), orgId, [waiting]);
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.gapCount).toBe(1);
    expect(cp?.recovery).toBeNull();
  });
});

describe('case 7: a recovery scan does not trust the writer clock alone', () => {
  it('submittedAt now and five minutes in the past, a single 286 → two jobs, gap count 2', async () => {
    const orgId = 'skewed';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const now = await insertOne(orgId, { submittedAt: new Date() });
    const backdated = await insertOne(orgId, { submittedAt: new Date(Date.now() - 5 * 60_000) });
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
    try {
      await drainStream(ctx, orgStream(orgId));
    } finally {
      await clearFailPoints(mongo.client());
    }
    await expectExactlyOne(mongo.db(), orgId, [now, backdated]);
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.gaps[0]).toMatchObject({ reason: 'history_lost', count: 2, jobsCreated: 2, unplaced: 0 });
  });

  it('documents the submittedAt scan misses are found by _id creation time and counted as unplaced', async () => {
    const orgId = 'unplaced';
    // A skew allowance of 1 s: the backdated submission lies outside the submittedAt window.
    const ctx = await testContext(mongo.db(), mongo.client(), { RECOVERY_SKEW_MS: '1000' });
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const ids = [
      await insertOne(orgId),
      await insertOne(orgId, { submittedAt: new Date(Date.now() - 5 * 60_000) }),
      await insertOne(orgId, { submittedAt: undefined }),
      await insertOne(orgId, { submittedAt: '2026-01-01T00:00:00Z' }),
    ];
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
    try {
      await drainStream(ctx, orgStream(orgId));
    } finally {
      await clearFailPoints(mongo.client());
    }
    await expectExactlyOne(mongo.db(), orgId, ids);
    const gap = (await new CheckpointStore(mongo.db()).get(`org:${orgId}`))!.gaps[0]!;
    expect(gap).toMatchObject({ count: 4, jobsCreated: 4, unplaced: 3 });
    expect(gap.unplacedExamples!.map((e) => [String(e.id), e.reason]).sort()).toEqual(
      [
        [ids[1], 'outside_window'],
        [ids[2], 'no_submitted_at'],
        [ids[3], 'submitted_at_not_a_date'],
      ].sort(),
    );
    // Status shows them and an alert condition counts them.
    const report = await readStatus(ctx);
    const stream = report.streams.find((s) => s.id === `org:${orgId}`);
    expect(stream?.gaps.unplaced).toBe(3);
    expect(evaluateConditions(report).find((c) => c.key === `unplaced:org:${orgId}`)).toMatchObject({ kind: 'gap_unplaced', value: 3 });
  });
});
