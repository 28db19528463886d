/**
 * A change stream: a position in the oplog plus the stream's scope, options and user pipeline.
 * `read()` turns the oplog entries after the position into event documents shaped like mongod's and
 * reports the post-batch resume token (the last returned event, or a high-water mark at the last
 * scanned entry when nothing later matched).
 */
import type { Document } from 'mongodb';
import { CommandError } from './errors.js';
import { compileFilter, runPipeline, type Matcher } from './engine.js';
import { keyString } from './compare.js';
import { isPlainObject, sizeOf } from './bson.js';
import { buildEvent, estimateSize, invalidateEvent } from './events.js';
import type { OplogEntry } from './oplog.js';
import type { Storage } from './storage.js';
import { decodeToken, highWaterMarkToken } from './tokens.js';
import { eventSize, eventSizeBound, eventTooLarge, MAX_CHANGE_EVENT_SIZE, MAX_INTERNAL_BSON_SIZE, splitEvent } from './largeevents.js';

/** Where a stream looks: one collection, one database, or the whole cluster. */
export interface StreamScope {
  db: string;
  coll?: string;
  cluster: boolean;
}

const STAGE_OPTIONS = new Set([
  'fullDocument', 'fullDocumentBeforeChange', 'resumeAfter', 'startAfter', 'startAtOperationTime',
  'showExpandedEvents', 'allChangesForCluster', 'showSystemEvents', 'showMigrationEvents', 'showRawUpdateDescription',
  'allowToRunOnConfigDB', 'allowToRunOnSystemNS',
]);
const ALLOWED_USER_STAGES = new Set(['$match', '$project', '$addFields', '$set', '$unset', '$replaceRoot', '$replaceWith', '$redact']);
/** Aggregation stages mongod 8.0 knows (any other name is "Unrecognized pipeline stage name", 40324). */
const MONGOD_STAGES = new Set([
  '$addFields', '$bucket', '$bucketAuto', '$changeStream', '$changeStreamSplitLargeEvent', '$collStats', '$count',
  '$currentOp', '$densify', '$documents', '$facet', '$fill', '$geoNear', '$graphLookup', '$group', '$indexStats',
  '$limit', '$listClusterCatalog', '$listLocalSessions', '$listSampledQueries', '$listSearchIndexes', '$listSessions',
  '$lookup', '$match', '$merge', '$out', '$planCacheStats', '$project', '$querySettings', '$redact', '$replaceRoot',
  '$replaceWith', '$sample', '$search', '$searchMeta', '$set', '$setWindowFields', '$shardedDataDistribution', '$skip',
  '$sort', '$sortByCount', '$unionWith', '$unset', '$unwind', '$vectorSearch',
]);
/** Operation types reported only with showExpandedEvents. */
const EXPANDED_OPS = new Set<OplogEntry['op']>(['create', 'createIndexes', 'dropIndexes', 'modify']);
const INTERNAL_DBS = new Set(['admin', 'config', 'local']);
const MAX_BATCH_BYTES = 16 * 1024 * 1024;

interface Pending {
  doc: Document;
  seq: number;
  invalidate: boolean;
  /** BSON size when measured (large events and fragments). */
  size?: number;
}

const SPLIT_STAGE = '$changeStreamSplitLargeEvent';

export interface ReadResult {
  events: Document[];
  pbrt: Document;
  closed: boolean;
}

function nonResumable(code: number, msg: string): CommandError {
  return new CommandError(code, msg, {}, ['NonResumableChangeStreamError']);
}

export class ChangeStream {
  nextSeq: number;
  closed = false;
  private pbrt: Document;
  private pending: Pending[] = [];
  private lastScannedSeq = -1;
  private readonly fullDocument: string;
  private readonly beforeChange: string;
  /** showExpandedEvents: DDL events (create, createIndexes, dropIndexes, modify) and their extra fields. */
  private readonly expanded: boolean;
  private readonly match: Matcher[] | undefined;
  private readonly pipeline: Document[];
  /** The pipeline ends with $changeStreamSplitLargeEvent: events too large are split into fragments. */
  private readonly split: boolean;
  /** Resuming from a fragment token: the oplog entry of the split event and how many fragments to skip. */
  private resumeFragments?: { seq: number; skip: number };

  constructor(
    private readonly storage: Storage,
    readonly scope: StreamScope,
    stage: Document,
    userPipeline: Document[],
  ) {
    for (const key of Object.keys(stage)) {
      if (!STAGE_OPTIONS.has(key)) throw new CommandError(40415, `BSON field '$changeStream.${key}' is an unknown field.`);
    }
    this.fullDocument = (stage.fullDocument as string | undefined) ?? 'default';
    if (!['default', 'updateLookup', 'whenAvailable', 'required'].includes(this.fullDocument)) {
      throw new CommandError(2, `Enumeration value '${this.fullDocument}' for field '$changeStream.fullDocument' is not a valid value.`);
    }
    this.beforeChange = (stage.fullDocumentBeforeChange as string | undefined) ?? 'off';
    if (!['off', 'whenAvailable', 'required'].includes(this.beforeChange)) {
      throw new CommandError(2, `Enumeration value '${this.beforeChange}' for field '$changeStream.fullDocumentBeforeChange' is not a valid value.`);
    }
    this.expanded = stage.showExpandedEvents === true;
    const splitAt = userPipeline.findIndex((s) => SPLIT_STAGE in s);
    this.split = splitAt >= 0;
    if (this.split) {
      const spec = userPipeline[splitAt]![SPLIT_STAGE];
      if (!isPlainObject(spec) || Object.keys(spec).length > 0) throw new CommandError(7182800, '$changeStreamSplitLargeEvent spec should be an empty object');
      if (splitAt !== userPipeline.length - 1) throw new CommandError(7182802, '$changeStreamSplitLargeEvent must be the last stage in the pipeline');
      userPipeline = userPipeline.slice(0, -1);
    }
    for (const s of userPipeline) {
      const name = Object.keys(s)[0] ?? '';
      if (!ALLOWED_USER_STAGES.has(name)) {
        // mongod parses the stage before checking where it may stand: an unknown name is 40324.
        if (!MONGOD_STAGES.has(name)) throw new CommandError(40324, `Unrecognized pipeline stage name: '${name}'`);
        throw new CommandError(20, `${name} is not permitted in a $changeStream pipeline`);
      }
    }
    this.pipeline = userPipeline;
    // A pipeline of $match stages only is evaluated with compiled matchers (the common, fast case).
    this.match = userPipeline.every((s) => '$match' in s) ? userPipeline.map((s) => compileFilter(s.$match as Document)) : undefined;
    if (this.match === undefined) runPipeline([], userPipeline); // validates the stages now, not at the first event

    const oplog = storage.oplog;
    const given = ['resumeAfter', 'startAfter', 'startAtOperationTime'].filter((k) => stage[k] !== undefined);
    if (given.length > 1) throw new CommandError(40674, 'Only one type of resume option is allowed, but multiple were found.');
    if (stage.resumeAfter !== undefined || stage.startAfter !== undefined) {
      const field = stage.resumeAfter !== undefined ? 'resumeAfter' : 'startAfter';
      const token = decodeToken(stage[field]);
      if (token.fromInvalidate && field === 'resumeAfter') {
        throw new CommandError(260, "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.");
      }
      if (oplog.lostAfter(token.t, token.i)) {
        throw nonResumable(286, 'Resume of change stream was not possible, as the resume point may no longer be in the oplog.');
      }
      if (token.kind === 'event' && !oplog.has(token.t, token.i)) {
        throw nonResumable(280, `cannot resume stream; the resume token was not found. ${JSON.stringify(stage[field])}`);
      }
      this.nextSeq = oplog.seqAfter(token.t, token.i);
      if (token.fragment !== undefined) {
        if (!this.split) {
          throw nonResumable(280, 'To resume from a split event, the $changeStream pipeline must end with a $changeStreamSplitLargeEvent stage');
        }
        // The split event is read again; the fragments up to the resumed one are dropped.
        this.nextSeq = oplog.seqAfter(token.t, token.i, true);
        this.resumeFragments = { seq: this.nextSeq, skip: token.fragment + 1 };
      }
      this.pbrt = stage[field] as Document;
    } else if (stage.startAtOperationTime !== undefined) {
      const ts = stage.startAtOperationTime as { t?: number; i?: number; _bsontype?: string };
      if (ts?._bsontype !== 'Timestamp') {
        throw new CommandError(14, "BSON field '$changeStream.startAtOperationTime' is the wrong type, expected type 'timestamp'");
      }
      const t = ts.t!;
      const i = ts.i!;
      if (oplog.lostFrom(t, i)) {
        throw nonResumable(286, 'Resume of change stream was not possible, as the resume point may no longer be in the oplog.');
      }
      this.nextSeq = oplog.seqAfter(t, i, true);
      this.pbrt = i > 0 ? highWaterMarkToken(t, i - 1) : highWaterMarkToken(t - 1, 0xffffffff);
    } else {
      this.nextSeq = oplog.nextSeq;
      const now = oplog.clusterTime;
      this.pbrt = highWaterMarkToken(now.t, now.i);
    }
  }

  /** Namespace string reported in cursor replies. */
  get ns(): string {
    if (this.scope.cluster) return 'admin.$cmd.aggregate';
    return this.scope.coll === undefined ? `${this.scope.db}.$cmd.aggregate` : `${this.scope.db}.${this.scope.coll}`;
  }

  /** Reads up to `limit` events from the current position without waiting. */
  read(limit = Number.MAX_SAFE_INTEGER): ReadResult {
    const oplog = this.storage.oplog;
    const out: Document[] = [];
    let bytes = 0;
    let lastToken: Document | undefined;
    let lastSeq = -1;
    const take = () => {
      while (this.pending.length > 0 && out.length < limit && !this.closed) {
        const next = this.pending[0]!;
        // Events reshaped by a user pipeline can hold anything: measure those exactly.
        const size = next.size ?? (this.match === undefined && this.pipeline.length > 0 ? sizeOf(next.doc) : estimateSize(next.doc));
        if (out.length > 0 && bytes + size > MAX_BATCH_BYTES) return false;
        this.pending.shift();
        bytes += size;
        out.push(next.doc);
        lastToken = next.doc._id as Document;
        lastSeq = next.seq;
        if (next.invalidate) this.closed = true;
      }
      return this.pending.length === 0;
    };
    let room = take();
    while (room && !this.closed && out.length < limit && this.nextSeq < oplog.nextSeq) {
      if (this.nextSeq < oplog.oldestSeq) {
        throw nonResumable(286, 'Resume of change stream was not possible, as the resume point may no longer be in the oplog.');
      }
      const entry = oplog.get(this.nextSeq)!;
      this.lastScannedSeq = this.nextSeq;
      this.nextSeq += 1;
      for (const p of this.eventsFor(entry)) this.pending.push(p);
      room = take();
      if (!room) break;
    }
    if (this.pending.length > 0 || this.closed || (lastToken && lastSeq === this.lastScannedSeq)) {
      if (lastToken) this.pbrt = lastToken;
    } else if (this.lastScannedSeq >= 0) {
      const scanned = oplog.get(this.lastScannedSeq);
      if (scanned) this.pbrt = highWaterMarkToken(scanned.ts.t, scanned.ts.i);
      else if (lastToken) this.pbrt = lastToken;
    }
    return { events: out, pbrt: this.pbrt, closed: this.closed };
  }

  private inScope(e: OplogEntry): boolean {
    if (e.op === 'noop') return false;
    if (!this.expanded && EXPANDED_OPS.has(e.op)) return false;
    if (this.scope.cluster) return !INTERNAL_DBS.has(e.db);
    if (e.db !== this.scope.db) return false;
    if (this.scope.coll === undefined) return true;
    return e.op !== 'dropDatabase' && e.coll === this.scope.coll;
  }

  private invalidates(e: OplogEntry): boolean {
    if (this.scope.cluster) return false;
    if (this.scope.coll === undefined) return e.op === 'dropDatabase';
    return e.op === 'drop' || e.op === 'rename';
  }

  private eventsFor(e: OplogEntry): Pending[] {
    if (!this.inScope(e)) return [];
    const out: Pending[] = [];
    const event = buildEvent(e, this.fullDocument, this.beforeChange, this.storage, this.expanded);
    const passed = this.applyPipeline(event);
    const resume = this.resumeFragments?.seq === e.seq ? this.resumeFragments : undefined;
    if (resume) this.resumeFragments = undefined;
    if (passed) out.push(...this.sized(passed, e.seq, resume?.skip ?? 0));
    if (this.invalidates(e)) {
      // The invalidate always reaches the client, so that the cursor closes on drop/rename.
      out.push({ doc: invalidateEvent(e), seq: e.seq, invalidate: true });
    }
    return out;
  }

  /**
   * The event as returned: as is when it fits; as fragments when too large and the pipeline ends
   * with $changeStreamSplitLargeEvent; else BSONObjectTooLarge (10334), as mongod (largeevents.ts).
   */
  private sized(event: Document, seq: number, skipFragments: number): Pending[] {
    if (skipFragments === 0 && eventSizeBound(event) <= MAX_CHANGE_EVENT_SIZE) return [{ doc: event, seq, invalidate: false }];
    const size = eventSize(event);
    if (this.split && size > MAX_CHANGE_EVENT_SIZE) {
      return splitEvent(event, skipFragments).map((f) => ({ doc: f.doc, seq, invalidate: false, size: f.size }));
    }
    if (skipFragments > 0) {
      throw nonResumable(280, 'Attempted to resume from a split event fragment, but the event in the resumed stream was not large enough to be split');
    }
    if (size > MAX_INTERNAL_BSON_SIZE) throw eventTooLarge(event, size);
    return [{ doc: event, seq, invalidate: false, size }];
  }

  private applyPipeline(event: Document): Document | undefined {
    if (this.pipeline.length === 0) return event;
    if (this.match) return this.match.every((m) => m.test(event)) ? event : undefined;
    const out = runPipeline([event], this.pipeline)[0];
    if (!out) return undefined;
    if (!isPlainObject(out._id) || keyString(out._id) !== keyString(event._id)) {
      throw nonResumable(
        280,
        'Encountered an event whose _id field, which contains the resume token, was modified by the pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that point. Only transformations that retain the unmodified _id field are allowed.',
      );
    }
    return out;
  }
}

export function isChangeStreamPipeline(pipeline: unknown): boolean {
  return Array.isArray(pipeline) && pipeline.length > 0 && isPlainObject(pipeline[0]) && '$changeStream' in pipeline[0];
}
