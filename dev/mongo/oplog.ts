/**
 * The in-memory oplog: every write appends one entry with a unique, increasing cluster time
 * (Timestamp t = wall-clock seconds, i = counter within that second). Change-stream cursors keep a
 * sequence number into it, so a getMore reads from its position instead of scanning from the start.
 * Retention is bounded by `maxEntries`; a position older than the oldest retained entry is "history
 * lost" (286).
 */
import type { Document, UUID } from 'mongodb';
import { OrderedTimestamp } from './bson.js';

export type OpType =
  | 'insert' | 'update' | 'replace' | 'delete' | 'drop' | 'rename' | 'dropDatabase' | 'noop'
  // DDL that change streams report only with showExpandedEvents (mongod 6.0+).
  | 'create' | 'createIndexes' | 'dropIndexes' | 'modify';

export interface OplogEntry {
  seq: number;
  ts: OrderedTimestamp;
  wall: Date;
  op: OpType;
  db: string;
  coll?: string;
  uuid?: UUID;
  documentKey?: Document;
  /** Immutable stored document: inserted / replacement document, or the post-image of an update. */
  doc?: Document;
  updateDescription?: Document;
  to?: { db: string; coll: string };
  /**
   * Written while the collection had changeStreamPreAndPostImages enabled: `preImage` is the
   * document before an update, replace or delete, and an update's post-image (`doc`) may be reported.
   */
  images?: boolean;
  preImage?: Document;
  /** `operationDescription` of an expanded event (create, createIndexes, dropIndexes, modify, rename). */
  description?: Document;
  /** `stateBeforeChange` of a modify event. */
  stateBefore?: Document;
}

export type NewEntry = Omit<OplogEntry, 'seq' | 'ts' | 'wall'>;

/** Default number of retained oplog entries. */
export const DEFAULT_OPLOG_MAX_ENTRIES = 1_000_000;

export class Oplog {
  private entries: (OplogEntry | undefined)[] = [];
  private start = 0;
  /** Sequence number of entries[start]. */
  private firstSeq = 0;
  private lastT = 0;
  private lastI = 0;
  private waiters = new Set<() => void>();
  private notifyScheduled = false;
  /** Cluster time of the newest entry dropped by retention (or of start-up): history up to it is gone. */
  private lostUpTo: OrderedTimestamp;
  private latest: OrderedTimestamp;

  constructor(
    private readonly now: () => number,
    readonly maxEntries = DEFAULT_OPLOG_MAX_ENTRIES,
  ) {
    // The start-up no-op: history before the server started does not exist.
    this.latest = this.tick();
    this.lostUpTo = new OrderedTimestamp({ t: this.latest.t, i: this.latest.i - 1 });
  }

  private tick(): OrderedTimestamp {
    const t = Math.floor(this.now() / 1000);
    if (t > this.lastT) {
      this.lastT = t;
      this.lastI = 1;
    } else {
      this.lastI += 1;
    }
    return new OrderedTimestamp({ t: this.lastT, i: this.lastI });
  }

  /** Cluster time of the newest entry (or start-up). */
  get clusterTime(): OrderedTimestamp {
    return this.latest;
  }

  /** Sequence number the next entry will get. */
  get nextSeq(): number {
    return this.firstSeq + (this.entries.length - this.start);
  }

  get oldestSeq(): number {
    return this.firstSeq;
  }

  append(entry: NewEntry): OplogEntry {
    // One object shape for every entry keeps property access monomorphic on the read path.
    const full: OplogEntry = {
      seq: this.nextSeq,
      ts: this.tick(),
      wall: new Date(this.now()),
      op: entry.op,
      db: entry.db,
      coll: entry.coll,
      uuid: entry.uuid,
      documentKey: entry.documentKey,
      doc: entry.doc,
      updateDescription: entry.updateDescription,
      to: entry.to,
      images: entry.images,
      preImage: entry.preImage,
      description: entry.description,
      stateBefore: entry.stateBefore,
    };
    this.entries.push(full);
    this.latest = full.ts;
    this.trim();
    this.scheduleNotify();
    return full;
  }

  private trim(): void {
    let live = this.entries.length - this.start;
    while (live > this.maxEntries) {
      const dropped = this.entries[this.start]!;
      this.entries[this.start] = undefined;
      this.lostUpTo = dropped.ts;
      this.start += 1;
      this.firstSeq += 1;
      live -= 1;
    }
    if (this.start > 4096 && this.start * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }

  get(seq: number): OplogEntry | undefined {
    if (seq < this.firstSeq) return undefined;
    return this.entries[this.start + (seq - this.firstSeq)];
  }

  /** True when entries after (t, i) (exclusive) may have been dropped: resuming there is impossible. */
  lostAfter(t: number, i: number): boolean {
    const lost = this.lostUpTo;
    return t < lost.t || (t === lost.t && i < lost.i);
  }

  /** True when entries at or after (t, i) may have been dropped. */
  lostFrom(t: number, i: number): boolean {
    const lost = this.lostUpTo;
    return t < lost.t || (t === lost.t && i <= lost.i);
  }

  /** Whether an entry with exactly this cluster time is retained. */
  has(t: number, i: number): boolean {
    const e = this.get(this.seqAfter(t, i, true));
    return e !== undefined && e.ts.t === t && e.ts.i === i;
  }

  /** Sequence number of the first entry whose ts is > (t, i) (or >= when `inclusive`). */
  seqAfter(t: number, i: number, inclusive = false): number {
    let lo = this.start;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const ts = this.entries[mid]!.ts;
      const before = ts.t < t || (ts.t === t && (inclusive ? ts.i < i : ts.i <= i));
      if (before) lo = mid + 1;
      else hi = mid;
    }
    return this.firstSeq + (lo - this.start);
  }

  /** Resolves when an entry with seq >= `seq` exists, or on timeout, or when a signal aborts. Never busy-waits. */
  waitFor(seq: number, timeoutMs: number, signals: AbortSignal[] = []): Promise<void> {
    if (this.nextSeq > seq || timeoutMs <= 0 || signals.some((s) => s.aborted)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
        for (const s of signals) s.removeEventListener('abort', done);
        resolve();
      };
      const check = () => {
        if (this.nextSeq > seq) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(check);
      for (const s of signals) s.addEventListener('abort', done, { once: true });
    });
  }

  /** Wakes waiters once per burst of writes rather than once per entry. */
  private scheduleNotify(): void {
    if (this.notifyScheduled || this.waiters.size === 0) return;
    this.notifyScheduled = true;
    setImmediate(() => {
      this.notifyScheduled = false;
      for (const check of [...this.waiters]) check();
    });
  }
}
