import type { Collection, Db } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Deadline } from '../platform/clock.js';
import type { Workflows } from '../dispatch/workflows.js';
import { isSubmissionCollection, partitionOf } from '../streams/partition.js';
import type { StreamRef } from '../streams/refs.js';
import { scanAndDispatch, UNPLACED_EXAMPLES, type ScanResult } from './reconcile.js';

/** Scans over the several submission collections a partition stream serves. */

/**
 * The submission collections partition p of P serves now (`listCollections`, names only): the
 * `submissions_*` and legacy shared collections whose name `partitionOf` places in p, sorted by name.
 */
export async function partitionCollections(db: Db, stream: Extract<StreamRef, { kind: 'partition' }>): Promise<Collection[]> {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray())
    .map((c) => c.name)
    .filter((name) => isSubmissionCollection(name) && partitionOf(name, stream.partitions) === stream.partition)
    .sort();
  return names.map((name) => db.collection(name));
}

/**
 * Scan several sources one after another (sorted by name) for the same range, dispatching
 * idempotently; stops at the deadline. Totals are summed; `complete` when every source was scanned
 * to the end of the range.
 */
export async function scanSources(
  ctx: AppContext,
  stream: StreamRef,
  sources: readonly Collection[],
  registry: Workflows,
  range: { from: Date; to: Date },
  deadline: Deadline,
): Promise<ScanResult> {
  const total: ScanResult = { scanned: 0, jobsCreated: 0, duplicates: 0, deadLettered: 0, unplaced: 0, unplacedExamples: [], cursor: null, complete: true };
  for (const source of sources) {
    const scan = await scanAndDispatch(ctx, stream, source, registry, range, deadline);
    total.scanned += scan.scanned;
    total.jobsCreated += scan.jobsCreated;
    total.duplicates += scan.duplicates;
    total.deadLettered += scan.deadLettered;
    total.unplaced += scan.unplaced;
    total.unplacedExamples = [...total.unplacedExamples, ...scan.unplacedExamples].slice(0, UNPLACED_EXAMPLES);
    total.cursor = scan.cursor;
    if (!scan.complete) {
      total.complete = false;
      return total;
    }
  }
  return total;
}
