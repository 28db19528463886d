/**
 * Webhook destinations through the processor's default HTTP client (lib/jobs/guarded-fetch.ts): private
 * and loopback destinations are refused on the address actually connected to, at once and for
 * good, with the reason; WEBHOOK_ALLOW_HOSTS lets listed ones through.
 */
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { processJobs } from '../../lib/jobs/process.js';
import { useJobsHarness } from './support/harness.js';
import { jobsConfig } from './support/config.js';
import type { FakeClock } from './support/fake-clock.js';
import { getJob, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const t = useJobsHarness('jobs_destination', (h) => ({ receiver, clock, ctx } = h));

/** The harness context with the product default: no WEBHOOK_ALLOW_HOSTS. */
const strict = (): AppContext => ({ ...ctx, config: jobsConfig({ WEBHOOK_ALLOW_HOSTS: '' }) });
const port = () => new URL(receiver.url).port;

async function runOne(context: AppContext, url: string) {
  const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url }], new Date(clock.now()))]);
  const summary = await processJobs(context);
  return { summary, stored: await getJob(t.db, job!.key) };
}

describe('webhook destinations: refused unless public or allowed', () => {
  it.each([
    ['IPv4 loopback', () => `http://127.0.0.1:${port()}/hook`, /destination 127\.0\.0\.1 is loopback/],
    ['IPv6 loopback', () => `http://[::1]:${port()}/hook`, /destination ::1 is loopback/],
    ['IPv4-mapped IPv6 loopback', () => `http://[::ffff:127.0.0.1]:${port()}/hook`, /loopback.*carried in IPv6/],
    ['private 10/8', () => 'http://10.0.0.5/', /destination 10\.0\.0\.5 is private/],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/', /link-local/],
    ['IPv6 unique-local', () => 'http://[fd00::5]/', /unique-local/],
    ['a host name resolving to loopback', () => `http://localhost:${port()}/hook`, /destination localhost \(resolves to (127\.0\.0\.1|::1)\) is loopback/],
  ])('%s: dead on the first attempt, not retried, the reason kept, nothing sent', async (_name, url, reason) => {
    const { summary, stored } = await runOne(strict(), url());
    expect(summary).toMatchObject({ claimed: 1, dead: 1, retried: 0 });
    expect(stored).toMatchObject({ status: 'dead', attempts: 1 });
    expect(stored.lastError).toMatchObject({ code: 'webhook_destination_refused', retryable: false });
    expect(stored.lastError!.message).toMatch(reason);
    expect(stored.lastError!.message).toMatch(/WEBHOOK_ALLOW_HOSTS/);
    expect(receiver.hits).toHaveLength(0);
  });

  it('a destination inside an allowed CIDR range is called', async () => {
    const { summary, stored } = await runOne({ ...ctx, config: jobsConfig({ WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8' }) }, receiver.url);
    expect(summary).toMatchObject({ succeeded: 1 });
    expect(stored.status).toBe('succeeded');
    expect(receiver.hits).toHaveLength(1);
  });

  it('an allowed range does not open other private ranges', async () => {
    const { stored } = await runOne({ ...ctx, config: jobsConfig({ WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8' }) }, 'http://10.0.0.5/');
    expect(stored).toMatchObject({ status: 'dead', attempts: 1, lastError: { code: 'webhook_destination_refused' } });
  });
});
