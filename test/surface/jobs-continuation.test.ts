/**
 * When `/api/jobs/process` publishes a continuation: only while due jobs remain AND the run made
 * progress, so a processor that cannot claim anything never loops through QStash. The processor is
 * replaced by a stub here; its own behaviour is tested in test/jobs.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import type { PublishMessage, Publisher } from '../../lib/qstash/publisher.js';
import { loadConfig } from '../../lib/platform/config.js';
import { silentLogger } from '../../lib/platform/log.js';
import { systemClock } from '../../lib/platform/clock.js';

const next = { moreDue: false, claimed: 0 };
vi.mock('../../lib/jobs/process.js', () => ({
  processJobs: vi.fn(async () => ({ owner: 'jobs:abc', succeeded: next.claimed, retried: 0, dead: 0, lost: 0, reclaimed: 0, abandonedDead: 0, stoppedBy: 'deadline', durationMs: 1, ...next })),
  jobMetrics: vi.fn(),
}));
const { processJobsAndContinue } = await import('../../lib/fanout/continuation.js');

const published: PublishMessage[] = [];
const publisher: Publisher = {
  publishBatch: async (m) => {
    published.push(...m);
    return m.map(() => ({ messageId: 'msg_1', deduplicated: false }));
  },
};

function ctx(withPublisher: boolean): AppContext {
  const config = loadConfig({ MONGODB_URI: 'mongodb://127.0.0.1:1', PUBLIC_BASE_URL: 'https://app.example', QSTASH_TOKEN: 't', QSTASH_CURRENT_SIGNING_KEY: 'k' });
  return { config, client: null as never, db: null as never, clock: systemClock, log: silentLogger, publisher: withPublisher ? publisher : null };
}

beforeEach(() => {
  published.length = 0;
});

describe('processJobsAndContinue', () => {
  it.each([
    ['nothing more due', { moreDue: false, claimed: 5 }, true, null],
    ['more due and progress made → continuation', { moreDue: true, claimed: 5 }, true, 'published'],
    ['more due but nothing claimed → no loop', { moreDue: true, claimed: 0 }, true, 'no_progress'],
    ['more due without QStash → next cron tick', { moreDue: true, claimed: 5 }, false, 'qstash_not_configured'],
  ] as const)('%s', async (_n, summary, withPublisher, expected) => {
    Object.assign(next, summary);
    const { continuation } = await processJobsAndContinue(ctx(withPublisher));
    if (expected === null) expect(continuation).toBeNull();
    else if (expected === 'published') expect(continuation).toMatchObject({ published: true });
    else expect(continuation).toEqual({ published: false, reason: expected });
    expect(published).toHaveLength(expected === 'published' ? 1 : 0);
  });

  it('addresses the continuation to the public URL, deduplicated by the run owner', async () => {
    Object.assign(next, { moreDue: true, claimed: 1 });
    await processJobsAndContinue(ctx(true));
    expect(published[0]).toEqual({
      url: 'https://app.example/api/jobs/process',
      body: { continuationOf: 'jobs:abc' },
      deduplicationId: 'jobs-cont-jobs_abc',
      flowControlKey: 'jobs-process',
    });
  });
});
