import type { Db } from 'mongodb';
import { expect } from 'vitest';
import { jobCounts } from './context.js';

/** Promise 1+2: every id has exactly one job of the organization (lists what is missing or doubled). */
export async function expectExactlyOne(db: Db, orgId: string, ids: string[]): Promise<void> {
  const counts = await jobCounts(db, { organizationId: orgId });
  const missing = ids.filter((id) => !counts.has(id));
  const doubled = ids.filter((id) => (counts.get(id) ?? 0) > 1);
  expect({ missing, doubled }).toEqual({ missing: [], doubled: [] });
}
