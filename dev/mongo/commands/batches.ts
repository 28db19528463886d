/** Cursor batches: splitting results by batchSize and the 16 MiB reply budget, and cursor replies. */
import { Long, type Document } from 'mongodb';
import { sizeOf } from '../bson.js';
import type { CommandContext } from './context.js';
import { asNumber } from './context.js';

const MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024;
/** mongod's default size of a first batch (find and aggregate). */
export const DEFAULT_FIRST_BATCH = 101;

/** Takes up to `count` documents from `pos`, never more than the reply budget (but at least one). */
export function takeBatch(docs: Document[], pos: number, count: number): Document[] {
  const out: Document[] = [];
  let bytes = 0;
  for (let i = pos; i < docs.length && out.length < count; i++) {
    const doc = docs[i]!;
    bytes += sizeOf(doc);
    if (bytes > MAX_BATCH_BYTES && out.length > 0) break;
    out.push(doc);
  }
  return out;
}

export function batchSizeOf(value: unknown, fallback: number): number {
  const n = asNumber(value, fallback);
  if (n < 0) return fallback;
  return n === 0 && fallback !== 0 ? fallback : n;
}

/**
 * Replies with a first batch of `docs` and, if more remain, registers a cursor for them.
 * `firstBatchSize` 0 returns no document but keeps the cursor open (as mongod does).
 */
export function docsCursorReply(ctx: CommandContext, ns: string, docs: Document[], firstBatchSize: number, singleBatch = false): Document {
  const first = firstBatchSize === 0 ? [] : takeBatch(docs, 0, firstBatchSize);
  let id = Long.ZERO;
  if (!singleBatch && first.length < docs.length) {
    id = ctx.state.cursors.addDocs(ns, docs, first.length, ctx.cursorOwner).id;
  }
  return { cursor: { firstBatch: first, id, ns }, ok: 1 };
}
