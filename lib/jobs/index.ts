/** The job processor: claim, run steps, retry with backoff, dead-letter, replay, metrics. */
export { backoffDelayMs, parseRetryAfter, type BackoffPolicy, type RandomSource } from './backoff.js';
export { claimJob, deadAbandoned, dueFilter, fenceFilter, jobsCollection, type ClaimOptions } from './claim.js';
export { decideFailure, recordFailure, recordStepProgress, recordSuccess, type FailureDecision, type RetryPolicy } from './complete.js';
export { NonRetryableStepError, RetryableStepError, StepError, classifyStepError, type ClassifiedStepError } from './errors.js';
export { JOB_STATUSES, jobMetrics, percentile, type JobMetrics, type JobMetricsOptions } from './metrics.js';
export { processJobs, runJob, type ProcessOptions, type RunJobResult } from './process.js';
export { RetryRequestSchema, retryDeadJobs, type RetryRequest, type RetryResult } from './requeue.js';
export { AttemptStopped, runClaimed, type AttemptRunner } from './run.js';
export { DEFAULT_TOLERANCE_S, SIGNATURE_HEADER, signWebhook, verifyWebhookSignature } from './signature.js';
export { createStepRegistry, resolveSteps, type StepContext, type StepDefinition, type StepHandler, type StepRegistry } from './steps.js';
export { WebhookStepSchema, idempotencyKey, parseWebhookStep, statusError, webhookPayload, webhookStep, type WebhookStep } from './webhook.js';
export type { AttemptOutcome, Claim, JobError, ProcessSummary, ProcessedJobDoc } from './types.js';
