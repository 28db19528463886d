import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { AppContext } from '../../../lib/platform/context.js';
import { COLLECTIONS } from '../../../lib/data/mongo.js';
import { useJobsDb, type JobsDb } from './db.js';
import { FakeClock } from './fake-clock.js';
import { startReceiver, type Receiver } from './receiver.js';

/** What every processor test starts from: an empty jobs collection, a receiver answering 200, a fresh fake clock. */
export interface JobsHarness {
  receiver: Receiver;
  clock: FakeClock;
  ctx: AppContext;
}

/**
 * A database, a live webhook receiver for the file, and before each test an empty jobs collection,
 * a receiver answering 200 with no hits, a new FakeClock and a context over them. `ready` hands
 * the fresh values to the file (one hook, so they are set before the test body runs).
 */
export function useJobsHarness(name: string, ready: (h: JobsHarness) => void): JobsDb {
  const t = useJobsDb(name);
  let receiver: Receiver | undefined;
  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
  });
  beforeEach(async () => {
    await t.db.collection(COLLECTIONS.jobs).deleteMany({});
    receiver!.hits.length = 0;
    receiver!.behave = () => ({ status: 200 });
    const clock = new FakeClock();
    // max 3 attempts, backoff base 1 s / cap 60 s, lease 30 s, request timeout 5 s (support/config.ts)
    ready({ receiver: receiver!, clock, ctx: await t.context(clock) });
  });
  return t;
}
