/**
 * The public surface of `lib/` for an application that embeds the explicit path: after saving a
 * submission, the application's handler calls `dispatchExplicit(ctx, submission)`; in `explicit`
 * and `dual` rollout mode it queues the workflow jobs with the same job keys the change stream
 * computes (so `dual` never duplicates), in `change_streams` mode it does nothing.
 *
 * Everything else in `lib/` (drain, fan-out, QStash, HTTP plumbing) is reached through the routes
 * in `api/` and is not part of this surface; import from here, not from the folders.
 */
export { dispatchExplicit, type ExplicitResult } from './dispatch/explicit.js';
export { buildContext, getContext, type AppContext } from './platform/context.js';
export { loadConfig, ConfigError, type Config, type RolloutMode } from './platform/config.js';
export { rolloutModeFor } from './streams/rollout.js';
export type { SubmissionDoc, WorkflowDoc, JobDoc, JobOrigin } from './data/documents.js';
export { AppError, BadRequestError } from './platform/errors.js';
// Deployments register their own workflow step types (README "Job processor").
export { createStepRegistry, type StepDefinition, type StepHandler, type StepContext, type StepRegistry } from './jobs/steps.js';
export { RetryableStepError, NonRetryableStepError } from './jobs/errors.js';
export { processJobs, type ProcessOptions } from './jobs/process.js';
// A job's `submissionId` from a submission's `_id`, and back (README "Data contract").
export { encodeSubmissionId, decodeSubmissionId } from './data/submission-id.js';
// The BSON → JSON mapping webhook bodies use, for custom steps that send submissions too.
export { toJsonValue, stringifyJson } from './data/bson-json.js';
export { redact } from './platform/redact.js';
