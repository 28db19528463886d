/**
 * Malformed requests on every route: wrong methods, missing or wrong credentials, bad JSON, wrong
 * media types, oversized bodies, bodies that break the schema, unknown targets. Each must get a 4xx
 * whose JSON error names the problem, and nothing may be written.
 */
import * as fanout from '../../../api/cron/fanout.js';
import * as drain from '../../../api/drain.js';
import * as health from '../../../api/health.js';
import * as jobsProcess from '../../../api/jobs/process.js';
import * as retry from '../../../api/jobs/retry.js';
import * as status from '../../../api/status.js';
import * as trigger from '../../../api/trigger.js';
import { provideContext } from '../../../lib/platform/context.js';
import { MAX_BODY_BYTES } from '../../../lib/http/body.js';
import { COLLECTIONS } from '../../../lib/data/mongo.js';
import { seedWorkflow } from '../../bench/setup.js';
import { Tally, trialOrg } from '../support.js';
import type { FaultEnv, Scenario } from '../types.js';
import { ADMIN, CRON, errorOf, request, routeContext } from './routes.js';

type Handler = (request: Request) => Promise<Response>;
interface Case {
  route: string;
  name: string;
  call: Handler;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  status: number;
  /** Text the error message must contain (it names the problem). */
  mentions: string;
}

const json = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
const OVERSIZED = JSON.stringify({ orgId: 'x', pad: 'x'.repeat(MAX_BODY_BYTES) });

function cases(orgId: string): Case[] {
  const c = (route: string, name: string, call: Handler, method: string, path: string, headers: Record<string, string>, body: string | undefined, status: number, mentions: string): Case => ({ route, name, call, method, path, headers, ...(body !== undefined ? { body } : {}), status, mentions });
  return [
    c('cron/fanout', 'no credentials', fanout.GET, 'GET', '/api/cron/fanout', {}, undefined, 401, 'unauthorized'),
    c('cron/fanout', 'wrong bearer', fanout.GET, 'GET', '/api/cron/fanout', { authorization: 'Bearer nope' }, undefined, 401, 'unauthorized'),
    c('cron/fanout', 'POST', fanout.POST, 'POST', '/api/cron/fanout', json(CRON), '{}', 405, 'use GET'),
    c('drain', 'no credentials', drain.POST, 'POST', '/api/drain', { 'content-type': 'application/json' }, JSON.stringify({ orgId }), 401, 'unauthorized'),
    c('drain', 'admin token instead of cron', drain.POST, 'POST', '/api/drain', json(ADMIN), JSON.stringify({ orgId }), 401, 'unauthorized'),
    c('drain', 'malformed JSON', drain.POST, 'POST', '/api/drain', json(CRON), '{orgId:', 400, 'malformed JSON'),
    c('drain', 'empty body', drain.POST, 'POST', '/api/drain', json(CRON), '', 400, 'empty'),
    c('drain', 'empty object', drain.POST, 'POST', '/api/drain', json(CRON), '{}', 400, 'exactly one of orgId or streamId'),
    c('drain', 'unknown key', drain.POST, 'POST', '/api/drain', json(CRON), JSON.stringify({ org: orgId }), 400, 'org'),
    c('drain', 'text/plain', drain.POST, 'POST', '/api/drain', { authorization: `Bearer ${CRON}`, 'content-type': 'text/plain' }, JSON.stringify({ orgId }), 415, 'application/json'),
    c('drain', 'oversized body', drain.POST, 'POST', '/api/drain', json(CRON), OVERSIZED, 413, 'exceeds'),
    c('drain', 'unknown organization', drain.POST, 'POST', '/api/drain', json(CRON), '{"orgId":"nobody_here"}', 404, 'unknown organization'),
    c('drain', 'invalid orgId', drain.POST, 'POST', '/api/drain', json(CRON), '{"orgId":"a b/c"}', 400, 'not a valid organization id'),
    c('drain', 'GET', drain.GET, 'GET', '/api/drain', json(CRON), undefined, 405, 'use POST'),
    c('trigger', 'no credentials', trigger.POST, 'POST', '/api/trigger', { 'content-type': 'application/json' }, JSON.stringify({ orgId }), 401, 'unauthorized'),
    c('trigger', 'cron secret instead of admin', trigger.POST, 'POST', '/api/trigger', json(CRON), JSON.stringify({ orgId }), 401, 'unauthorized'),
    c('trigger', 'malformed JSON', trigger.POST, 'POST', '/api/trigger', json(ADMIN), '{"orgId": ', 400, 'malformed JSON'),
    c('trigger', 'empty object', trigger.POST, 'POST', '/api/trigger', json(ADMIN), '{}', 400, 'exactly one of orgId, streamId or all: true'),
    c('trigger', 'orgIds: [] (empty never means all)', trigger.POST, 'POST', '/api/trigger', json(ADMIN), '{"orgIds": []}', 400, 'orgIds'),
    c('trigger', 'all: false', trigger.POST, 'POST', '/api/trigger', json(ADMIN), '{"all": false}', 400, 'all must be true'),
    c('trigger', 'reconcileSince not a time', trigger.POST, 'POST', '/api/trigger', json(ADMIN), JSON.stringify({ orgId, reconcileSince: 'yesterday' }), 400, 'ISO 8601'),
    c('trigger', 'submissionId without orgId', trigger.POST, 'POST', '/api/trigger', json(ADMIN), JSON.stringify({ streamId: `org:${orgId}`, submissionId: 'x' }), 400, 'submissionId needs orgId'),
    c('trigger', 'form content type', trigger.POST, 'POST', '/api/trigger', { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/x-www-form-urlencoded' }, 'orgId=x', 415, 'application/json'),
    c('trigger', 'oversized body', trigger.POST, 'POST', '/api/trigger', json(ADMIN), OVERSIZED, 413, 'exceeds'),
    c('trigger', 'unknown organization', trigger.POST, 'POST', '/api/trigger', json(ADMIN), '{"orgId":"nobody_here"}', 404, 'unknown organization'),
    c('trigger', 'unknown submission', trigger.POST, 'POST', '/api/trigger', json(ADMIN), JSON.stringify({ orgId, submissionId: '65a000000000000000000000' }), 404, 'not found'),
    c('status', 'no credentials', status.GET, 'GET', '/api/status', {}, undefined, 401, 'unauthorized'),
    c('status', 'unknown format', status.GET, 'GET', '/api/status?format=xml', { authorization: `Bearer ${ADMIN}` }, undefined, 400, 'format must be one of'),
    c('status', 'DELETE', status.DELETE, 'DELETE', '/api/status', { authorization: `Bearer ${ADMIN}` }, undefined, 405, 'use GET'),
    c('jobs/process', 'GET without credentials', jobsProcess.GET, 'GET', '/api/jobs/process', {}, undefined, 401, 'unauthorized'),
    c('jobs/process', 'POST with a wrong bearer', jobsProcess.POST, 'POST', '/api/jobs/process', json('nope'), '{}', 401, 'unauthorized'),
    c('jobs/process', 'POST with a forged signature', jobsProcess.POST, 'POST', '/api/jobs/process', { 'content-type': 'application/json', 'upstash-signature': 'forged' }, '{}', 401, 'signature'),
    c('jobs/process', 'PUT', jobsProcess.PUT, 'PUT', '/api/jobs/process', json(CRON), '{}', 405, 'use GET, POST'),
    c('jobs/retry', 'no credentials', retry.POST, 'POST', '/api/jobs/retry', { 'content-type': 'application/json' }, '{"ids":["a"]}', 401, 'unauthorized'),
    c('jobs/retry', 'ids: []', retry.POST, 'POST', '/api/jobs/retry', json(ADMIN), '{"ids":[]}', 400, 'ids must not be empty'),
    c('jobs/retry', 'empty filter without all', retry.POST, 'POST', '/api/jobs/retry', json(ADMIN), '{"filter":{}}', 400, 'empty filter would select every dead job'),
    c('jobs/retry', 'from after to', retry.POST, 'POST', '/api/jobs/retry', json(ADMIN), '{"filter":{"from":"2025-02-01T00:00:00Z","to":"2025-01-01T00:00:00Z"}}', 400, 'from must be before to'),
    c('jobs/retry', 'malformed JSON', retry.POST, 'POST', '/api/jobs/retry', json(ADMIN), '{"ids": [', 400, 'malformed JSON'),
    c('jobs/retry', 'text/plain', retry.POST, 'POST', '/api/jobs/retry', { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/plain' }, '{"ids":["a"]}', 415, 'application/json'),
    c('jobs/retry', 'GET', retry.GET, 'GET', '/api/jobs/retry', json(ADMIN), undefined, 405, 'use POST'),
    c('health', 'POST', health.POST, 'POST', '/api/health', {}, '{}', 405, 'use GET'),
  ];
}

const WRITTEN = [COLLECTIONS.runs, COLLECTIONS.checkpoints, COLLECTIONS.jobs, COLLECTIONS.fanoutTicks, COLLECTIONS.deadLetters, COLLECTIONS.alerts];

async function writes(env: FaultEnv): Promise<number[]> {
  return Promise.all(WRITTEN.map((c) => env.db.collection(c).countDocuments()));
}

export const malformedScenario: Scenario = {
  name: 'malformed requests, every route',
  promises: '6',
  description:
    'wrong methods, missing or wrong credentials, malformed JSON, wrong media types, oversized bodies, schema violations and unknown targets on all seven routes: each gets a 4xx JSON error naming the problem, and no run, checkpoint, job, tick, dead letter or alert is written',
  full: { trials: 2, events: 0 },
  quick: { trials: 1, events: 0 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    await routeContext(env);
    try {
      let perTrial = 0;
      const routes = new Set<string>();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgId = trialOrg('bad', t);
        await seedWorkflow(env.db, orgId);
        const list = cases(orgId);
        perTrial = list.length;
        const before = await writes(env);
        let asExpected = 0;
        for (const k of list) {
          routes.add(k.route);
          const res = await k.call(request(k.method, k.path, k.headers, k.body));
          const error = await errorOf(res);
          const text = `${error.code ?? ''} ${error.message ?? ''}`;
          if (res.status === k.status && text.includes(k.mentions)) asExpected++;
          else tally.check(false, `${k.route} ${k.name}: ${res.status} "${text.trim()}" (expected ${k.status} mentioning "${k.mentions}")`);
        }
        tally.rejections(list.length, asExpected);
        const after = await writes(env);
        tally.check(JSON.stringify(before) === JSON.stringify(after), `trial ${t}: something was written (${WRITTEN.map((c, i) => `${c} ${before[i]}→${after[i]}`).join(', ')})`);
      }
      tally.note(`${perTrial} requests per trial over ${routes.size} routes (${[...routes].join(', ')})`);
      return tally.done();
    } finally {
      provideContext(null);
    }
  },
};
