/**
 * The 8.0 client-level `bulkWrite` command (`MongoClient.bulkWrite()`): ops across namespaces, one
 * result entry per op (errors only with `errorsOnly`), int32 counters, ordered or not.
 */
import { Long, type Document } from 'mongodb';
import { letVariables } from '../engine.js';
import { CommandError } from '../errors.js';
import { isPlainObject } from '../bson.js';
import type { Handler } from './context.js';
import { runDelete, runUpdate } from './crud.js';
import { writeErrorEntry } from './writes.js';

function namespace(nsInfo: Document[], index: unknown): [string, string] {
  const entry = nsInfo[Number(index)];
  const ns = typeof entry?.ns === 'string' ? entry.ns : undefined;
  const dot = ns?.indexOf('.') ?? -1;
  if (!ns || dot <= 0) throw new CommandError(2, `BulkWrite ops entry refers to an invalid nsInfo index ${String(index)}`);
  return [ns.slice(0, dot), ns.slice(dot + 1)];
}

export const bulkWrite: Handler = (cmd, ctx) => {
  if (ctx.db !== 'admin') throw new CommandError(13, 'bulkWrite may only be run against the admin database.');
  const ops = cmd.ops;
  const nsInfo = cmd.nsInfo;
  if (!Array.isArray(ops) || !Array.isArray(nsInfo)) throw new CommandError(14, "BSON fields 'bulkWrite.ops' and 'bulkWrite.nsInfo' are required");
  const ordered = cmd.ordered !== false;
  const errorsOnly = cmd.errorsOnly === true;
  const vars = letVariables(cmd.let);
  const counts = { nErrors: 0, nInserted: 0, nUpserted: 0, nMatched: 0, nModified: 0, nDeleted: 0 };
  const results: Document[] = [];
  for (let idx = 0; idx < ops.length; idx++) {
    const op = ops[idx] as Document;
    try {
      if (!isPlainObject(op)) throw new CommandError(14, 'bulkWrite op must be an object');
      if ('insert' in op) {
        const [db, coll] = namespace(nsInfo, op.insert);
        ctx.state.storage.ensure(db, coll).insert(op.document as Document);
        counts.nInserted += 1;
        if (!errorsOnly) results.push({ ok: 1, idx, n: 1 });
      } else if ('update' in op) {
        const [db, coll] = namespace(nsInfo, op.update);
        const r = runUpdate(ctx, db, coll, {
          q: op.filter, u: op.updateMods, multi: op.multi === true, upsert: op.upsert === true,
          arrayFilters: op.arrayFilters, sort: op.sort, collation: op.collation,
        }, vars);
        if (r.upsertedId !== undefined) counts.nUpserted += 1;
        else counts.nMatched += r.n;
        counts.nModified += r.nModified;
        if (!errorsOnly) results.push({ ok: 1, idx, n: r.n, nModified: r.nModified, ...(r.upsertedId !== undefined ? { upserted: { _id: r.upsertedId } } : {}) });
      } else if ('delete' in op) {
        const [db, coll] = namespace(nsInfo, op.delete);
        const n = runDelete(ctx, db, coll, { q: op.filter, limit: op.multi === true ? 0 : 1, collation: op.collation }, vars);
        counts.nDeleted += n;
        if (!errorsOnly) results.push({ ok: 1, idx, n });
      } else {
        throw new CommandError(9, `Unrecognized bulkWrite op: ${Object.keys(op)[0] ?? '(empty)'}`);
      }
    } catch (error) {
      const { index: _i, ...entry } = writeErrorEntry(idx, error);
      counts.nErrors += 1;
      results.push({ ok: 0, idx, ...entry });
      if (ordered) break;
    }
  }
  return { cursor: { id: Long.ZERO, firstBatch: results, ns: 'admin.$cmd.bulkWrite' }, ...counts, ok: 1 };
};
