import type { Config } from '../platform/config.js';
import type { Clock } from '../platform/clock.js';
import type { Logger } from '../platform/log.js';
import type { WorkflowStep, ProcessedJobDoc } from '../data/documents.js';
import { NonRetryableStepError } from './errors.js';
import { webhookStep } from './webhook.js';

/** What a step handler gets besides its own definition. */
export interface StepContext {
  job: ProcessedJobDoc;
  /** The attempt being run (1-based). */
  attempt: number;
  /** Position of the step in `job.steps`. */
  stepIndex: number;
  /**
   * Aborted when the attempt must stop: the invocation's deadline or the end of the job's lease.
   * Handlers pass it to their I/O; the processor stops waiting for a handler once it fires anyway.
   */
  signal: AbortSignal;
  fetch: typeof fetch;
  clock: Clock;
  config: Config;
  log: Logger;
}

/**
 * Runs one step. Resolves on success; throws `RetryableStepError` / `NonRetryableStepError`
 * (lib/jobs/errors.ts) to say what should happen next. Anything else thrown counts as retryable.
 */
export type StepHandler = (step: WorkflowStep, ctx: StepContext) => Promise<void>;

/**
 * A handler with an optional up-front check. `validate` runs for every step of a job before the
 * first one runs, so a malformed third step does not leave the first two executed and the job dead.
 * It throws `NonRetryableStepError` (code `invalid_step`) for a definition that can never work.
 */
export interface StepDefinition {
  run: StepHandler;
  validate?: (step: WorkflowStep) => void;
}

export interface StepRegistry {
  get(type: string): StepDefinition | undefined;
  /** Registered step types, sorted. */
  types(): string[];
}

/**
 * The step types a processor can run: the built-in `webhook` plus `extra`. An entry in `extra`
 * with the name of a built-in replaces it (a deployment may wrap or swap the webhook sender).
 */
export function createStepRegistry(extra: Record<string, StepHandler | StepDefinition> = {}): StepRegistry {
  const table = new Map<string, StepDefinition>([['webhook', webhookStep]]);
  for (const [type, entry] of Object.entries(extra)) {
    table.set(type, typeof entry === 'function' ? { run: entry } : entry);
  }
  return {
    get: (type) => table.get(type),
    types: () => [...table.keys()].sort(),
  };
}

/**
 * Resolve every step of a job to its handler, validating the whole list first.
 * Throws `NonRetryableStepError` (`invalid_step` / `unknown_step_type`) naming the offending step.
 */
export function resolveSteps(registry: StepRegistry, steps: unknown): { step: WorkflowStep; def: StepDefinition }[] {
  if (!Array.isArray(steps)) {
    throw new NonRetryableStepError('invalid_step', 'job has no steps array (the workflow snapshot is malformed)');
  }
  return steps.map((step: unknown, index) => {
    if (typeof step !== 'object' || step === null || typeof (step as { type?: unknown }).type !== 'string') {
      throw new NonRetryableStepError('invalid_step', `step ${index}: must be an object with a string "type"`);
    }
    const typed = step as WorkflowStep;
    const def = registry.get(typed.type);
    if (!def) {
      throw new NonRetryableStepError(
        'unknown_step_type',
        `step ${index}: unknown step type "${typed.type}" (registered: ${registry.types().join(', ')})`,
      );
    }
    try {
      def.validate?.(typed);
    } catch (error) {
      if (error instanceof NonRetryableStepError) {
        throw new NonRetryableStepError(error.code, `step ${index} (${typed.type}): ${error.message}`, { cause: error });
      }
      throw new NonRetryableStepError('invalid_step', `step ${index} (${typed.type}): ${String((error as Error)?.message ?? error)}`, { cause: error });
    }
    return { step: typed, def };
  });
}
