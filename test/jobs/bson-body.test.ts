/**
 * The webhook body a receiver gets for a submission holding BSON values, end to end through the
 * jobs collection (so the values are what the driver reads back, not what the test wrote).
 */
import { describe, expect, it } from 'vitest';
import { BSON } from 'mongodb';
import type { AppContext } from '../../lib/platform/context.js';
import { processJobs } from '../../lib/jobs/process.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const t = useJobsHarness('jobs_bson_body', (h) => ({ receiver, clock, ctx } = h));

describe('webhook body: BSON values as the documented JSON', () => {
  it('data.userId = Long("708198820995006475") reaches the receiver as the exact digits', async () => {
    const submission = {
      _id: new BSON.ObjectId('65a0000000000000000000ab'),
      organizationId: 'acme',
      formId: 'contact',
      data: {
        userId: BSON.Long.fromString('708198820995006475'),
        amount: BSON.Decimal128.fromString('19.90'),
        avatar: new BSON.Binary(Buffer.from('png'), 0),
        pattern: new BSON.BSONRegExp('^a', 'i'),
      },
      submittedAt: new Date(Date.UTC(2025, 0, 31, 12)),
    };
    await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url: receiver.url }], new Date(clock.now()), { submission })]);
    expect(await processJobs(ctx)).toMatchObject({ succeeded: 1 });
    const raw = receiver.hits[0]!.rawBody;
    expect(raw).toContain('"userId":"708198820995006475"');
    expect(receiver.hits[0]!.body?.submission).toEqual({
      _id: '65a0000000000000000000ab',
      organizationId: 'acme',
      formId: 'contact',
      data: { userId: '708198820995006475', amount: '19.90', avatar: { base64: 'cG5n', subType: '00' }, pattern: { pattern: '^a', flags: 'i' } },
      submittedAt: '2025-01-31T12:00:00.000Z',
    });
  });
});
