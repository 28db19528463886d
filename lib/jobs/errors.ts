import { redact } from '../platform/redact.js';

/**
 * Errors a step handler throws. `instanceof` decides what happens to the job: retryable errors
 * are retried with backoff until JOB_MAX_ATTEMPTS, non-retryable ones send the job to `dead`.
 * Any other thrown value counts as retryable (code `step_error`): an unexpected failure should
 * not lose the job on its first occurrence.
 *
 * Not part of the AppError family: a step's `code` is the step's own vocabulary (stored in the
 * job's `lastError.code`), not one of the product's error codes, and it never becomes an HTTP answer.
 */
export abstract class StepError extends Error {
  abstract readonly retryable: boolean;
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class RetryableStepError extends StepError {
  override readonly name = 'RetryableStepError';
  readonly retryable = true;
  /** Earliest retry the step asks for (e.g. from `Retry-After`); backoff still applies and the cap still wins. */
  readonly retryAfterMs: number | undefined;
  constructor(code: string, message: string, options: { retryAfterMs?: number; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
  }
}

export class NonRetryableStepError extends StepError {
  override readonly name = 'NonRetryableStepError';
  readonly retryable = false;
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
  }
}

/** The classification of anything a step threw, as stored in `lastError`. */
export interface ClassifiedStepError {
  code: string;
  message: string;
  retryable: boolean;
  retryAfterMs: number | undefined;
}

const MAX_MESSAGE = 500;

export function classifyStepError(error: unknown): ClassifiedStepError {
  if (error instanceof StepError) {
    return {
      code: error.code,
      message: truncate(redact(error.message)),
      retryable: error.retryable,
      retryAfterMs: error instanceof RetryableStepError ? error.retryAfterMs : undefined,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'step_error', message: truncate(redact(message) || 'step failed'), retryable: true, retryAfterMs: undefined };
}

function truncate(message: string): string {
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
}
