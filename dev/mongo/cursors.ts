/**
 * Open server cursors. A find/aggregate cursor holds its remaining result documents; a change-stream
 * cursor holds its stream position. Ids are int64 (the driver requires `Long`). Cursors idle for more
 * than 10 minutes are reaped, as mongod does by default, except `noCursorTimeout` ones. A cursor
 * remembers the session (`lsid`) that opened it, so that ending or killing the session closes it.
 */
import { Long, type Document } from 'mongodb';
import type { ChangeStream } from './changestream.js';

export const CURSOR_IDLE_TIMEOUT_MS = 10 * 60_000;

interface CursorBase {
  id: Long;
  /** `db.coll` (or `db.$cmd.aggregate`, ...) as reported in the reply. */
  ns: string;
  lastUsed: number;
  /** Aborts a getMore waiting on this cursor when it is killed. */
  abort: AbortController;
  /** A getMore is running on it (mongod's "pinned" cursor). */
  busy: boolean;
  /** `lsid.id` (hex) of the session that opened it, if any. */
  lsid?: string;
  /** Opened with `noCursorTimeout: true`: never reaped for idleness. */
  noTimeout: boolean;
}

/** Who opened a cursor: the command's session and its `noCursorTimeout` option. */
export interface CursorOwner {
  lsid?: string;
  noTimeout?: boolean;
}

/** `serverStatus.metrics.cursor` as mongod shapes it (counts are int64 there). */
export interface CursorMetrics {
  open: { noTimeout: number; pinned: number; total: number };
  totalOpened: number;
  timedOut: number;
}

export interface DocsCursor extends CursorBase {
  kind: 'docs';
  docs: Document[];
  pos: number;
}

export interface StreamCursor extends CursorBase {
  kind: 'stream';
  stream: ChangeStream;
}

export type Cursor = DocsCursor | StreamCursor;

export class CursorRegistry {
  private readonly cursors = new Map<string, Cursor>();
  private next = 1000 + Math.floor(Math.random() * 1_000_000);
  private opened = 0;
  private timedOut = 0;

  constructor(private readonly now: () => number) {}

  private newId(): Long {
    this.next += 1 + Math.floor(Math.random() * 1000);
    return Long.fromNumber(this.next);
  }

  private base(ns: string, owner: CursorOwner): CursorBase {
    this.reap();
    this.opened += 1;
    return {
      id: this.newId(),
      ns,
      lastUsed: this.now(),
      abort: new AbortController(),
      busy: false,
      ...(owner.lsid !== undefined ? { lsid: owner.lsid } : {}),
      noTimeout: owner.noTimeout === true,
    };
  }

  addDocs(ns: string, docs: Document[], pos: number, owner: CursorOwner = {}): DocsCursor {
    const c: DocsCursor = { ...this.base(ns, owner), kind: 'docs', docs, pos };
    this.cursors.set(c.id.toString(), c);
    return c;
  }

  addStream(ns: string, stream: ChangeStream, owner: CursorOwner = {}): StreamCursor {
    const c: StreamCursor = { ...this.base(ns, owner), kind: 'stream', stream };
    this.cursors.set(c.id.toString(), c);
    return c;
  }

  /** Kills every cursor the session opened (endSessions, killSessions); returns how many. */
  killSession(lsid: string): number {
    let n = 0;
    for (const c of [...this.cursors.values()]) {
      if (c.lsid === lsid) n += this.kill(c.id) ? 1 : 0;
    }
    return n;
  }

  /** Kills every cursor opened in a session (killAllSessions). */
  killAllSessions(): void {
    for (const c of [...this.cursors.values()]) if (c.lsid !== undefined) this.kill(c.id);
  }

  /** Open change-stream cursors (for the optional limit on them). */
  get streamCount(): number {
    this.reap();
    let n = 0;
    for (const c of this.cursors.values()) if (c.kind === 'stream') n += 1;
    return n;
  }

  /** Counts for serverStatus `metrics.cursor` (idle cursors past the timeout are reaped first). */
  metrics(): CursorMetrics {
    this.reap();
    let noTimeout = 0;
    let pinned = 0;
    for (const c of this.cursors.values()) {
      if (c.noTimeout) noTimeout += 1;
      if (c.busy) pinned += 1;
    }
    return { open: { noTimeout, pinned, total: this.cursors.size }, totalOpened: this.opened, timedOut: this.timedOut };
  }

  get(id: Long | number | bigint): Cursor | undefined {
    const c = this.cursors.get(String(id));
    if (c) c.lastUsed = this.now();
    return c;
  }

  kill(id: Long | number | bigint): boolean {
    const key = String(id);
    const c = this.cursors.get(key);
    if (!c) return false;
    this.cursors.delete(key);
    c.abort.abort();
    return true;
  }

  /** Removes a cursor without aborting (it was exhausted normally). */
  close(id: Long): void {
    this.cursors.delete(id.toString());
  }

  get size(): number {
    return this.cursors.size;
  }

  private reap(): void {
    const cutoff = this.now() - CURSOR_IDLE_TIMEOUT_MS;
    for (const [key, c] of this.cursors) {
      if (!c.busy && !c.noTimeout && c.lastUsed < cutoff) {
        this.timedOut += 1;
        this.cursors.delete(key);
        c.abort.abort();
      }
    }
  }
}
