import type { Collection, Db, Timestamp } from 'mongodb';
import { COLLECTIONS } from '../data/mongo.js';
import { AppError, LeaseLostError } from '../platform/errors.js';
import { tokenPosition, tokenTime } from './token.js';
import type { CheckpointDoc, DrainSummary, GapRecord, RecoveryState, ResumeToken, StreamState } from '../data/documents.js';
import type { StreamRef } from './refs.js';

/** Gaps kept on the checkpoint document (older ones stay counted in `gapCount`). */
const GAPS_KEPT = 50;

/** What a lease gives its holder: the fence every later write must present. */
export interface Lease {
  streamId: string;
  owner: string;
  fence: number;
  expiresAt: Date;
  checkpoint: CheckpointDoc;
  /** Relay windows: the generation this lease was taken with. */
  generation?: number;
}

type Stored = CheckpointDoc & { tokenPos?: string | null };

/** A new checkpoint's fields; writers that create one take what their own update does not set. */
function initialFields(orgId: string | null, now: Date): Omit<Stored, '_id'> {
  return {
    orgId,
    token: null,
    tokenPos: null,
    tokenIsInvalidate: false,
    tokenTime: null,
    tokenSavedAt: null,
    fence: 0,
    lease: null,
    state: 'idle',
    consecutiveFailures: 0,
    lastRun: null,
    lastEventWallTime: null,
    gaps: [],
    gapCount: 0,
    recovery: null,
    createdAt: now,
    updatedAt: now,
  };
}

function omit<T extends object, K extends keyof T>(obj: T, keys: K[]): Omit<T, K> {
  const copy = { ...obj };
  for (const k of keys) delete copy[k];
  return copy;
}

/**
 * Resume-token store with a fenced lease per stream. Two invocations never hold one stream at once;
 * a stale holder (its lease expired and was taken) can never save, because every write is
 * conditional on the fence it was given.
 */
export class CheckpointStore {
  readonly collection: Collection<Stored>;
  constructor(db: Db) {
    this.collection = db.collection<Stored>(COLLECTIONS.checkpoints);
  }

  get(streamId: string): Promise<Stored | null> {
    return this.collection.findOne({ _id: streamId });
  }

  /**
   * Take the lease if it is free or expired. Returns null when another invocation holds it, the
   * stream is paused, or (with `generation`) the stored relay generation is already at or above it
   * (the caller reads `get()` to tell which). Creates the checkpoint on first use.
   *
   * With `generation` (a relay window), the same findOneAndUpdate that bumps the fence stores the
   * generation, so of two messages of one chain (a duplicate delivery, a forked chain) exactly one
   * takes the lease; the other finds `relay.generation >= g` and stops.
   */
  async acquire(stream: Pick<StreamRef, 'id' | 'orgId'>, owner: string, now: Date, expiresAt: Date, generation?: number): Promise<Lease | null> {
    const free = { $or: [{ lease: null }, { 'lease.expiresAt': { $lte: now } }] };
    const filter: Record<string, unknown> = { _id: stream.id, paused: { $ne: true }, state: { $ne: 'paused' } };
    const set: Record<string, unknown> = { lease: { owner, expiresAt }, state: 'draining', updatedAt: now };
    if (generation === undefined) Object.assign(filter, free);
    else {
      filter.$and = [free, { $or: [{ 'relay.generation': { $exists: false } }, { 'relay.generation': { $lt: generation } }] }];
      set['relay.generation'] = generation;
      set['relay.live'] = true;
    }
    try {
      const doc = await this.collection.findOneAndUpdate(
        filter,
        {
          $set: set,
          $inc: { fence: 1 },
          $setOnInsert: omit(initialFields(stream.orgId, now), ['state', 'updatedAt', 'lease', 'fence']),
        },
        { upsert: true, returnDocument: 'after' },
      );
      if (!doc) return null;
      return { streamId: stream.id, owner, fence: doc.fence, expiresAt, checkpoint: doc, ...(generation !== undefined ? { generation } : {}) };
    } catch (error) {
      // The filter missed an existing document (lease held, paused or superseded) and the upsert collided on _id.
      if ((error as { code?: unknown }).code === 11000) return null;
      throw error;
    }
  }

  /**
   * Save a token under the lease. Fenced (a stale holder gets LeaseLostError) and monotonic: a token
   * whose position is before the saved one is refused, so the checkpoint never moves backwards.
   */
  async saveToken(
    lease: Lease,
    token: ResumeToken,
    now: Date,
    opts: { isInvalidate?: boolean; lastEventWallTime?: Date | null } = {},
  ): Promise<void> {
    const pos = tokenPosition(token);
    const filter: Record<string, unknown> = { _id: lease.streamId, fence: lease.fence };
    if (pos) filter.$or = [{ tokenPos: null }, { tokenPos: { $lte: pos } }];
    const set: Record<string, unknown> = {
      token,
      tokenPos: pos,
      tokenIsInvalidate: opts.isInvalidate ?? false,
      tokenSavedAt: now,
      startAt: null,
      updatedAt: now,
    };
    const time = tokenTime(token);
    if (time) set.tokenTime = time;
    if (opts.lastEventWallTime) set.lastEventWallTime = opts.lastEventWallTime;
    const result = await this.collection.updateOne(filter, { $set: set });
    if (result.matchedCount === 1) return;
    const current = await this.get(lease.streamId);
    if (!current || current.fence !== lease.fence) throw new LeaseLostError(lease.streamId);
    throw new AppError('token_regression', `refused to move the token of ${lease.streamId} backwards`);
  }

  /** Persist (or clear, with null) an unfinished recovery under the lease. */
  async saveRecovery(lease: Lease, recovery: RecoveryState | null, now: Date): Promise<void> {
    const result = await this.collection.updateOne(
      { _id: lease.streamId, fence: lease.fence },
      { $set: { recovery, state: recovery ? 'recovering' : 'draining', updatedAt: now } },
    );
    if (result.matchedCount !== 1) throw new LeaseLostError(lease.streamId);
    lease.checkpoint.recovery = recovery;
  }

  /**
   * Drop the saved token and open the stream at a cluster time from now on (`startAtOperationTime`),
   * under the lease: a recovery that could not open a new stream keeps the time its scan reached.
   */
  async saveStartAt(lease: Lease, at: Timestamp, now: Date): Promise<void> {
    const result = await this.collection.updateOne(
      { _id: lease.streamId, fence: lease.fence },
      { $set: { token: null, tokenPos: null, tokenIsInvalidate: false, startAt: at, updatedAt: now } },
    );
    if (result.matchedCount !== 1) throw new LeaseLostError(lease.streamId);
    lease.checkpoint.startAt = at;
    lease.checkpoint.token = null;
  }

  /**
   * Operator restart (lib/drain/restart.ts): drop the token, open at `at`, and leave a recovery for
   * the next drain to scan the skipped window. Not under a lease: refused (`leased`) while a drain
   * holds the stream, so a running drain never saves over it; `missing` when the stream has no
   * checkpoint.
   */
  async restart(streamId: string, at: Timestamp, recovery: RecoveryState, now: Date): Promise<'restarted' | 'leased' | 'missing'> {
    const result = await this.collection.updateOne(
      { _id: streamId, $or: [{ lease: null }, { 'lease.expiresAt': { $lte: now } }] },
      {
        $set: { token: null, tokenPos: null, tokenIsInvalidate: false, startAt: at, recovery, updatedAt: now },
      },
    );
    if (result.matchedCount === 1) {
      // A paused stream stays paused; otherwise it shows the recovery until a drain finishes it.
      await this.collection.updateOne({ _id: streamId, state: { $ne: 'paused' } }, { $set: { state: 'recovering' } });
      return 'restarted';
    }
    return (await this.get(streamId)) ? 'leased' : 'missing';
  }

  /**
   * Queue a recovery window on a recovery document (lib/drain/recovery-run.ts), creating the
   * document if missing. Not fenced: `$push` appends atomically, so a window handed over while a
   * recovery holds the document's lease (or while another window is queued) never overwrites
   * anything; the same window pushed twice (same `id`) is queued once.
   */
  async pushRecovery(recoveryId: string, window: RecoveryState & { id: string }, now: Date): Promise<void> {
    await this.collection
      .updateOne(
        { _id: recoveryId, 'pending.id': { $ne: window.id }, 'recovery.id': { $ne: window.id } },
        {
          $push: { pending: window },
          $set: { state: 'recovering', updatedAt: now },
          $setOnInsert: omit(initialFields(null, now), ['state', 'updatedAt']),
        },
        { upsert: true },
      )
      .catch((error: unknown) => {
        // Already queued (or being scanned): the filter missed the document and the upsert collided.
        if ((error as { code?: unknown }).code !== 11000) throw error;
      });
  }

  /**
   * Under the recovery document's lease: move the oldest queued window to `recovery` (the one being
   * scanned) in one fenced update, so a crash leaves it either queued or current, never neither.
   * Returns it, or null when nothing is queued.
   */
  async takePendingRecovery(lease: Lease, now: Date): Promise<RecoveryState | null> {
    const doc = await this.collection.findOne({ _id: lease.streamId, fence: lease.fence }, { projection: { pending: 1 } });
    if (!doc) throw new LeaseLostError(lease.streamId);
    const head = doc.pending?.[0];
    if (!head) return null;
    const result = await this.collection.updateOne(
      { _id: lease.streamId, fence: lease.fence, recovery: null, 'pending.0.id': head.id },
      { $set: { recovery: head, state: 'recovering', updatedAt: now }, $pop: { pending: -1 } },
    );
    if (result.matchedCount !== 1) throw new LeaseLostError(lease.streamId);
    lease.checkpoint.recovery = head;
    return head;
  }

  /** Keep the lease alive for a longer run (fenced). */
  async extend(lease: Lease, expiresAt: Date, now: Date): Promise<void> {
    const result = await this.collection.updateOne(
      { _id: lease.streamId, fence: lease.fence },
      { $set: { 'lease.expiresAt': expiresAt, updatedAt: now } },
    );
    if (result.matchedCount !== 1) throw new LeaseLostError(lease.streamId);
    lease.expiresAt = expiresAt;
  }

  async setState(lease: Lease, state: StreamState, now: Date): Promise<void> {
    const result = await this.collection.updateOne({ _id: lease.streamId, fence: lease.fence }, { $set: { state, updatedAt: now } });
    if (result.matchedCount !== 1) throw new LeaseLostError(lease.streamId);
  }

  /**
   * Record a recovery window on the checkpoint. Never fenced and created if missing (a reconcile can
   * run before the first drain), so a recorded gap is never lost.
   */
  async recordGap(stream: Pick<StreamRef, 'id' | 'orgId'>, gap: GapRecord): Promise<void> {
    await this.collection.updateOne(
      { _id: stream.id, 'gaps.id': { $ne: gap.id } },
      {
        $push: { gaps: { $each: [gap], $slice: -GAPS_KEPT } },
        // Per reason too: a reconcile on purpose (`manual`, `backfill`) is not lost history.
        $inc: { gapCount: 1, [`gapsByReason.${gap.reason}`]: 1 },
        $set: { updatedAt: gap.recordedAt },
        $setOnInsert: omit(initialFields(stream.orgId, gap.recordedAt), ['gaps', 'gapCount', 'updatedAt', 'fence']),
      },
      { upsert: true },
    ).catch((error: unknown) => {
      // The gap is already recorded: the filter missed the existing document and the upsert collided.
      if ((error as { code?: unknown }).code !== 11000) throw error;
    });
  }

  /**
   * End a run: release the lease and record the summary. A failed run increments the failure count;
   * after `failingAfter` failures in a row the stream is `failing`, else its state is `settled`
   * (`idle`; a recovery document with windows left stays `recovering`). Returns false if the lease was
   * already lost (the summary is still kept in drain_runs by the caller).
   */
  async release(lease: Lease, summary: DrainSummary, now: Date, failingAfter: number, settled: StreamState = 'idle'): Promise<boolean> {
    // Under the lease nobody else writes the failure count, so the one read at acquire is current.
    const failures = summary.status === 'failed' ? (lease.checkpoint.consecutiveFailures ?? 0) + 1 : 0;
    const state: StreamState = failures >= failingAfter ? 'failing' : settled;
    const set: Record<string, unknown> = { lease: null, lastRun: summary, updatedAt: now, consecutiveFailures: failures, state };
    // A relay window stamps its release: the successor measures its handover gap from here.
    if (lease.generation !== undefined) set['relay.releasedAt'] = now;
    const result = await this.collection.updateOne({ _id: lease.streamId, fence: lease.fence }, { $set: set });
    return result.matchedCount === 1;
  }

  /**
   * Pause or resume a stream (operator action; lib/streams/pause.ts resolves the stream first).
   * `paused` is a field of its own that no lease holder writes, so a release, a failure count or a
   * recovery never undoes it; a paused stream's lease cannot be acquired. Creates the checkpoint if
   * the stream was never drained, so a stream can be paused before its first run.
   */
  async setPaused(stream: Pick<StreamRef, 'id' | 'orgId'>, paused: boolean, now: Date): Promise<void> {
    await this.collection.updateOne(
      { _id: stream.id },
      { $set: { paused, updatedAt: now }, $setOnInsert: omit(initialFields(stream.orgId, now), ['updatedAt']) },
      { upsert: true },
    );
    // Checkpoints written before `paused` existed carried the pause in `state`.
    if (!paused) await this.collection.updateOne({ _id: stream.id, state: 'paused' }, { $set: { state: 'idle', updatedAt: now } });
  }
}
