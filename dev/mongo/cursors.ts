/**
 * Open server cursors. A find/aggregate cursor holds its remaining result documents; a change-stream
 * cursor holds its stream position. Ids are int64 (the driver requires `Long`). Cursors idle for more
 * than 10 minutes are reaped, as mongod does by default.
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
  busy: boolean;
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

  constructor(private readonly now: () => number) {}

  private newId(): Long {
    this.next += 1 + Math.floor(Math.random() * 1000);
    return Long.fromNumber(this.next);
  }

  addDocs(ns: string, docs: Document[], pos: number): DocsCursor {
    this.reap();
    const c: DocsCursor = { kind: 'docs', id: this.newId(), ns, docs, pos, lastUsed: this.now(), abort: new AbortController(), busy: false };
    this.cursors.set(c.id.toString(), c);
    return c;
  }

  addStream(ns: string, stream: ChangeStream): StreamCursor {
    this.reap();
    const c: StreamCursor = { kind: 'stream', id: this.newId(), ns, stream, lastUsed: this.now(), abort: new AbortController(), busy: false };
    this.cursors.set(c.id.toString(), c);
    return c;
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
      if (!c.busy && c.lastUsed < cutoff) {
        this.cursors.delete(key);
        c.abort.abort();
      }
    }
  }
}
