/**
 * Every bad request gets a 4xx JSON body that names the problem, and nothing is started or
 * half-written (no drain run, no checkpoint, no job). Also: wrong methods → 405 with Allow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fanout from '../../api/cron/fanout.js';
import * as drain from '../../api/drain.js';
import * as health from '../../api/health.js';
import * as jobsProcess from '../../api/jobs/process.js';
import * as retry from '../../api/jobs/retry.js';
import * as status from '../../api/status.js';
import * as trigger from '../../api/trigger.js';
import { provideContext } from '../../lib/platform/context.js';
import { MAX_BODY_BYTES } from '../../lib/http/body.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { seedWorkflow } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, CRON, bearer, body, jsonHeaders, request, useRouteContext } from './support.js';

const t = useTestDb('api_inputs');

beforeAll(async () => {
  await seedWorkflow(t.db(), { organizationId: 'acme' });
  await useRouteContext(t.db(), t.client());
});
afterAll(() => provideContext(null));

async function nothingWritten(): Promise<void> {
  const db = t.db();
  const counts = await Promise.all([COLLECTIONS.runs, COLLECTIONS.checkpoints, COLLECTIONS.jobs, COLLECTIONS.fanoutTicks].map((c) => db.collection(c).countDocuments()));
  expect(counts).toEqual([0, 0, 0, 0]);
}

/** [case name, raw body, expected status, text the message must contain] */
type BadCase = [string, string, number, string];

const triggerCases: BadCase[] = [
  ['malformed JSON', '{"orgId": "acme"', 400, 'malformed JSON'],
  ['empty body', '', 400, 'empty'],
  ['array body', '[]', 400, 'invalid request body'],
  ['string body', '"acme"', 400, 'invalid request body'],
  ['empty object', '{}', 400, 'exactly one of orgId, streamId or all: true'],
  ['all: false alone', '{"all": false}', 400, 'all must be true'],
  ['orgIds: [] (unknown key, and an empty list never means all)', '{"orgIds": []}', 400, 'orgIds'],
  ['unknown extra key', '{"orgId": "acme", "force": true}', 400, 'force'],
  ['empty orgId', '{"orgId": ""}', 400, 'orgId: must not be empty'],
  ['blank orgId', '{"orgId": "   "}', 400, 'orgId: must not be empty'],
  ['orgId of the wrong type', '{"orgId": 42}', 400, 'orgId'],
  ['orgId null', '{"orgId": null}', 400, 'orgId'],
  ['orgId and all together', '{"orgId": "acme", "all": true}', 400, 'exactly one'],
  ['reconcileSince not a time', '{"orgId": "acme", "reconcileSince": "yesterday"}', 400, 'reconcileSince: must be an ISO 8601 time'],
  ['reconcileSince without zone', '{"orgId": "acme", "reconcileSince": "2025-01-01T00:00:00"}', 400, 'reconcileSince'],
  ['reconcileSince with all', '{"all": true, "reconcileSince": "2025-01-01T00:00:00Z"}', 400, 'reconcileSince needs orgId'],
  ['submissionId without orgId', '{"streamId": "org:acme", "submissionId": "abc"}', 400, 'submissionId needs orgId'],
  ['submissionId and reconcileSince', '{"orgId": "acme", "submissionId": "a", "reconcileSince": "2025-01-01T00:00:00Z"}', 400, 'cannot be combined'],
  ['empty submissionId', '{"orgId": "acme", "submissionId": ""}', 400, 'submissionId: must not be empty'],
  ['unknown organization', '{"orgId": "nobody"}', 404, 'unknown organization'],
  ['unknown stream id shape', '{"streamId": "bogus"}', 400, 'streamId'],
  ['unknown shared collection', '{"streamId": "shared:nope"}', 404, 'unknown stream'],
  ['a source stream of an organization without a data source', '{"streamId": "source:acme"}', 404, 'organization "acme" has no data source (data_sources); its stream is "org:acme"'],
  ['reconcileSince in the future', '{"orgId": "acme", "reconcileSince": "2999-01-01T00:00:00Z"}', 400, 'future'],
  ['redispatch of an unknown submission', '{"orgId": "acme", "submissionId": "65a000000000000000000000"}', 404, 'not found'],
];

describe('POST /api/trigger refuses bad bodies by name', () => {
  it.each(triggerCases)('%s', async (_name, raw, expected, mentions) => {
    const res = await trigger.POST(request('POST', '/api/trigger', { headers: jsonHeaders(ADMIN), body: raw }));
    expect(res.status, await res.clone().text()).toBe(expected);
    const b = await body(res);
    expect(b.error?.message).toContain(mentions);
    await nothingWritten();
  });
});

const retryCases: BadCase[] = [
  ['ids: [] (an empty list never means all)', '{"ids": []}', 400, 'ids must not be empty'],
  ['empty id', '{"ids": [""]}', 400, 'ids.0: must not be empty'],
  ['empty filter without all', '{"filter": {}}', 400, 'empty filter would select every dead job'],
  ['all: false with an empty filter', '{"filter": {}, "all": false}', 400, 'all must be true'],
  ['ids and filter together', '{"ids": ["a"], "filter": {"organizationId": "acme"}}', 400, 'exactly one of ids or filter'],
  ['neither ids nor filter', '{"dryRun": true}', 400, 'exactly one of ids or filter'],
  ['all with ids', '{"ids": ["a"], "all": true}', 400, 'all goes with filter'],
  ['bad from', '{"filter": {"from": "last week"}}', 400, 'filter.from'],
  ['from after to', '{"filter": {"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}}', 400, 'from must be before to'],
  ['unknown filter key', '{"filter": {"status": "dead"}}', 400, 'status'],
  ['dryRun not a boolean', '{"ids": ["a"], "dryRun": "yes"}', 400, 'dryRun'],
  ['malformed JSON', '{"ids": [', 400, 'malformed JSON'],
];

describe('POST /api/jobs/retry refuses bad bodies by name', () => {
  it.each(retryCases)('%s', async (_name, raw, expected, mentions) => {
    const res = await retry.POST(request('POST', '/api/jobs/retry', { headers: jsonHeaders(ADMIN), body: raw }));
    expect(res.status, await res.clone().text()).toBe(expected);
    expect((await body(res)).error?.message).toContain(mentions);
  });

  it('accepts an explicit all: true with a dry run and writes nothing', async () => {
    const res = await retry.POST(request('POST', '/api/jobs/retry', { headers: jsonHeaders(ADMIN), body: '{"filter": {}, "all": true, "dryRun": true}' }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ dryRun: true, matched: 0, requeued: 0 });
  });

  it('says why a named job was not requeued instead of a bare matched 0', async () => {
    const res = await retry.POST(request('POST', '/api/jobs/retry', { headers: jsonHeaders(ADMIN), body: '{"ids": ["no-such-job"]}' }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      matched: 0,
      notRequeued: [{ id: 'no-such-job', status: 'not_found', reason: 'no job has this key or _id' }],
      message: expect.stringContaining('no-such-job (not_found'),
    });
  });
});

const drainCases: BadCase[] = [
  ['empty object', '{}', 400, 'exactly one of orgId or streamId'],
  ['both orgId and streamId', '{"orgId": "acme", "streamId": "org:acme"}', 400, 'exactly one'],
  ['unknown key', '{"org": "acme"}', 400, 'org'],
  ['empty orgId', '{"orgId": ""}', 400, 'must not be empty'],
  ['malformed JSON', '{orgId: acme}', 400, 'malformed JSON'],
  ['unknown organization', '{"orgId": "nobody"}', 404, 'unknown organization'],
];

describe('POST /api/drain refuses bad bodies by name', () => {
  it.each(drainCases)('%s', async (_name, raw, expected, mentions) => {
    const res = await drain.POST(request('POST', '/api/drain', { headers: jsonHeaders(CRON), body: raw }));
    expect(res.status, await res.clone().text()).toBe(expected);
    expect((await body(res)).error?.message).toContain(mentions);
    await nothingWritten();
  });
});

const processCases: BadCase[] = [
  ['malformed JSON', '{lane: 1}', 400, 'body must be JSON'],
  ['lane 0', '{"lane": 0}', 400, 'lane'],
  ['lane not an integer', '{"lane": 1.5}', 400, 'lane'],
  ['lane as a string', '{"lane": "1"}', 400, 'lane must be a number'],
  ['lane beyond any JOB_PARALLELISM', '{"lane": 64}', 400, 'lane must be between 1 and 63'],
];

describe('POST /api/jobs/process refuses bad bodies by name', () => {
  it.each(processCases)('%s', async (_name, raw, expected, mentions) => {
    const res = await jobsProcess.POST(request('POST', '/api/jobs/process', { headers: jsonHeaders(CRON), body: raw }));
    expect(res.status, await res.clone().text()).toBe(expected);
    expect((await body(res)).error?.message).toContain(mentions);
    await nothingWritten();
  });
});

describe('body limits and media types', () => {
  const oversized = JSON.stringify({ orgId: 'acme', pad: 'x'.repeat(MAX_BODY_BYTES) });
  it.each([
    ['trigger', trigger.POST, '/api/trigger', ADMIN],
    ['retry', retry.POST, '/api/jobs/retry', ADMIN],
    ['drain', drain.POST, '/api/drain', CRON],
  ] as const)('%s: oversized body → 413, with or without Content-Length', async (_n, handler, path, token) => {
    const withLength = await handler(request('POST', path, { headers: { ...jsonHeaders(token), 'content-length': String(oversized.length) }, body: oversized }));
    expect(withLength.status).toBe(413);
    expect((await body(withLength)).error?.code).toBe('payload_too_large');
    // A streamed body carries no Content-Length; the limit still holds while reading.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(oversized));
        c.close();
      },
    });
    const streamed = await handler(new Request(`http://localhost${path}`, { method: 'POST', headers: jsonHeaders(token), body: stream, duplex: 'half' } as RequestInit));
    expect(streamed.status).toBe(413);
    await nothingWritten();
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['form', 'application/x-www-form-urlencoded'],
    ['none', null],
  ])('trigger: content-type %s → 415', async (_n, type) => {
    const headers: Record<string, string> = { ...bearer(ADMIN) };
    if (type) headers['content-type'] = type;
    const res = await trigger.POST(request('POST', '/api/trigger', { headers, body: '{"orgId":"acme"}' }));
    expect(res.status).toBe(415);
    expect((await body(res)).error?.message).toContain('application/json');
    await nothingWritten();
  });

  it('accepts application/json with a charset parameter (and then does the work)', async () => {
    const res = await retry.POST(request('POST', '/api/jobs/retry', { headers: { ...bearer(ADMIN), 'content-type': 'application/json; charset=utf-8' }, body: '{"ids":["x"],"dryRun":true}' }));
    expect(res.status).toBe(200);
  });
});

describe('GET /api/status query', () => {
  it('refuses an unknown format by name', async () => {
    const res = await status.GET(request('GET', '/api/status?format=xml', { headers: bearer(ADMIN) }));
    expect(res.status).toBe(400);
    expect((await body(res)).error?.message).toContain('format must be one of json, html, prometheus');
  });
});

describe('wrong methods → 405 with Allow', () => {
  const routes = [
    ['/api/cron/fanout', fanout, 'GET'],
    ['/api/drain', drain, 'POST'],
    ['/api/trigger', trigger, 'POST'],
    ['/api/status', status, 'GET'],
    ['/api/jobs/process', jobsProcess, 'GET, POST'],
    ['/api/jobs/retry', retry, 'POST'],
    ['/api/health', health, 'GET'],
  ] as const;
  it.each(routes)('%s allows only %s', async (path, mod, allow) => {
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      if (allow.split(', ').includes(method)) continue;
      const res = await mod[method](request(method, path, { headers: jsonHeaders(ADMIN), ...(method === 'GET' ? {} : { body: '{}' }) }));
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow')).toBe(allow);
      expect((await body(res)).error?.code).toBe('method_not_allowed');
    }
    await nothingWritten();
  });
});
