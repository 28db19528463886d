import { hostname } from 'node:os';
import { ObjectId } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { Deadline } from '../platform/clock.js';
import { maxWindowMs, SAFETY_MARGIN_MS } from '../platform/limits.js';
import { COLLECTIONS } from '../data/mongo.js';
import { CheckpointStore } from '../streams/checkpoint.js';
import type { CheckpointDoc, DrainSummary, StartedBy } from '../data/documents.js';
import { parsePartition, parseStreamId, partitionStream, type StreamRef } from '../streams/refs.js';
import { BadRequestError } from '../platform/errors.js';
import { publicUrl } from '../qstash/messages.js';
import { isRecoveryId, RECOVERY_PREFIX, recoveryId, scanPartitionGap } from './partition-recovery.js';

export { isRecoveryId, recoveryId };
import { emptySummary, markFailed, recordRun } from './drain.js';

/**
 * The recovery of a partition stream under its own lease (README "Resilience", docs/resilience.md).
 *
 * When a partition stream (`partition:{p}/{P}`) loses its history (ChangeStreamHistoryLost 286,
 * CappedPositionLost 136), its resume point is refused (InvalidResumeToken 260,
 * ChangeStreamFatalError 280) or an operator restarts it, its drain does not scan the gap itself.
 * It hands the gap window over to the partition's recovery document — a checkpoint of its own,
 * `_id: 'recovery:partition:{p}/{P}'`, with its own lease and fence — and goes on at once from a
 * fresh resume point, so the live stream keeps its latency. Recovery invocations then scan the
 * windows one after another, each under the recovery document's lease, and record each as a gap
 * on the partition's checkpoint (the same record as before).
 *
 * Why no trigger is lost:
 * - The window reaches from the last good resume point's cluster time minus RECOVERY_SKEW_MS to a
 *   time taken after the fresh stream opened (the scan reaches RECOVERY_SKEW_MS beyond it), so every
 *   event the stream did not deliver was saved inside the window; the scan covers every submission
 *   collection the partition serves (`partitionCollections`), by `submittedAt` and by `_id` time.
 * - The window is queued (`$push`, durable) before the partition's checkpoint moves to the fresh
 *   point; a crash in between leaves the old resume point, which is refused again and queues a new,
 *   overlapping window. Events after the fresh point come from the stream.
 * - A second loss while a window is pending queues a second window after it (`pending`, oldest
 *   first, each window with its own id); nothing overwrites a window, and a window is moved from
 *   `pending` to `recovery` (the one being scanned) in one fenced update.
 * - Overlaps (between windows, between a window and the stream, a scan repeated after a crash) are
 *   absorbed by the idempotent job keys; the scan applies each workflow as it was in force when the
 *   submission was saved (`registryForScan`, the workflow timeline), and the live stream goes on
 *   with the registry in force at the fresh point (the gap's `workflows` events were lost with it).
 * - Progress (the collections done, the cursor in the current one) is saved under the recovery
 *   lease after every chunk; two recoveries of one partition never both write it: every write
 *   presents the fence, so a holder whose lease was taken over gets LeaseLostError and stops.
 *
 * Started by the partition's own drains (every relay window, tick or in-process drain asks for a
 * run when work is pending and nobody holds the recovery lease: `kickRecovery`), by a recovery run
 * that ended at its deadline with work left, and by the cron tick (the watchdog path). Each
 * invocation ends before its deadline (DRAIN_WINDOW_MS). The `collection` layout keeps recovering
 * inline, in the organization stream's own drain.
 */

/**
 * The partition a recovery id belongs to. Throws BadRequestError (400) when the id does not name a
 * partition (`recovery:partition:{p}/{P}`, 0 <= p < P <= 256). A partition of another P than the
 * deployment's is accepted: windows queued before P changed are still scanned (each by the
 * collections that partition served).
 */
export function partitionOfRecovery(id: string): Extract<StreamRef, { kind: 'partition' }> {
  const rest = id.slice(RECOVERY_PREFIX.length);
  const parsed = parseStreamId(rest);
  const part = parsed?.kind === 'partition' ? parsePartition(parsed.rest) : null;
  if (!part) throw new BadRequestError(`streamId "${id.slice(0, 80)}" must look like recovery:partition:<p>/<P> with 0 <= p < P <= 256 (only partition streams recover under a lease of their own)`);
  return partitionStream(part.partition, part.partitions) as Extract<StreamRef, { kind: 'partition' }>;
}

/** What a recovery invocation did. */
export interface RecoveryRunResult {
  /** The run as recorded in `drain_runs` (`streamId` is the recovery id). */
  run: DrainSummary;
  /** Windows whose scan completed in this run (each recorded as a gap on the partition). */
  windowsDone: number;
  /** Windows still pending after the run (the current one unfinished, or queued ones). */
  windowsLeft: number;
  /** How the next run was asked for, when work was left. */
  next: RecoveryKickOutcome | null;
}

export interface RecoveryRunOptions {
  /** Window for this run; capped like a drain's (DRAIN_WINDOW_MS, the function's limit). */
  windowMs?: number;
  startedBy?: StartedBy;
  owner?: string;
  /** Ask for the next run when work is left (default true). */
  continueAfter?: boolean;
}

function windowsOf(doc: Pick<CheckpointDoc, 'recovery' | 'pending'> | null): number {
  return (doc?.recovery ? 1 : 0) + (doc?.pending?.length ?? 0);
}

/**
 * One recovery invocation of a partition: take the recovery document's lease (its own fence), scan
 * the current window from its saved progress, then the queued windows in order, until none is left
 * or the deadline comes; release (state `recovering` while windows are left, else `idle`) and ask
 * for the next run when work is left. Does nothing (status `skipped`, stoppedBy `idle`) when no
 * window is pending, `leased` when another recovery holds the lease. Never throws once the lease is
 * taken: failures end in the summary (and the lease expires, so a later kick restarts the work).
 */
export async function runRecovery(ctx: AppContext, partition: Extract<StreamRef, { kind: 'partition' }>, opts: RecoveryRunOptions = {}): Promise<RecoveryRunResult> {
  const { clock, config, db, log } = ctx;
  const startedAt = clock.now();
  const runId = new ObjectId().toHexString();
  const id = recoveryId(partition);
  const store = new CheckpointStore(db);
  const summary = emptySummary(runId, id, opts.startedBy ?? 'manual', startedAt);
  const result: RecoveryRunResult = { run: summary, windowsDone: 0, windowsLeft: 0, next: null };
  const before = await store.get(id);
  summary.roundTrips++;
  result.windowsLeft = windowsOf(before);
  if (!before || result.windowsLeft === 0) {
    // Nothing to recover: no lease taken, no document created.
    summary.status = 'skipped';
    summary.stoppedBy = 'idle';
    result.run = await recordRun(ctx, summary);
    return result;
  }
  const windowMs = Math.max(1, Math.min(opts.windowMs ?? config.DRAIN_WINDOW_MS, maxWindowMs('drain')));
  const deadline = Deadline.after(clock, windowMs);
  const owner = opts.owner ?? `${hostname()}:${process.pid}:${runId}`;
  const lease = await store.acquire({ id, orgId: null }, owner, new Date(startedAt), new Date(startedAt + windowMs + SAFETY_MARGIN_MS));
  summary.roundTrips++;
  if (!lease) {
    summary.status = 'skipped';
    summary.stoppedBy = 'leased';
    result.run = await recordRun(ctx, summary);
    return result;
  }
  try {
    for (;;) {
      let state = lease.checkpoint.recovery;
      if (state) await store.setState(lease, 'recovering', new Date(clock.now()));
      else state = await store.takePendingRecovery(lease, new Date(clock.now()));
      summary.roundTrips++;
      if (!state) break;
      const scan = await scanPartitionGap(ctx, { stream: partition, store, lease, runId }, state, deadline);
      summary.jobsCreated += scan.jobsCreated;
      summary.duplicates += scan.duplicates;
      summary.deadLettered += scan.deadLettered;
      if (!scan.complete) {
        summary.stoppedBy = 'deadline';
        summary.busy = true;
        break;
      }
      await store.saveRecovery(lease, null, new Date(clock.now()));
      result.windowsDone++;
      const entry = summary.recoveries.find((r) => r.kind === state.kind);
      if (entry) entry.count++;
      else summary.recoveries.push({ kind: state.kind, count: 1 });
      if (deadline.remaining() <= 0) break;
    }
    if (!summary.busy) summary.stoppedBy = 'idle';
  } catch (error) {
    const kind = markFailed(summary, error);
    log.error('partition recovery failed', { streamId: id, runId, kind, error });
  }
  summary.endedAt = new Date(clock.now());
  summary.durationMs = summary.endedAt.getTime() - startedAt;
  if (summary.stoppedBy !== 'lease_lost') {
    try {
      // The lease holder is the only writer of `recovery`; `pending` may have grown since: count it at release.
      const now = await store.get(id);
      result.windowsLeft = windowsOf(now);
      await store.release(lease, summary, new Date(clock.now()), config.STREAM_FAILING_AFTER, result.windowsLeft ? 'recovering' : 'idle');
      summary.roundTrips += 2;
    } catch (error) {
      log.error('could not release the recovery lease', { streamId: id, runId, error });
    }
  }
  result.run = await recordRun(ctx, summary);
  // Work left (the deadline came, or a window was queued during the run): ask for the next run.
  // Read after the release, so a window queued while the lease was held is seen here or by the
  // kick of the drain that queued it (which found the lease free).
  if (opts.continueAfter !== false && summary.stoppedBy !== 'lease_lost') {
    const next = await kickRecovery(ctx, partition).catch((error: unknown) => ({ kicked: false, reason: 'error' as const, error: String((error as Error)?.message ?? error) }));
    if (next.kicked || next.reason !== 'nothing') result.next = next;
  }
  return result;
}

/** How a recovery run was asked for. */
export interface RecoveryKickOutcome {
  kicked: boolean;
  /** Why not: nothing pending, a recovery holds the lease, no way to start one here, or an error. */
  reason?: 'nothing' | 'leased' | 'no_runner' | 'error';
  /** Through QStash: the message and whether QStash deduplicated it. */
  messageId?: string | null;
  deduplicated?: boolean;
  error?: string;
}

/**
 * Ask for a recovery run of `partition` when a window is pending and no recovery holds the lease
 * (one read of the recovery document). Through QStash a message to `/api/drain {streamId:
 * 'recovery:partition:{p}/{P}'}`, deduplicated by the recovery document's fence
 * (`recovery-{id}-{fence}`): however many drains ask before the next run takes the lease (and bumps
 * the fence), QStash accepts one. Without QStash the context's in-process port
 * (`AppContext.runRecoveryNow`); with neither, the run waits for an operator or a test
 * (`runRecovery`). Never throws for a publish failure (an outcome): the next drain asks again.
 */
export async function kickRecovery(ctx: AppContext, partition: Pick<StreamRef, 'id'> & { kind: 'partition' }): Promise<RecoveryKickOutcome> {
  const id = recoveryId(partition);
  const doc = await ctx.db
    .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
    .findOne({ _id: id }, { projection: { recovery: 1, 'pending.id': 1, lease: 1, fence: 1 } });
  if (windowsOf(doc) === 0) return { kicked: false, reason: 'nothing' };
  if (doc!.lease && doc!.lease.expiresAt.getTime() > ctx.clock.now()) return { kicked: false, reason: 'leased' };
  if (ctx.publisher) {
    try {
      const [r] = await ctx.publisher.publishBatch([
        {
          url: publicUrl(ctx.config, '/api/drain'),
          body: { streamId: id },
          deduplicationId: recoveryDedupId(id, doc!.fence),
          flowControlKey: recoveryFlowKey(id),
        },
      ]);
      if (!r || r.error) return { kicked: false, reason: 'error', error: r?.error ?? 'no answer from QStash' };
      return { kicked: true, messageId: r.messageId, deduplicated: r.deduplicated };
    } catch (error) {
      return { kicked: false, reason: 'error', error: String((error as Error)?.message ?? error) };
    }
  }
  if (ctx.runRecoveryNow) {
    ctx.runRecoveryNow(partition);
    return { kicked: true };
  }
  return { kicked: false, reason: 'no_runner' };
}

const idSafe = (value: string) => value.replace(/[^A-Za-z0-9_.-]/g, '_');

/** Dedup id of a recovery run: per recovery document and fence (QStash ids: letters, digits, `_.-`). */
export function recoveryDedupId(id: string, fence: number): string {
  return idSafe(`${id}-${fence}`);
}

/** Flow-control key of a partition's recovery runs: one at a time, apart from the partition's relay. */
export function recoveryFlowKey(id: string): string {
  return idSafe(id);
}

/**
 * The in-process port behind `AppContext.runRecoveryNow` (the local runner without QStash): runs
 * recovery invocations of a partition one at a time, in the background, until no window is left;
 * a request while one runs is folded into it. Errors go to `onError`.
 */
export function inProcessRecoveries(getCtx: () => Promise<AppContext>, onError: (error: unknown) => void): (partition: Pick<StreamRef, 'id'>) => void {
  const running = new Map<string, { again: boolean }>();
  return (partition) => {
    const current = running.get(partition.id);
    if (current) {
      // Folded into the loop running now: it goes round once more after its last run.
      current.again = true;
      return;
    }
    const flight = { again: true };
    running.set(partition.id, flight);
    void (async () => {
      try {
        const ctx = await getCtx();
        const stream = partitionOfRecovery(recoveryId(partition));
        while (flight.again) {
          flight.again = false;
          for (;;) {
            const r = await runRecovery(ctx, stream, { startedBy: 'relay', continueAfter: false });
            if (r.run.status !== 'completed' || r.windowsLeft === 0) break;
          }
        }
      } catch (error) {
        onError(error);
      } finally {
        running.delete(partition.id);
      }
    })();
  };
}

/**
 * The cron tick's watchdog over recoveries: every recovery document with a window pending and no
 * live lease (an abandoned run, one never started, or one of partitions of a former P), each kicked.
 * One query.
 */
export async function kickPendingRecoveries(ctx: AppContext): Promise<{ streamId: string; outcome: RecoveryKickOutcome }[]> {
  const docs = await ctx.db
    .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
    .find({ _id: { $regex: `^${RECOVERY_PREFIX}partition:` }, $or: [{ recovery: { $ne: null } }, { 'pending.0': { $exists: true } }] }, { projection: { _id: 1 } })
    .toArray();
  const out: { streamId: string; outcome: RecoveryKickOutcome }[] = [];
  for (const doc of docs) {
    let partition: Extract<StreamRef, { kind: 'partition' }>;
    try {
      partition = partitionOfRecovery(doc._id);
    } catch {
      continue; // not a recovery id this version writes
    }
    out.push({ streamId: doc._id, outcome: await kickRecovery(ctx, partition) });
  }
  return out;
}
