/**
 * Function time limits, the one source of truth shared by the code and `vercel.json`
 * (a test checks that `vercel.json` says the same). Seconds, as Vercel counts them.
 */
export const FUNCTION_MAX_DURATION_S = {
  'api/drain.ts': 60,
  'api/cron/fanout.ts': 60,
  'api/trigger.ts': 300,
  'api/jobs/process.ts': 60,
  'api/jobs/retry.ts': 30,
  'api/status.ts': 30,
  'api/health.ts': 10,
} as const;

export type FunctionFile = keyof typeof FUNCTION_MAX_DURATION_S;

/** Time kept back at the end of every invocation for the final flush, token save and run record. */
export const SAFETY_MARGIN_MS = 8_000;

/** The longest window a function may spend draining or processing, given its maxDuration. */
export function maxWindowMs(file: FunctionFile): number {
  return FUNCTION_MAX_DURATION_S[file] * 1000 - SAFETY_MARGIN_MS;
}
