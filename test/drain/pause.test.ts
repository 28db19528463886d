import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useTestDb } from '../support/mongo.js';
import { insertSubmissions, seedWorkflow, testContext, until } from '../support/context.js';
import { drainStream, emptySummary } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { setStreamPaused } from '../../lib/streams/pause.js';
import { NotFoundError } from '../../lib/platform/errors.js';
import { readStatus } from '../../lib/status/report.js';

const mongo = useTestDb('pause');
const root = fileURLToPath(new URL('../..', import.meta.url));

describe('pause and resume: operator state that no drain overwrites', () => {
  it('a pause taken while a drain holds the lease holds after that drain releases', async () => {
    // A long idle wait keeps the drain holding its lease until the window ends.
    const ctx = await testContext(mongo.db(), mongo.client(), { DRAIN_IDLE_MS: '60000' });
    await seedWorkflow(mongo.db(), { organizationId: 'demo' });
    await drainStream(ctx, orgStream('demo'));
    const store = new CheckpointStore(mongo.db());
    const running = drainStream(ctx, orgStream('demo'), { windowMs: 1500 });
    await until(async () => (await store.get('org:demo'))?.lease, 'the drain to hold the lease');

    await expect(setStreamPaused(ctx, { streamId: 'org:demo' }, true)).resolves.toEqual({ streamId: 'org:demo', paused: true });
    const run = await running;
    expect(run.status).toBe('completed');

    const cp = await store.get('org:demo');
    expect(cp?.lease).toBeNull();
    expect(cp?.paused).toBe(true);
    expect((await readStatus(ctx)).streams.find((s) => s.id === 'org:demo')?.state).toBe('paused');
    await insertSubmissions(mongo.db(), 2, { orgId: 'demo' });
    expect(await drainStream(ctx, orgStream('demo'))).toMatchObject({ status: 'skipped', stoppedBy: 'paused', events: 0 });

    await setStreamPaused(ctx, { streamId: 'org:demo' }, false);
    expect(await drainStream(ctx, orgStream('demo'))).toMatchObject({ status: 'completed', events: 2, jobsCreated: 2 });
  });

  it('a failed run (failure count, failing state) does not undo a pause either', async () => {
    const ctx = await testContext(mongo.db(), mongo.client(), { STREAM_FAILING_AFTER: '1' });
    await seedWorkflow(mongo.db(), { organizationId: 'flaky' });
    const store = new CheckpointStore(mongo.db());
    const lease = await store.acquire(orgStream('flaky'), 'test', new Date(), new Date(Date.now() + 60_000));
    expect(lease).not.toBeNull();
    await setStreamPaused(ctx, { orgId: 'flaky' }, true);
    const failed = { ...emptySummary('run-1', 'org:flaky', 'manual', Date.now()), status: 'failed' as const };
    expect(await store.release(lease!, failed, new Date(), 1)).toBe(true);
    const cp = await store.get('org:flaky');
    expect(cp).toMatchObject({ paused: true, state: 'failing', consecutiveFailures: 1 });
    expect(await drainStream(ctx, orgStream('flaky'))).toMatchObject({ status: 'skipped', stoppedBy: 'paused' });
  });

  it('pausing a stream that does not exist is an error naming it and how to list streams; nothing is written', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    const attempt = setStreamPaused(ctx, { streamId: 'org:nosuch' }, true);
    await expect(attempt).rejects.toBeInstanceOf(NotFoundError);
    await expect(setStreamPaused(ctx, { streamId: 'org:nosuch' }, false)).rejects.toThrow(/unknown stream "org:nosuch".*npm run ops -- status/);
    expect(await mongo.db().collection(COLLECTIONS.checkpoints).countDocuments({ _id: 'org:nosuch' as never })).toBe(0);
  });

  it('npm run ops -- pause of an unknown stream exits non-zero with the reason', async () => {
    const env = { ...process.env, MONGODB_URI: mongo.uri, MONGODB_DB: mongo.db().databaseName, LOG_LEVEL: 'silent', USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ALL_ORGS: 'true' };
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/ops.ts', 'pause', 'org:nosuch'], { cwd: root, env });
    const failure = await run.then(() => null, (error: { code: number; stdout: string; stderr: string }) => error);
    expect(failure?.code).toBe(1);
    expect(failure?.stdout).not.toMatch(/paused/);
    expect(failure?.stderr).toMatch(/not_found: unknown stream "org:nosuch".*npm run ops -- status/);
  });
});
