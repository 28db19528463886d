/**
 * Function time limits by the role a function plays, in seconds as Vercel counts them.
 * `vercel.json` is the source of truth for each route's `maxDuration`; the code needs the value
 * before any request arrives (to cap its windows), so it is repeated here per role, and
 * test/surface/vercel-config.test.ts checks every role against the route file that plays it.
 */
export const FUNCTION_MAX_DURATION_S = {
  drain: 60,
  fanout: 60,
  operator: 300,
  jobs: 60,
  requeue: 30,
  status: 30,
  health: 10,
} as const;

export type FunctionRole = keyof typeof FUNCTION_MAX_DURATION_S;

/** Time kept back at the end of every invocation for the final flush, token save and run record. */
export const SAFETY_MARGIN_MS = 8_000;

/** The longest window a function may spend draining or processing, given its maxDuration. */
export function maxWindowMs(role: FunctionRole): number {
  return FUNCTION_MAX_DURATION_S[role] * 1000 - SAFETY_MARGIN_MS;
}
