import { ObjectId, Timestamp, type ChangeStreamDocument, type Db, type Document, type Filter } from 'mongodb';
import { COLLECTIONS } from '../data/mongo.js';
import type { Logger } from '../platform/log.js';
import type { WorkflowDoc } from '../data/documents.js';
import { compileWorkflow, Workflows, type CompiledWorkflow, type InvalidWorkflow } from './workflows.js';

/**
 * `workflow_timeline` (README "Data contract"): one entry per workflow state change observed in a
 * change stream, so every path can ask which workflows were in force for a submission saved at t.
 *
 * The rule, on every path (stream, recovery scan, reconcile, re-dispatch): a workflow is in force at
 * t when its last recorded transition at or before t is active. With no transition recorded at or
 * before t, the bootstrap: if later transitions exist, the state before the first of them is its
 * opposite (a recorded pause means it was active before, a recorded activation that it was not),
 * counted from the workflow's creation; with none at all, the workflow counts as active since its
 * creation when it is active now. Creation is the `_id`'s ObjectId time, else `createdAt`, else
 * `updatedAt`. What the bootstrap assumes: a workflow that never changed since the timeline began
 * kept the state it has now since it was created.
 */
export interface TimelineDoc {
  _id?: ObjectId;
  workflowId: string;
  organizationId: string | null;
  formId: string | null;
  /** Cluster time of the `workflows` change event. */
  at: Timestamp;
  /** `at` as a fixed-width hex string (seconds then increment) that sorts like the Timestamp. */
  atPos: string;
  /** The event's wall time (the server's clock; cluster-time seconds when the server sends none). */
  wallTime: Date;
  active: boolean;
  /** The workflow document in force after the change (null when deleted). */
  definition: WorkflowDoc | null;
  recordedAt: Date;
}

export function timelineCollection(db: Db) {
  return db.collection<TimelineDoc>(COLLECTIONS.workflowTimeline);
}

/** `Timestamp` → the same fixed-width hex as `tokenPosition`, so both compare as strings. */
export function timestampPos(ts: Timestamp): string {
  return ts.high.toString(16).padStart(8, '0') + ts.low.toString(16).padStart(8, '0');
}

/** When a workflow came into existence: ObjectId time of `_id` (an ObjectId or its 24-hex form), else createdAt, else updatedAt. */
export function workflowCreatedAt(doc: Partial<WorkflowDoc> & { createdAt?: unknown }): Date | null {
  const id = doc._id;
  if (id instanceof ObjectId) return id.getTimestamp();
  if (typeof id === 'string' && /^[0-9a-f]{24}$/i.test(id)) return new ObjectId(id).getTimestamp();
  if (doc.createdAt instanceof Date) return doc.createdAt;
  return doc.updatedAt instanceof Date ? doc.updatedAt : null;
}

/** When a submission was saved, for "in force at t": `submittedAt`, else its ObjectId `_id`'s time; null when neither tells. */
export function savedAtOf(doc: Record<string, unknown>): Date | null {
  if (doc.submittedAt instanceof Date) return doc.submittedAt;
  return doc._id instanceof ObjectId ? doc._id.getTimestamp() : null;
}

function workflowIdOf(id: unknown): string {
  return id instanceof ObjectId ? id.toHexString() : String(id);
}

/**
 * The timeline entry a `workflows` change event stands for. The caller has the workflow's document
 * after the change (`fullDocument`, or a lookup; null for a delete). Nothing is written: see
 * `recordTransitions`.
 */
export function transitionOf(event: ChangeStreamDocument<Document>, after: WorkflowDoc | null, now: Date): TimelineDoc {
  const e = event as { documentKey?: { _id?: unknown }; clusterTime?: Timestamp; wallTime?: Date };
  const at = e.clusterTime ?? Timestamp.fromBits(0, Math.floor(now.getTime() / 1000));
  return {
    workflowId: workflowIdOf(e.documentKey?._id ?? after?._id),
    organizationId: typeof after?.organizationId === 'string' ? after.organizationId : null,
    formId: typeof after?.formId === 'string' ? after.formId : null,
    at,
    atPos: timestampPos(at),
    wallTime: e.wallTime instanceof Date ? e.wallTime : new Date(at.high * 1000),
    active: after?.status === 'active',
    definition: after,
    recordedAt: now,
  };
}

/**
 * Record timeline entries idempotently, in one unordered `bulkWrite` of upserts keyed on
 * workflowId + atPos (unique): a drain may read the same events again after a crash, and two
 * drains may record the same transition at once (the duplicate-key error of such a race is the
 * entry being there). One round trip whatever the number of entries; none for an empty list.
 * Throws any other write error (the caller must not save a token past unrecorded entries).
 */
export async function recordTransitions(db: Db, entries: readonly TimelineDoc[]): Promise<void> {
  if (entries.length === 0) return;
  await timelineCollection(db)
    .bulkWrite(
      entries.map((entry) => ({ updateOne: { filter: { workflowId: entry.workflowId, atPos: entry.atPos }, update: { $setOnInsert: entry }, upsert: true } })),
      { ordered: false },
    )
    .catch((error: unknown) => {
      const e = error as { code?: unknown; writeErrors?: { code?: unknown }[] | { code?: unknown } };
      const writeErrors = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
      const onlyDuplicates = writeErrors.length > 0 ? writeErrors.every((w) => w.code === 11000) : e.code === 11000;
      if (!onlyDuplicates) throw error;
    });
}

/** The workflow after a change, compiled for the registry: null unless active. */
export function compileState(after: WorkflowDoc | null): CompiledWorkflow | InvalidWorkflow | null {
  return after && after.status === 'active' ? compileWorkflow(after) : null;
}

/** A point to judge at: a timeline position (from a resume token) and/or a wall time. */
export interface Instant {
  /** Fixed-width hex position (`tokenPosition`), compared with `atPos`; when absent, `wall` is compared with `wallTime`. */
  pos?: string | null;
  wall: Date;
}

function atOrBefore(entry: TimelineDoc, t: Instant): boolean {
  return t.pos ? entry.atPos <= t.pos : entry.wallTime.getTime() <= t.wall.getTime();
}

/**
 * In force at t, for one workflow given its transitions (any order) and its current document (null
 * when it no longer exists): returns the definition in force, or null. See the rule at the top.
 */
export function stateAt(current: WorkflowDoc | null, transitions: readonly TimelineDoc[], t: Instant): WorkflowDoc | null {
  let last: TimelineDoc | null = null;
  let first: TimelineDoc | null = null;
  for (const entry of transitions) {
    if (atOrBefore(entry, t)) {
      if (!last || entry.atPos > last.atPos) last = entry;
    } else if (!first || entry.atPos < first.atPos) {
      first = entry;
    }
  }
  if (last) return last.active ? (last.definition ?? current) : null;
  const created = current ? workflowCreatedAt(current) : null;
  if (!current || (created && created.getTime() > t.wall.getTime())) return null;
  const activeBefore = first ? !first.active : current.status === 'active';
  return activeBefore ? { ...current, status: 'active' } : null;
}

function scopeFilter(orgId: string | null): Filter<WorkflowDoc> {
  return orgId === null ? {} : { organizationId: orgId };
}

async function load(db: Db, orgId: string | null, observed: readonly TimelineDoc[] = []): Promise<{ docs: WorkflowDoc[]; byWorkflow: Map<string, TimelineDoc[]> }> {
  const [docs, entries] = await Promise.all([
    db.collection<WorkflowDoc>(COLLECTIONS.workflows).find(scopeFilter(orgId)).toArray(),
    timelineCollection(db).find(orgId === null ? {} : { organizationId: orgId }, { projection: { _id: 0, recordedAt: 0 } }).toArray(),
  ]);
  const byWorkflow = new Map<string, TimelineDoc[]>();
  for (const e of [...entries, ...observed]) {
    const list = byWorkflow.get(e.workflowId) ?? [];
    list.push(e);
    byWorkflow.set(e.workflowId, list);
  }
  return { docs, byWorkflow };
}

function build(compiled: (CompiledWorkflow | InvalidWorkflow)[], log?: Logger): Workflows {
  const valid: CompiledWorkflow[] = [];
  const invalid: InvalidWorkflow[] = [];
  for (const c of compiled) {
    if ('reason' in c) {
      invalid.push(c);
      log?.warn('workflow skipped: invalid definition', { workflowId: c.id, reason: c.reason });
    } else {
      valid.push(c);
    }
  }
  return new Workflows(valid, invalid);
}

/**
 * The registry in force at one instant (a drain starting from its saved token replays the backlog
 * from there, applying later `workflows` events in stream order). One query on `workflows` and one
 * on the timeline for the scope (one organization, or all when `orgId` is null). `observed`: entries
 * read from the stream and not (or not known to be) recorded yet, counted as if they were.
 */
export async function registryAt(db: Db, orgId: string | null, t: Instant, log?: Logger, observed: readonly TimelineDoc[] = []): Promise<Workflows> {
  const { docs, byWorkflow } = await load(db, orgId, observed);
  const compiled: (CompiledWorkflow | InvalidWorkflow)[] = [];
  for (const doc of docs) {
    const state = stateAt(doc, byWorkflow.get(workflowIdOf(doc._id)) ?? [], t);
    if (state) compiled.push(compileWorkflow(state));
  }
  return build(compiled, log);
}

/**
 * The registry for a scan over saved submissions (recovery, reconcile, re-dispatch): every
 * existing workflow, each judging a submission by `inForceAt(submittedAt)`. With
 * `includeLaterWorkflows`, every workflow active now applies whatever the submission's time
 * (an operator's explicit opt-in for a backfill).
 */
export async function registryForScan(db: Db, orgId: string | null, opts: { includeLaterWorkflows?: boolean } = {}, log?: Logger): Promise<Workflows> {
  const { docs, byWorkflow } = await load(db, orgId);
  const compiled: (CompiledWorkflow | InvalidWorkflow)[] = [];
  for (const doc of docs) {
    const transitions = byWorkflow.get(workflowIdOf(doc._id)) ?? [];
    if (opts.includeLaterWorkflows) {
      if (doc.status === 'active') compiled.push(compileWorkflow(doc));
      continue;
    }
    if (doc.status !== 'active' && !transitions.some((e) => e.active)) continue; // never in force
    const c = compileWorkflow({ ...doc, status: 'active' });
    if (!('reason' in c)) c.inForceAt = (t: Date) => stateAt(doc, transitions, { wall: t }) !== null;
    compiled.push(c);
  }
  return build(compiled, log);
}

/**
 * The earliest time any active workflow of the scope came into force (from the timeline, or its
 * creation by the bootstrap): where a stream with no saved token starts, so that no organization's
 * first submissions are missed. Null when no workflow is active.
 */
export async function earliestInForce(db: Db, orgIds: readonly string[] | null): Promise<Date | null> {
  const filter: Filter<WorkflowDoc> = { status: 'active' };
  if (orgIds) filter.organizationId = { $in: [...orgIds] };
  const docs = await db.collection<WorkflowDoc>(COLLECTIONS.workflows).find(filter, { projection: { _id: 1, createdAt: 1, updatedAt: 1 } }).toArray();
  if (docs.length === 0) return null;
  // First activation per workflow, grouped on the server; the active ones are picked here (a `$in`
  // of every active workflow id would cost more than the one row per workflow it saves).
  const firstActive = await timelineCollection(db)
    .aggregate<{ _id: string; wall: Date }>([{ $match: orgIds ? { active: true, organizationId: { $in: [...orgIds] } } : { active: true } }, { $group: { _id: '$workflowId', wall: { $min: '$wallTime' } } }])
    .toArray();
  const recorded = new Map(firstActive.map((r) => [r._id, r.wall]));
  let earliest: number | null = null;
  for (const doc of docs) {
    const times = [workflowCreatedAt(doc), recorded.get(workflowIdOf(doc._id)) ?? null].filter((d): d is Date => d instanceof Date);
    for (const d of times) earliest = earliest === null ? d.getTime() : Math.min(earliest, d.getTime());
  }
  return earliest === null ? null : new Date(earliest);
}
