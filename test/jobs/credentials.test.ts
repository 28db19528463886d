/**
 * Credentials in webhook URLs: sent as `Authorization: Basic`, never stored, logged or returned;
 * a step that also sets Authorization is refused when the workflow is read; a request that can
 * never be built is not retried.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { processJobs } from '../../lib/jobs/process.js';
import { createStepRegistry } from '../../lib/jobs/steps.js';
import { NonRetryableStepError } from '../../lib/jobs/errors.js';
import { compileWorkflow } from '../../lib/dispatch/workflows.js';
import { jsonLogger, type Logger } from '../../lib/platform/log.js';
import { errorResponse } from '../../lib/http/route.js';
import { AppError } from '../../lib/platform/errors.js';
import { redact } from '../../lib/platform/redact.js';
import { renderStatus } from '../../lib/status/render.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { getJob, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const t = useJobsHarness('jobs_credentials', (h) => ({ receiver, clock, ctx } = h));

const PASSWORD = 'S3cretPassw0rd';
const withCredentials = () => receiver.url.replace('http://', `http://hookuser:${PASSWORD}@`);

/** A logger that keeps what it is given, as the JSON line the real one would write. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (lines.push(String(chunk)), true));
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (lines.push(String(chunk)), true));
  return Object.assign(jsonLogger('debug'), { lines });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('credentials in webhook URLs', () => {
  it('are sent as Authorization: Basic and the receiver gets the request (Node fetch refuses them in the URL)', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url: withCredentials() }], new Date(clock.now()))]);
    expect(await processJobs(ctx)).toMatchObject({ succeeded: 1, retried: 0, dead: 0 });
    expect(receiver.hits).toHaveLength(1);
    expect(receiver.hits[0]!.path).toBe('/hook');
    expect(receiver.hits[0]!.headers.authorization).toBe(`Basic ${Buffer.from(`hookuser:${PASSWORD}`).toString('base64')}`);
    expect((await getJob(t.db, job!.key)).status).toBe('succeeded');
  });

  it('never reach lastError, the job-dead log line or an error response', async () => {
    const log = recordingLogger();
    // A step whose error message quotes the URL, as third-party clients often do.
    const steps = createStepRegistry({
      leaky: async (step) => {
        throw new NonRetryableStepError('leaky_failed', `request to ${String(step.url)} was refused`);
      },
    });
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'leaky', url: withCredentials() }], new Date(clock.now()))]);
    expect(await processJobs({ ...ctx, log }, { steps })).toMatchObject({ dead: 1 });
    const stored = await getJob(t.db, job!.key);
    expect(stored.lastError!.message).toMatch(/request to http:\/\/\*\*\*@127\.0\.0\.1:\d+\/hook was refused/);
    expect(JSON.stringify(stored.lastError)).not.toContain(PASSWORD);
    const dead = log.lines.find((l) => l.includes('"job dead"'));
    expect(dead).toBeDefined();
    expect(dead).toContain('***@127.0.0.1');
    expect(log.lines.join('')).not.toContain(PASSWORD);

    const res = errorResponse(new AppError('conflict', `could not reach ${withCredentials()}`), log);
    const text = await res.text();
    expect(text).toContain('***@127.0.0.1');
    expect(text).not.toContain(PASSWORD);
  });

  it('a step with credentials in the URL and its own Authorization header is refused when the workflow is read', () => {
    const wf = compileWorkflow({
      _id: 'wf-auth',
      organizationId: 'acme',
      formId: 'contact',
      status: 'active',
      steps: [{ type: 'webhook', url: `https://hookuser:${PASSWORD}@hooks.example/in`, headers: { authorization: 'Bearer t' } }],
    });
    expect(wf).toMatchObject({ id: 'wf-auth', reason: expect.stringMatching(/steps\.0\.url: the url carries credentials .* and headers set Authorization too/) });
    expect(JSON.stringify(wf)).not.toContain(PASSWORD);
  });

  it('a job already queued with such a step goes to dead at once with the reason', async () => {
    const step = { type: 'webhook', url: withCredentials(), headers: { Authorization: 'Bearer t' } };
    const [job] = await insertJobs(t.db, [newJob(0, [step], new Date(clock.now()))]);
    await processJobs(ctx);
    const stored = await getJob(t.db, job!.key);
    expect(stored).toMatchObject({ status: 'dead', attempts: 1, lastError: { code: 'invalid_step', retryable: false } });
    expect(stored.lastError!.message).toMatch(/credentials/);
    expect(receiver.hits).toHaveLength(0);
  });

  it('a request that can never be built (undecodable credentials) is dead at once, not retried', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url: receiver.url.replace('http://', 'http://user:%E0%A4%A@') }], new Date(clock.now()))]);
    expect(await processJobs(ctx)).toMatchObject({ dead: 1, retried: 0 });
    const stored = await getJob(t.db, job!.key);
    expect(stored).toMatchObject({ status: 'dead', attempts: 1, lastError: { code: 'webhook_invalid_request', retryable: false } });
    expect(stored.lastError!.message).toMatch(/the request cannot be built/);
    expect(receiver.hits).toHaveLength(0);
  });

  it('a fetch that refuses to build the request (TypeError without a cause) is not retried either', async () => {
    const refusing: typeof fetch = async () => {
      throw new TypeError('Headers.append: "x" is an invalid header value.');
    };
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url: receiver.url }], new Date(clock.now()))]);
    expect(await processJobs(ctx, { fetch: refusing })).toMatchObject({ dead: 1, retried: 0 });
    expect(await getJob(t.db, job!.key)).toMatchObject({ status: 'dead', attempts: 1, lastError: { code: 'webhook_invalid_request' } });
  });

  it('the status report never shows them, even in a message stored before redaction existed', async () => {
    const report = { streams: [{ id: 'org:acme', lastRun: { error: { code: 'x', message: `GET ${withCredentials()} failed` } } }] };
    const text = await renderStatus(report as never, 'json').text();
    expect(text).toContain('***@127.0.0.1');
    expect(text).not.toContain(PASSWORD);
  });

  it('redact removes the userinfo of every URL in a text, passwords with @ included', () => {
    expect(redact(`webhook http://hookuser:${PASSWORD}@127.0.0.1:8080/hook and mongodb+srv://u:p@ss@cluster.example/db`)).toBe(
      'webhook http://***@127.0.0.1:8080/hook and mongodb+srv://***@cluster.example/db',
    );
  });
});
