/**
 * Forged QStash deliveries to `POST /api/drain`: every one must be a 401 that drains nothing; a
 * genuine delivery afterwards drains the submissions that were waiting.
 */
import { createHash } from 'node:crypto';
import { SignJWT } from 'jose';
import * as drainRoute from '../../../api/drain.js';
import { CheckpointStore } from '../../../lib/streams/checkpoint.js';
import { provideContext } from '../../../lib/platform/context.js';
import { drainStream } from '../../../lib/drain/drain.js';
import { COLLECTIONS } from '../../../lib/data/mongo.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { signDelivery } from '../../../dev/qstash/keys.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';
import { CRON, PUBLIC_BASE_URL, request, routeContext, SIGNING } from './routes.js';

const URL_ = `${PUBLIC_BASE_URL}/api/drain`;
const enc = (s: string) => new TextEncoder().encode(s);

type Forgery = [name: string, make: (raw: string, now: number) => Promise<{ body: string; headers: Record<string, string> }>];

const signed = (key: string, url: string, body: string, nowMs: number) => signDelivery({ key, url, body: enc(body), nowMs });
const qstashHeaders = (signature: string | null): Record<string, string> => ({
  'content-type': 'application/json',
  'upstash-message-id': 'msg_forged',
  ...(signature === null ? {} : { 'upstash-signature': signature }),
});

/** Each forgery gets a fresh body for the trial's organization. */
const FORGERIES: Forgery[] = [
  ['no signature, no bearer', async (raw) => ({ body: raw, headers: qstashHeaders(null) })],
  ['garbage signature', async (raw) => ({ body: raw, headers: qstashHeaders('not-a-jwt') })],
  ['signed with an unknown key', async (raw, now) => ({ body: raw, headers: qstashHeaders(await signed('sig_attacker_key_000000000000', URL_, raw, now)) })],
  ['expired (issued 10 min ago)', async (raw, now) => ({ body: raw, headers: qstashHeaders(await signed(SIGNING.current, URL_, raw, now - 600_000)) })],
  ['not yet valid (issued 10 min ahead)', async (raw, now) => ({ body: raw, headers: qstashHeaders(await signed(SIGNING.current, URL_, raw, now + 600_000)) })],
  ['tampered body', async (raw, now) => ({ body: raw.replace('}', ',"continuationOf":"x"}'), headers: qstashHeaders(await signed(SIGNING.current, URL_, raw, now)) })],
  ['signed for another URL', async (raw, now) => ({ body: raw, headers: qstashHeaders(await signed(SIGNING.current, `${PUBLIC_BASE_URL}/api/jobs/process`, raw, now)) })],
  ['signed for another host', async (raw, now) => ({ body: raw, headers: qstashHeaders(await signed(SIGNING.current, 'https://evil.example.com/api/drain', raw, now)) })],
  ['alg none', async (raw) => ({ body: raw, headers: qstashHeaders(unsignedJwt(raw)) })],
  ['wrong issuer', async (raw, now) => ({ body: raw, headers: qstashHeaders(await wrongIssuer(raw, now)) })],
  ['forged signature beside a valid cron bearer', async (raw, now) => ({ body: raw, headers: { ...qstashHeaders(await signed('sig_attacker_key_000000000000', URL_, raw, now)), authorization: `Bearer ${CRON}` } })],
  ['wrong cron bearer', async (raw) => ({ body: raw, headers: { 'content-type': 'application/json', authorization: 'Bearer guessed-secret' } })],
];

export const signaturesScenario: Scenario = {
  name: 'forged QStash signatures',
  promises: '6, 1',
  description: `POST /api/drain with ${FORGERIES.length} kinds of forged, expired, tampered or misaddressed deliveries: each must answer 401 and drain nothing; a genuine delivery then drains everything that waited`,
  full: { trials: 3, events: 50 },
  quick: { trials: 1, events: 20 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await routeContext(env);
    const store = new CheckpointStore(env.db);
    try {
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgId = trialOrg('sig', t);
        const stream = orgStream(orgId);
        await seedWorkflow(env.db, orgId);
        await drainStream(ctx, stream);
        const { ids } = await insertBacklog(env.db, orgId, opts.events, 25);
        const raw = JSON.stringify({ orgId });
        const runsBefore = await env.db.collection(COLLECTIONS.runs).countDocuments({ streamId: stream.id });
        const tokenBefore = (await store.get(stream.id))?.token;
        let refused = 0;
        for (const [name, make] of FORGERIES) {
          const { body, headers } = await make(raw, Date.now());
          const res = await drainRoute.POST(request('POST', '/api/drain', headers, body));
          if (res.status === 401) refused++;
          else tally.check(false, `trial ${t}: "${name}" answered ${res.status}`);
        }
        tally.rejections(FORGERIES.length, refused);
        const runsAfter = await env.db.collection(COLLECTIONS.runs).countDocuments({ streamId: stream.id });
        const jobsAfter = await env.db.collection(COLLECTIONS.jobs).countDocuments({ organizationId: orgId });
        tally.check(runsAfter === runsBefore && jobsAfter === 0, `trial ${t}: forged deliveries drained (${runsAfter - runsBefore} runs, ${jobsAfter} jobs)`);
        tally.check(JSON.stringify((await store.get(stream.id))?.token) === JSON.stringify(tokenBefore), `trial ${t}: the token moved under forged deliveries`);

        const genuine = await drainRoute.POST(request('POST', '/api/drain', qstashHeaders(await signed(SIGNING.current, URL_, raw, Date.now())), raw));
        tally.check(genuine.status === 200, `trial ${t}: the genuine delivery answered ${genuine.status}`);
        const rotated = await drainRoute.POST(request('POST', '/api/drain', qstashHeaders(await signed(SIGNING.next, URL_, raw, Date.now())), raw));
        tally.check(rotated.status === 200, `trial ${t}: a delivery signed with the next key answered ${rotated.status}`);
        await tally.jobs(env.db, orgId, ids);
      }
      tally.note(`forgeries: ${FORGERIES.map(([n]) => n).join('; ')}`);
      return tally.done();
    } finally {
      provideContext(null);
    }
  },
};

function unsignedJwt(raw: string): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = createHash('sha256').update(raw).digest('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'Upstash', sub: URL_, iat: now, nbf: now, exp: now + 300, jti: 'jwt_none', body })}.`;
}

async function wrongIssuer(raw: string, nowMs: number): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  return new SignJWT({ body: createHash('sha256').update(raw).digest('base64url') })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('NotUpstash')
    .setSubject(URL_)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .setJti('jwt_wrong_issuer')
    .sign(enc(SIGNING.current));
}
