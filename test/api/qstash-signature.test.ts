/**
 * Promise 6 on the QStash route: `POST /api/drain` verifies `Upstash-Signature` with the real
 * `Receiver` on the raw body and the configured public URL. Tokens are built exactly as QStash builds
 * them (HS256 over the signing-key string; iss, sub, iat, nbf, exp, jti, body = base64url SHA-256).
 * Every forged, expired, tampered or misaddressed delivery is a 401 and drains nothing.
 */
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as drain from '../../api/drain.js';
import { provideContext } from '../../lib/platform/context.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { seedWorkflow } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { body, request, useRouteContext } from './support.js';

const t = useTestDb('api_qstash_sig');

const CURRENT = 'sig_current_key_for_route_tests';
const NEXT = 'sig_next_key_for_route_tests';
const PUBLIC = 'https://triggers.example.com';
const URL_ = `${PUBLIC}/api/drain`;

interface Claims {
  key?: string;
  sub?: string;
  iss?: string;
  body?: string;
  /** Seconds relative to now. */
  iat?: number;
  nbf?: number;
  exp?: number;
}

async function sign(raw: string, c: Claims = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const hash = createHash('sha256')
    .update(c.body ?? raw)
    .digest('base64url');
  return new SignJWT({ body: hash })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(c.iss ?? 'Upstash')
    .setSubject(c.sub ?? URL_)
    .setIssuedAt(now + (c.iat ?? 0))
    .setNotBefore(now + (c.nbf ?? 0))
    .setExpirationTime(now + (c.exp ?? 300))
    .setJti(`jwt_${randomUUID()}`)
    .sign(new TextEncoder().encode(c.key ?? CURRENT));
}

function delivery(raw: string, signature: string | null): Request {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'Upstash-QStash', 'upstash-message-id': 'msg_test', 'upstash-retried': '0' };
  if (signature !== null) headers['upstash-signature'] = signature;
  // request.url is the internal address a platform may show; verification must not use it.
  return request('POST', '/api/drain', { headers, body: raw });
}

const runs = () => t.db().collection(COLLECTIONS.runs).countDocuments();
const SIGNING_ENV = { QSTASH_CURRENT_SIGNING_KEY: CURRENT, QSTASH_NEXT_SIGNING_KEY: NEXT, PUBLIC_BASE_URL: PUBLIC };

beforeAll(async () => {
  await seedWorkflow(t.db(), { organizationId: 'acme' });
});
beforeEach(async () => {
  await useRouteContext(t.db(), t.client(), SIGNING_ENV);
});
afterAll(() => provideContext(null));

describe('valid deliveries drain', () => {
  it('signed with the current key → 200, one run recorded with trigger qstash', async () => {
    const raw = JSON.stringify({ orgId: 'acme' });
    const before = await runs();
    const res = await drain.POST(delivery(raw, await sign(raw)));
    expect(res.status, await res.clone().text()).toBe(200);
    const b = (await res.json()) as { run: { streamId: string; trigger: string } };
    expect(b.run).toMatchObject({ streamId: 'org:acme', trigger: 'qstash' });
    expect(await runs()).toBe(before + 1);
  });

  it('signed with the next key (rotation under way) → 200', async () => {
    const raw = JSON.stringify({ streamId: 'org:acme' });
    const res = await drain.POST(delivery(raw, await sign(raw, { key: NEXT })));
    expect(res.status).toBe(200);
  });

  it('a continuation message is recorded as trigger continuation', async () => {
    const raw = JSON.stringify({ streamId: 'org:acme', continuationOf: 'run-1' });
    const res = await drain.POST(delivery(raw, await sign(raw)));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { run: { trigger: string } }).run.trigger).toBe('continuation');
  });
});

describe('rejected deliveries → 401, nothing drained', () => {
  const raw = JSON.stringify({ orgId: 'acme' });
  const cases: [string, () => Promise<Request>][] = [
    ['no signature header', async () => delivery(raw, null)],
    ['garbage signature', async () => delivery(raw, 'not-a-jwt')],
    ['forged: signed with another key', async () => delivery(raw, await sign(raw, { key: 'sig_attacker_key' }))],
    ['expired', async () => delivery(raw, await sign(raw, { iat: -600, nbf: -600, exp: -300 }))],
    ['not valid yet', async () => delivery(raw, await sign(raw, { nbf: 120 }))],
    ['wrong issuer', async () => delivery(raw, await sign(raw, { iss: 'Mallory' }))],
    ['tampered body: another organization', async () => delivery(JSON.stringify({ orgId: 'acme2' }), await sign(raw))],
    ['tampered body: re-serialized JSON', async () => delivery('{ "orgId": "acme" }', await sign(raw))],
    ['wrong URL: the internal request.url', async () => delivery(raw, await sign(raw, { sub: 'http://localhost/api/drain' }))],
    ['wrong URL: another route', async () => delivery(raw, await sign(raw, { sub: `${PUBLIC}/api/trigger` }))],
    ['wrong URL: query string added', async () => delivery(raw, await sign(raw, { sub: `${URL_}?x=1` }))],
  ];
  it.each(cases)('%s', async (_name, build) => {
    const before = await runs();
    const res = await drain.POST(await build());
    expect(res.status).toBe(401);
    expect((await body(res)).error?.code).toBe('unauthorized');
    expect(await runs()).toBe(before);
  });
});

describe('redelivery decisions', () => {
  it('a signed request that can never succeed (unknown organization) → 489 + Upstash-NonRetryable-Error', async () => {
    const raw = JSON.stringify({ orgId: 'nobody' });
    const res = await drain.POST(delivery(raw, await sign(raw)));
    expect(res.status).toBe(489);
    expect(res.headers.get('upstash-nonretryable-error')).toBe('true');
    expect((await body(res)).error?.message).toContain('unknown organization');
  });

  it('a signed but malformed body → 489 as well', async () => {
    const raw = '{"orgId":';
    const res = await drain.POST(delivery(raw, await sign(raw)));
    expect(res.status).toBe(489);
    expect((await body(res)).error?.message).toContain('malformed JSON');
  });

  it('signing keys unset → 503 (QStash retries later), nothing drained', async () => {
    await useRouteContext(t.db(), t.client(), { PUBLIC_BASE_URL: PUBLIC });
    const raw = JSON.stringify({ orgId: 'acme' });
    const before = await runs();
    const res = await drain.POST(delivery(raw, await sign(raw)));
    expect(res.status).toBe(503);
    expect((await body(res)).error?.code).toBe('not_configured');
    expect(await runs()).toBe(before);
  });
});
