import type { ChangeStreamDocument, ChangeStreamOptions, Collection, Db, Document } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { COLLECTIONS, LEGACY_SHARED_COLLECTIONS } from '../data/mongo.js';
import type { Workflows } from '../dispatch/workflows.js';
import { compileState, earliestInForce, registryAt, transitionOf, type TimelineDoc } from '../dispatch/timeline.js';
import { loadWorkflows } from '../dispatch/workflows.js';
import { assertPartitionsSupported, partitionPipeline } from '../streams/partition.js';
import { tokenId, tokenPosition, tokenTime } from '../streams/token.js';
import { timestampDate } from './resume.js';
import type { CheckpointDoc, ResumeToken, WorkflowDoc } from '../data/documents.js';
import { streamCollection, type StreamRef } from '../streams/refs.js';

/**
 * What the drain does with the events of a database-level (partition) stream: route each to its
 * organization, follow `workflows` changes in stream order, and open the stream where it must start.
 */

type Event = ChangeStreamDocument<Document>;

/** Where one event goes. */
export type Route =
  /** A submission event: `orgId` from the namespace, null for a legacy shared collection (the document's), absent on a one-collection stream. */
  | { kind: 'submission'; orgId?: string | null }
  /** A change of `workflows`: the registry follows it. */
  | { kind: 'workflow' }
  /** A collection dropped or renamed on a database stream: logged and stepped over (no invalidate follows). */
  | { kind: 'namespace'; coll: string | null }
  /** Anything else the stream carries (never dispatched). */
  | { kind: 'other' };

const SUBMISSION_OPS = new Set(['insert', 'update', 'replace']);

/**
 * Route one event: `submissions_{orgId}` → that organization; a legacy shared collection → the
 * document's `organizationId`; `workflows` → the registry. On a one-collection stream every
 * dispatchable event belongs to the stream's own organization.
 */
export function routeEvent(stream: StreamRef, event: Event): Route {
  const op = event.operationType;
  if (stream.kind !== 'partition') return SUBMISSION_OPS.has(op) ? { kind: 'submission' } : { kind: 'other' };
  const coll = (event as { ns?: { coll?: string } }).ns?.coll ?? null;
  if (op === 'drop' || op === 'rename') return { kind: 'namespace', coll };
  if (coll === COLLECTIONS.workflows) return SUBMISSION_OPS.has(op) || op === 'delete' ? { kind: 'workflow' } : { kind: 'other' };
  if (!SUBMISSION_OPS.has(op) || !coll) return { kind: 'other' };
  if (coll.startsWith('submissions_')) return { kind: 'submission', orgId: coll.slice('submissions_'.length) };
  if ((LEGACY_SHARED_COLLECTIONS as readonly string[]).includes(coll)) return { kind: 'submission', orgId: null };
  return { kind: 'other' };
}

/**
 * Follow one `workflows` change: apply it to the registry, so later events are judged by the new
 * state, and return its timeline entry for the caller to record (`recordTransitions`) before the
 * token that covers it is saved. The document after the change comes from `fullDocument`, else by
 * `_id` (an update read without `updateLookup`, or mongod's lookup finding it deleted since).
 * Returns the entry, whether the registry now needs the documents of update/replace events and did
 * not before, and the MongoDB commands sent (0, or 1 for the look-up).
 */
export async function followWorkflowEvent(ctx: AppContext, registry: Workflows, event: Event): Promise<{ entry: TimelineDoc; needsGrew: boolean; roundTrips: number }> {
  const before = registry.needsUpdates();
  const e = event as { documentKey?: { _id?: unknown }; fullDocument?: WorkflowDoc | null };
  let after: WorkflowDoc | null = null;
  let roundTrips = 0;
  if (event.operationType !== 'delete') {
    after = e.fullDocument ?? null;
    if (!after) {
      after = await ctx.db.collection<WorkflowDoc>(COLLECTIONS.workflows).findOne({ _id: e.documentKey?._id as WorkflowDoc['_id'] });
      roundTrips++;
    }
  }
  const entry = transitionOf(event, after, new Date(ctx.clock.now()));
  registry.apply(entry.workflowId, compileState(after));
  ctx.log.debug('registry follows a workflow change', { workflowId: entry.workflowId, active: entry.active, at: entry.atPos });
  return { entry, needsGrew: !before && registry.needsUpdates(), roundTrips };
}

/**
 * The registry a drain starts with. A partition replays its backlog from the saved token, so its
 * registry is the one in force at the token's position (later `workflows` events are applied in
 * stream order); with no token, at the stream's start. One-collection streams load the workflows
 * active now, one query.
 */
export async function initialRegistry(ctx: AppContext, stream: StreamRef, checkpoint: CheckpointDoc, startAt: Date | null, observed: readonly TimelineDoc[] = []): Promise<Workflows> {
  if (stream.kind !== 'partition') return loadWorkflows(ctx.db, stream.kind === 'shared' ? null : stream.orgId, ctx.log);
  const warm = takeWarmRegistry(ctx.db, stream, checkpoint.token);
  if (warm) return warm;
  // A start time set by a restart or a recovery is a cluster time: its position orders it against
  // workflow changes of the same second (a wall time of seconds precision would not).
  const at = !checkpoint.token && checkpoint.startAt ? checkpoint.startAt : null;
  const pos = tokenPosition(checkpoint.token) ?? (at ? at.high.toString(16).padStart(8, '0') + at.low.toString(16).padStart(8, '0') : null);
  const wall = tokenTime(checkpoint.token) ?? startAt ?? new Date(ctx.clock.now());
  return registryAt(ctx.db, null, { pos, wall }, ctx.log, observed);
}

/**
 * Registries of partition passes that ended in this process, each with the token it stands at
 * (by database and stream id). A relay window's successor that runs in the same process (the
 * in-process runner, a warm serverless instance) and finds the checkpoint at exactly that token
 * starts from it instead of loading and compiling every workflow again — at 10,000 workflows that
 * load sits in the handover gap. The registry a pass ends with is the one in force at its last
 * saved token: the pass applied every `workflows` change up to the last event it read, and a
 * completed pass saves the token past that event.
 */
const warmRegistries = new Map<string, { tokenId: string; registry: Workflows }>();

function warmKey(db: Db, stream: StreamRef): string {
  return `${db.databaseName}\u0000${stream.id}`;
}

/**
 * Keep the registry a partition pass ended with, at the token it saved last. Call only for a pass
 * that completed without a recovery (a recovery leaves the registry as it was before the gap).
 */
export function keepWarmRegistry(db: Db, stream: StreamRef, token: ResumeToken | null, registry: Workflows): void {
  if (stream.kind !== 'partition' || !token) return;
  warmRegistries.set(warmKey(db, stream), { tokenId: tokenId(token), registry });
}

/**
 * The kept registry of this stream when it stands at `token`, else null. Taken once: a registry is
 * mutated by the pass that uses it, so two passes never share one.
 */
export function takeWarmRegistry(db: Db, stream: StreamRef, token: ResumeToken | null): Workflows | null {
  const key = warmKey(db, stream);
  const kept = warmRegistries.get(key);
  warmRegistries.delete(key);
  return kept && token && kept.tokenId === tokenId(token) ? kept.registry : null;
}

/**
 * Where a stream with no saved token starts (issue "no first-drain blind spot"): the earliest of
 * the time any of its organizations' active workflows came into force and, when the deployment
 * switches layout or partition count, the oldest token time saved by the streams it replaces
 * (`previous`: `org:` checkpoints of the organizations it serves, or the old partitions). Null:
 * nothing to serve yet, open at now. The oplog may no longer hold that time: the history-lost
 * recovery then scans from it.
 */
export async function firstStart(ctx: AppContext, stream: StreamRef): Promise<Date | null> {
  if (stream.kind === 'shared') return null;
  const orgs = stream.kind === 'partition' ? null : [stream.orgId];
  const times: Date[] = [];
  const inForce = await earliestInForce(ctx.db, orgs);
  if (inForce) times.push(inForce);
  if (stream.kind === 'partition') {
    // Checkpoints of the streams a partition replaces: per-organization streams and partitions of another P.
    const previous = await ctx.db
      .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
      .aggregate<{ t: Date | null }>([
        { $match: { _id: { $regex: '^(org:|partition:)' }, tokenTime: { $type: 'date' } } },
        { $match: { _id: { $not: { $regex: `/${stream.partitions}$` } } } },
        { $group: { _id: null, t: { $min: '$tokenTime' } } },
      ])
      .toArray();
    if (previous[0]?.t instanceof Date) times.push(previous[0].t);
  }
  if (times.length === 0) return null;
  return new Date(Math.min(...times.map((t) => t.getTime())));
}

/** The server-side pipeline and the `fullDocument` option of a stream's `watch()`. */
export function watchSpec(stream: StreamRef, registry: Workflows): { pipeline: Document[]; fullDocument: ChangeStreamOptions['fullDocument'] | undefined } {
  const fullDocument = registry.needsUpdates() ? 'updateLookup' : undefined;
  if (stream.kind === 'partition') return { pipeline: partitionPipeline(stream.partition, stream.partitions), fullDocument };
  const ops = [...registry.events];
  if (ops.length === 0) ops.push('insert');
  return { pipeline: [{ $match: { operationType: { $in: [...ops, 'drop', 'rename', 'dropDatabase', 'invalidate'] } } }], fullDocument };
}

/**
 * Everything a drain needs before its session opens the stream: the server check (P > 1 needs
 * MongoDB 7.0+), where a stream with no token starts, the registry it starts with, and what it watches.
 */
export async function prepareDrain(ctx: AppContext, stream: StreamRef, checkpoint: CheckpointDoc) {
  if (stream.kind === 'partition') await assertPartitionsSupported(ctx.db, stream.partitions);
  // A stream that already has a start time (a recovery that could not open a stream, an operator
  // restart) opens there: it needs no first start.
  const opensAt = checkpoint.startAt ? timestampDate(checkpoint.startAt) : null;
  const startAt = checkpoint.token ? null : (opensAt ?? (await firstStart(ctx, stream)));
  const registry = await initialRegistry(ctx, stream, checkpoint, startAt);
  const target: Collection | Db = stream.kind === 'partition' ? ctx.db : await streamCollection(ctx, stream);
  return { startAt, registry, target };
}
