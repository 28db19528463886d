import { describe, expect, it } from 'vitest';
import * as statusRoute from '../../api/status.js';
import { useTestDb } from '../support/mongo.js';
import { insertSubmissions, seedWorkflow } from '../support/context.js';
import { ADMIN, bearer, request, useRouteContext } from '../api/support.js';
import { drainStream } from '../../lib/drain/drain.js';
import { partitionStream } from '../../lib/streams/refs.js';
import { partitionOf } from '../../lib/streams/partition.js';
import { submissionsCollection } from '../../lib/data/mongo.js';
import type { StreamsView } from '../../lib/status/organizations.js';

const t = useTestDb('streams_view');

async function view(query: string): Promise<{ status: number; body: StreamsView & { error?: { message: string } } }> {
  const res = await statusRoute.GET(request('GET', `/api/status?view=streams${query}`, { headers: bearer(ADMIN) }));
  return { status: res.status, body: (await res.json()) as never };
}

describe('GET /api/status?view=streams: partitions and organizations at scale', () => {
  it('pages organizations, searches by prefix, and names the partition that serves each', async () => {
    const P = 3;
    const ctx = await useRouteContext(t.db(), t.client(), { STREAM_LAYOUT: 'database', STREAM_PARTITIONS: String(P) });
    const orgs = Array.from({ length: 30 }, (_, i) => `view${String(i).padStart(2, '0')}`);
    for (const org of orgs) await seedWorkflow(t.db(), { organizationId: org });
    await seedWorkflow(t.db(), { organizationId: 'other' });
    await insertSubmissions(t.db(), 2, { orgId: 'view03' });
    for (let p = 0; p < P; p++) await drainStream(ctx, partitionStream(p, P));

    const first = await view('&org=view&limit=10');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ layout: 'database', page: 0, limit: 10, total: 30 });
    expect(first.body.organizations.map((o) => o.orgId)).toEqual(orgs.slice(0, 10));
    expect(first.body.partitions.map((p) => p.id)).toEqual(['partition:0/3', 'partition:1/3', 'partition:2/3']);
    for (const p of first.body.partitions) expect(p.lagMs).not.toBeNull();
    for (const o of first.body.organizations) expect(o.servedBy).toBe(`partition:${partitionOf(submissionsCollection(o.orgId), P)}/${P}`);
    const v03 = first.body.organizations.find((o) => o.orgId === 'view03')!;
    expect(v03.jobs.queued).toBe(2);
    expect(v03.lastEventAt).not.toBeNull();
    expect(v03.lagMs).not.toBeNull();
    expect(first.body.organizations.find((o) => o.orgId === 'view04')!.jobs.queued).toBe(0);
    // The emulator reports serverStatus cursor metrics as mongod does.
    expect(typeof first.body.cursorsOpen).toBe('number');

    const last = await view('&org=view&limit=10&page=2');
    expect(last.body.organizations.map((o) => o.orgId)).toEqual(orgs.slice(20, 30));
    expect((await view('&org=other')).body.organizations.map((o) => o.orgId)).toEqual(['other']);
  });

  it('answers bad paging and search values with a 400 naming the parameter', async () => {
    await useRouteContext(t.db(), t.client(), { STREAM_LAYOUT: 'database' });
    for (const [q, word] of [['&limit=0', 'limit'], ['&limit=abc', 'limit'], ['&page=-1', 'page'], ['&org=a.*', 'org']] as const) {
      const res = await view(q);
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).toContain(word);
    }
  });
});
