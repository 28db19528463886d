/**
 * Issue 14 case 2: an operator restarts a stream at a time or now (`POST /api/trigger {action:
 * 'restart'}`, the same function as `npm run ops -- restart`): the token is dropped, the stream
 * opens at that time, and the next drain scans the skipped window and records it (reason `restart`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as trigger from '../../api/trigger.js';
import { provideContext, type AppContext } from '../../lib/platform/context.js';
import { insertSubmissions, seedWorkflow } from '../support/context.js';
import { expectExactlyOne } from '../support/assert.js';
import { useTestDb } from '../support/mongo.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { ADMIN, jsonHeaders, request, useRouteContext } from './support.js';

const t = useTestDb('api_restart');
let ctx: AppContext;

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await trigger.POST(request('POST', '/api/trigger', { headers: jsonHeaders(ADMIN), body: JSON.stringify(body) }));
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  await seedWorkflow(t.db(), { organizationId: 'rs' });
  await seedWorkflow(t.db(), { organizationId: 'undrained' });
  ctx = await useRouteContext(t.db(), t.client(), { STREAM_LAYOUT: 'collection' });
});
afterAll(() => provideContext(null));

describe('restart a stream', () => {
  it('at "now": the submissions of the skipped window get their jobs by a scan recorded as a restart gap, later ones come through the stream', async () => {
    await drainStream(ctx, orgStream('rs'));
    const skipped = await insertSubmissions(t.db(), 3, { orgId: 'rs' });
    const res = await post({ action: 'restart', streamId: 'org:rs', at: 'now' });
    expect(res.status).toBe(200);
    const cp = await new CheckpointStore(t.db()).get('org:rs');
    expect(cp?.token).toBeNull();
    expect(cp?.startAt).toBeTruthy();
    expect(cp?.recovery?.kind).toBe('restart');

    const run = await drainStream(ctx, orgStream('rs'));
    expect(run.status).toBe('completed');
    expect(run.recoveries).toContainEqual({ kind: 'restart', count: 1 });
    await expectExactlyOne(t.db(), 'rs', skipped);
    const after = await new CheckpointStore(t.db()).get('org:rs');
    expect(after?.recovery).toBeNull();
    expect(after?.gaps.at(-1)).toMatchObject({ reason: 'restart', count: 3, jobsCreated: 3 });

    const later = await insertSubmissions(t.db(), 2, { orgId: 'rs' });
    const next = await drainStream(ctx, orgStream('rs'));
    expect(next.jobsCreated).toBe(2);
    await expectExactlyOne(t.db(), 'rs', [...skipped, ...later]);
  });

  it.each([
    ['an unknown stream', { action: 'restart', streamId: 'org:nobody', at: 'now' }, 404, /unknown organization/],
    ['a stream never drained', { action: 'restart', streamId: 'org:undrained', at: 'now' }, 404, /no checkpoint/],
    ['a malformed stream id', { action: 'restart', streamId: 'nonsense', at: 'now' }, 400, /streamId/],
    ['a time in the future', { action: 'restart', streamId: 'org:rs', at: new Date(Date.now() + 3_600_000).toISOString() }, 400, /in the future/],
    ['a time before the last saved position', { action: 'restart', streamId: 'org:rs', at: '2020-01-01T00:00:00Z' }, 400, /before the stream's last saved position/],
    ['no time', { action: 'restart', streamId: 'org:rs' }, 400, /restart needs streamId and at/],
    ['a time that is not one', { action: 'restart', streamId: 'org:rs', at: 'yesterday' }, 400, /or an ISO 8601 time with a zone/],
    ['at without restart', { streamId: 'org:rs', at: 'now' }, 400, /at is only for action/],
  ] as const)('refuses %s with a 4xx that says why', async (_name, body, status, message) => {
    const res = await post(body);
    expect(res.status).toBe(status);
    expect(JSON.stringify(res.json)).toMatch(message);
  });

  it('refuses while a drain holds the lease (409)', async () => {
    const store = new CheckpointStore(t.db());
    const now = Date.now();
    const lease = await store.acquire(orgStream('rs'), 'someone', new Date(now), new Date(now + 60_000));
    expect(lease).not.toBeNull();
    try {
      const res = await post({ action: 'restart', streamId: 'org:rs', at: 'now' });
      expect(res.status).toBe(409);
      expect(JSON.stringify(res.json)).toMatch(/being drained/);
    } finally {
      await t.db().collection('change_stream_checkpoints').updateOne({ _id: 'org:rs' as never }, { $set: { lease: null, state: 'idle' } });
    }
  });

  it('under the continuous relay, the 409 says to pause, restart, then resume (the next window takes the lease at once)', async () => {
    const store = new CheckpointStore(t.db());
    const now = Date.now();
    const lease = await store.acquire(orgStream('rs'), 'relay window', new Date(now), new Date(now + 60_000), 3);
    expect(lease).not.toBeNull();
    try {
      const res = await post({ action: 'restart', streamId: 'org:rs', at: 'now' });
      expect(res.status).toBe(409);
      expect(JSON.stringify(res.json)).toMatch(/continuous relay.*pause it first \(npm run ops -- pause org:rs\).*resume it/);
    } finally {
      await t.db().collection('change_stream_checkpoints').updateOne({ _id: 'org:rs' as never }, { $set: { lease: null, state: 'idle' } });
    }
  });
});
