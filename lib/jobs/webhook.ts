import { z } from 'zod';
import type { WorkflowStep, ProcessedJobDoc } from '../data/documents.js';
import { squashError } from '../platform/errors.js';
import { stringifyJson } from '../data/bson-json.js';
import { DestinationRefusedError } from '../platform/destination.js';
import { redact, redactUrl } from '../platform/redact.js';
import { parseRetryAfter } from './backoff.js';
import { NonRetryableStepError, RetryableStepError } from './errors.js';
import { SIGNATURE_HEADER, signWebhook } from './signature.js';
import type { StepContext, StepDefinition } from './steps.js';

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Headers the processor sets itself; a step may not override them. */
const RESERVED = new Set(['content-type', 'content-length', 'host', 'idempotency-key', SIGNATURE_HEADER.toLowerCase()]);

/**
 * `{ type: 'webhook', url, headers? }` — url is http(s); headers are extra request headers. A URL
 * with credentials (`https://user:password@host/…`) is sent with them as `Authorization: Basic`
 * (Node's fetch refuses such URLs); a step that also sets `Authorization` is refused.
 */
export const WebhookStepSchema = z.object({
  type: z.literal('webhook'),
  url: z.url({ protocol: /^https?$/, error: 'url must be an absolute http(s) URL' }),
  headers: z
    .record(z.string(), z.string().regex(HEADER_VALUE, 'contains characters not allowed in a header value'))
    .superRefine((headers, ctx) => {
      // Checked here rather than on the record's key schema so that the message names the problem.
      for (const name of Object.keys(headers)) {
        if (!HEADER_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: 'is not a valid header name' });
        else if (RESERVED.has(name.toLowerCase())) ctx.addIssue({ code: 'custom', path: [name], message: 'is set by the processor and cannot be overridden' });
      }
    })
    .optional(),
}).superRefine((step, ctx) => {
  const conflict = credentialConflict(step);
  if (conflict) ctx.addIssue({ code: 'custom', path: ['url'], message: conflict });
});
export type WebhookStep = z.infer<typeof WebhookStepSchema>;

/**
 * Why a webhook step's URL credentials cannot be used, or null: they become the `Authorization`
 * header, so a step that sets that header too is ambiguous. Read when the workflow is loaded
 * (lib/dispatch/workflows.ts) and again before a job's first step runs. The message never holds the URL.
 */
export function credentialConflict(step: { url?: unknown; headers?: unknown }): string | null {
  if (typeof step.url !== 'string') return null;
  let url: URL;
  try {
    url = new URL(step.url);
  } catch {
    return null;
  }
  if (!url.username && !url.password) return null;
  const headers = step.headers && typeof step.headers === 'object' ? Object.keys(step.headers) : [];
  if (headers.some((h) => h.toLowerCase() === 'authorization')) {
    return 'the url carries credentials (user:password@) and headers set Authorization too; keep one of them';
  }
  return null;
}

export function parseWebhookStep(step: WorkflowStep): WebhookStep {
  const parsed = WebhookStepSchema.safeParse(step);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || 'step'}: ${i.message}`).join('; ');
    throw new NonRetryableStepError('invalid_step', `malformed webhook step: ${problems}`);
  }
  return parsed.data;
}

/** The JSON body a webhook receives (BSON values as lib/data/bson-json.ts maps them). */
export function webhookPayload(job: ProcessedJobDoc, attempt: number) {
  return {
    job: {
      key: job.key,
      id: String(job._id),
      attempt,
      organizationId: job.organizationId,
      workflowId: job.workflowId,
      workflowName: job.workflowName,
      formId: job.formId,
      submissionId: job.submissionId,
      event: job.event,
      createdAt: job.createdAt,
    },
    submission: job.submission,
  };
}

/**
 * `Idempotency-Key` for step `stepIndex`: the job key for the first step, `key:step<n>` for later
 * ones, so that two webhook steps of one job sent to the same receiver are not merged by it.
 */
export function idempotencyKey(jobKey: string, stepIndex: number): string {
  return stepIndex === 0 ? jobKey : `${jobKey}:step${stepIndex}`;
}

/** Where a request went, without query string or credentials (URLs may carry tokens). */
export const describeUrl = redactUrl;

/**
 * The request a step stands for: the URL without its userinfo, which becomes `Authorization: Basic`
 * (RFC 7617, user and password percent-decoded as URLs encode them). Throws NonRetryableStepError
 * (`webhook_invalid_request`) for a request that can never be built: the same step would fail the
 * same way on every attempt.
 */
export function buildWebhookRequest(step: WebhookStep, where: string): { url: string; headers: Headers } {
  try {
    const url = new URL(step.url);
    const headers = new Headers(step.headers);
    if (url.username || url.password) {
      const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
      headers.set('Authorization', `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`);
      url.username = '';
      url.password = '';
    }
    return { url: url.href, headers };
  } catch (error) {
    throw new NonRetryableStepError('webhook_invalid_request', `webhook ${where}: the request cannot be built (${redact((error as Error).message)})`, { cause: error });
  }
}

class WebhookTimeout extends Error {
  override readonly name = 'WebhookTimeout';
}

async function sendWebhook(raw: WorkflowStep, ctx: StepContext): Promise<void> {
  const step = parseWebhookStep(raw);
  const where = describeUrl(step.url);
  const body = stringifyJson(webhookPayload(ctx.job, ctx.attempt));
  const { url, headers } = buildWebhookRequest(step, where);
  headers.set('Content-Type', 'application/json');
  headers.set('Idempotency-Key', idempotencyKey(ctx.job.key, ctx.stepIndex));
  const secret = ctx.config.WEBHOOK_SIGNING_SECRET;
  if (secret) headers.set(SIGNATURE_HEADER, signWebhook(secret, Math.floor(ctx.clock.now() / 1000), body));

  const timeoutMs = ctx.config.WEBHOOK_TIMEOUT_MS;
  // One controller per request carries both ways it can end early — the attempt's own signal
  // (deadline, lease) and the request timeout on the injected clock — and its final abort in
  // `finally` also cancels the timeout's sleep. (Two timer controllers plus AbortSignal.any per
  // request cost measurably more at thousands of webhooks a second.)
  const request = new AbortController();
  // Built only when the timeout fires: an Error captures a stack trace, measurable per webhook.
  let timedOut: WebhookTimeout | null = null;
  const stopped = () => request.abort(ctx.signal.reason);
  if (ctx.signal.aborted) stopped();
  else ctx.signal.addEventListener('abort', stopped, { once: true });
  ctx.clock.sleep(timeoutMs, request.signal).then(() => {
    if (!request.signal.aborted) request.abort((timedOut = new WebhookTimeout(`no answer within ${timeoutMs} ms`)));
  }, squashError);
  try {
    let response: Response;
    try {
      // Redirects are not followed: a POST silently turned into a GET, or sent to a host the
      // workflow never named, is worse than a clear error asking for the step's URL to be fixed.
      response = await ctx.fetch(url, { method: 'POST', headers, body, signal: request.signal, redirect: 'manual' });
    } catch (error) {
      const refused = refusal(error);
      if (refused) throw new NonRetryableStepError('webhook_destination_refused', `webhook ${where}: ${refused.message}`, { cause: error });
      if (timedOut !== null && request.signal.reason === timedOut) {
        throw new RetryableStepError('webhook_timeout', `webhook ${where}: no answer within ${timeoutMs} ms`, { cause: error });
      }
      if (ctx.signal.aborted) {
        throw new RetryableStepError('aborted', `webhook ${where}: attempt stopped (${String((ctx.signal.reason as Error)?.message ?? 'aborted')})`, { cause: error });
      }
      if (neverSendable(error)) {
        throw new NonRetryableStepError('webhook_invalid_request', `webhook ${where}: the request cannot be built (${redact((error as Error).message)})`, { cause: error });
      }
      throw new RetryableStepError('webhook_network', `webhook ${where}: request failed (${networkReason(error)})`, { cause: error });
    }
    if (response.status >= 200 && response.status < 300) {
      response.body?.cancel().catch(squashError);
      return;
    }
    const snippet = await readSnippet(response);
    throw statusError(response.status, response.headers.get('retry-after'), ctx.clock.now(), where, snippet);
  } finally {
    ctx.signal.removeEventListener('abort', stopped);
    if (!request.signal.aborted) request.abort(FINISHED);
  }
}

/** Why a finished request's controller is aborted: only to cancel its timeout's sleep. */
const FINISHED = Symbol('request finished');

/** How a non-2xx answer is retried: 408/429/5xx retryable (honouring Retry-After), anything else not. */
export function statusError(status: number, retryAfter: string | null, nowMs: number, where: string, snippet = ''): RetryableStepError | NonRetryableStepError {
  const detail = `webhook ${where} answered ${status}${snippet ? `: ${snippet}` : ''}`;
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(retryAfter, nowMs);
    const code = status === 429 ? 'webhook_rate_limited' : status === 408 ? 'webhook_timeout' : 'webhook_server_error';
    return new RetryableStepError(code, detail, retryAfterMs === undefined ? {} : { retryAfterMs });
  }
  if (status >= 300 && status < 400) {
    return new NonRetryableStepError('webhook_redirect', `${detail} (redirects are not followed; point the step at the final URL)`);
  }
  return new NonRetryableStepError('webhook_rejected', detail);
}

/** The destination refusal behind a fetch error (lib/destination.ts), if that is what it is. */
function refusal(error: unknown): DestinationRefusedError | null {
  if (error instanceof DestinationRefusedError) return error;
  const cause = (error as { cause?: unknown })?.cause;
  return cause instanceof DestinationRefusedError ? cause : null;
}

/**
 * fetch rejects with a TypeError that has a `cause` when the network failed ("fetch failed"), and
 * without one when the request itself is invalid (URL, header value, credentials in the URL): that
 * one fails the same way on every attempt.
 */
function neverSendable(error: unknown): boolean {
  return error instanceof TypeError && (error as { cause?: unknown }).cause === undefined;
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } })?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

const SNIPPET_BYTES = 300;

/** The start of an error response, for the operator reading `lastError`; never the whole body. */
async function readSnippet(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < SNIPPET_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch (error) {
    squashError(error); // a body cut short still leaves the status to report
  } finally {
    reader.cancel().catch(squashError);
  }
  const text = Buffer.concat(chunks).toString('utf8').slice(0, SNIPPET_BYTES);
  return text.replace(/\s+/g, ' ').trim();
}

/** The built-in `webhook` step. */
export const webhookStep: StepDefinition = {
  run: sendWebhook,
  validate: (step) => {
    parseWebhookStep(step);
  },
};
