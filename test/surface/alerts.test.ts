/**
 * Alerts (promise 5: no silent gap): a JSON POST to ALERT_WEBHOOK_URL when a stream becomes
 * failing, a gap is recorded, a dead-letter queue grows or a resume point nears the oplog window —
 * once per change, however often and however concurrently the check runs.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAlerts, evaluateConditions, transition, type Alert } from '../../lib/status/alerts.js';
import type { Clock } from '../../lib/platform/clock.js';
import { provideContext, type AppContext } from '../../lib/platform/context.js';
import type { CheckpointDoc } from '../../lib/data/documents.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { useTestDb } from '../support/mongo.js';
import { useRouteContext } from '../api/support.js';
import { gap, seedStatus } from './seed.js';

const t = useTestDb('surface_alerts');
const NOW = Date.parse('2025-06-01T12:00:30Z');
const fixed: Clock = { now: () => NOW, sleep: async () => undefined };
/** Beta's resume point is 2 h old; a 3 h window with the default half-way threshold trips it. */
const OPTS = { oplogWindowMs: 3 * 3_600_000 };

let sink: Server;
let received: { alert: Alert; source: string }[] = [];
let sinkStatus = 200;
let ctx: AppContext;

beforeAll(async () => {
  sink = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      if (sinkStatus === 200) received.push(JSON.parse(raw) as { alert: Alert; source: string });
      res.writeHead(sinkStatus).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  await seedStatus(t.db(), NOW);
  ctx = await useRouteContext(t.db(), t.client(), { ALERT_WEBHOOK_URL: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/alerts` }, { clock: fixed });
});
afterAll(async () => {
  provideContext(null);
  await new Promise<void>((r) => sink.close(() => r()));
});

const kinds = (alerts: { alert: Alert }[]) => alerts.map((a) => `${a.alert.kind}:${a.alert.status}:${a.alert.streamId ?? '-'}`).sort();

describe('transition (pure)', () => {
  const state = { key: 'k', kind: 'stream_failing', type: 'state', streamId: 's', value: 1, message: 'm' } as const;
  const counter = { key: 'c', kind: 'gap_recorded', type: 'counter', streamId: 's', value: 3, message: 'm' } as const;
  it.each([
    ['state turns on', state, null, 'firing'],
    ['state stays on', state, 1, null],
    ['state turns off', { ...state, value: 0 }, 1, 'resolved'],
    ['state never on', { ...state, value: 0 }, null, null],
    ['counter grows from nothing', counter, null, 'firing'],
    ['counter grows', counter, 2, 'firing'],
    ['counter unchanged', counter, 3, null],
    ['counter shrinks (replayed)', counter, 5, null],
  ] as const)('%s', (_n, cond, prev, expected) => {
    expect(transition(cond, prev, new Date(NOW))?.status ?? null).toBe(expected);
  });
});

describe('checkAlerts', () => {
  it('sends one alert per condition that changed, and nothing when the check runs again', async () => {
    const first = await checkAlerts(ctx, OPTS);
    expect(first.failed).toBe(0);
    expect(kinds(received)).toEqual([
      'dead_letters_grew:firing:-', // trigger dead letters 0 → 1
      'dead_letters_grew:firing:-', // dead jobs 0 → 1
      'gap_recorded:firing:org:beta',
      'oplog_window_near:firing:org:beta',
      'stream_failing:firing:org:beta',
    ]);
    expect(received.every((r) => r.source === 'mongo-stream-triggers')).toBe(true);
    expect(received.find((r) => r.alert.kind === 'gap_recorded')?.alert.message).toContain('0 → 2');
    received = [];
    await checkAlerts(ctx, OPTS);
    await checkAlerts(ctx, OPTS);
    expect(received).toEqual([]);
  });

  it('a new gap alerts exactly once even when checks run concurrently', async () => {
    await t.db().collection<CheckpointDoc>(COLLECTIONS.checkpoints).updateOne({ _id: 'org:acme' }, { $push: { gaps: gap(NOW, 3) }, $inc: { gapCount: 1 } });
    received = [];
    await Promise.all([checkAlerts(ctx, OPTS), checkAlerts(ctx, OPTS), checkAlerts(ctx, OPTS)]);
    expect(kinds(received)).toEqual(['gap_recorded:firing:org:acme']);
  });

  it('a stream that recovers sends one resolved alert', async () => {
    await t.db().collection<CheckpointDoc>(COLLECTIONS.checkpoints).updateOne({ _id: 'org:beta' }, { $set: { state: 'idle', consecutiveFailures: 0 } });
    received = [];
    await checkAlerts(ctx, OPTS);
    await checkAlerts(ctx, OPTS);
    expect(kinds(received)).toEqual(['stream_failing:resolved:org:beta']);
  });

  it('an alert the receiver refused is sent again by the next check', async () => {
    await t.db().collection(COLLECTIONS.deadLetters).insertOne({ key: 'org:beta:3', streamId: 'org:beta', replayedAt: null, createdAt: new Date(NOW) });
    received = [];
    sinkStatus = 500;
    const refused = await checkAlerts(ctx, OPTS);
    expect(refused).toMatchObject({ sent: [], failed: 1 });
    sinkStatus = 200;
    const retried = await checkAlerts(ctx, OPTS);
    expect(retried.sent.map((a) => a.message)).toEqual(['trigger dead-letter queue grew: 1 → 2']);
    expect(kinds(received)).toEqual(['dead_letters_grew:firing:-']);
  });

  it('a dead-letter queue that shrank (replayed) alerts again only when it grows past the new size', async () => {
    await t.db().collection(COLLECTIONS.deadLetters).updateMany({}, { $set: { replayedAt: new Date(NOW) } });
    received = [];
    await checkAlerts(ctx, OPTS);
    expect(received).toEqual([]);
    await t.db().collection(COLLECTIONS.deadLetters).insertOne({ key: 'org:beta:4', streamId: 'org:beta', replayedAt: null, createdAt: new Date(NOW) });
    await checkAlerts(ctx, OPTS);
    expect(received.map((r) => r.alert.message)).toEqual(['trigger dead-letter queue grew: 0 → 1']);
  });

  it('does nothing without ALERT_WEBHOOK_URL', async () => {
    const quiet = await useRouteContext(t.db(), t.client(), {}, { clock: fixed });
    expect(await checkAlerts(quiet, OPTS)).toEqual({ sent: [], failed: 0 });
    provideContext(ctx);
  });

  it('never puts the webhook URL into an alert', () => {
    const url = ctx.config.ALERT_WEBHOOK_URL!.reveal();
    const conds = evaluateConditions({ streams: [], deadLetters: { events: 0, jobs: 0 } } as never, OPTS);
    expect(JSON.stringify(conds)).not.toContain(url);
    expect(JSON.stringify(received)).not.toContain(url);
  });
});
