/** find / count / distinct / aggregate (non-stream) — reads, with mingo doing the semantics. */
import { Long, type Document } from 'mongodb';
import { compareValues, keyString, sortDocuments, valuesAtPath } from '../compare.js';
import { compileFilter, projectAll, runPipeline } from '../engine.js';
import { CommandError } from '../errors.js';
import { isPlainObject } from '../bson.js';
import { asNumber, collectionName, type CommandContext, type Handler } from './context.js';
import { batchSizeOf, DEFAULT_FIRST_BATCH, docsCursorReply } from './batches.js';
import { isChangeStreamPipeline } from '../changestream.js';
import { openChangeStream } from './streams.js';

/** The collection, or the result of the view, a read of `db.name` sees. */
function readable(ctx: CommandContext, name: string) {
  return ctx.state.storage.readable(ctx.db, name, (docs, pipeline) => runPipeline(docs, pipeline, resolver(ctx)));
}

function applyProjection(docs: Document[], filter: Document, projection: Document | undefined): Document[] {
  if (!projection || Object.keys(projection).length === 0) return docs;
  return projectAll(docs, filter, projection);
}

function nonNegative(v: unknown, name: string): number {
  const n = asNumber(v, 0);
  if (n < 0) throw new CommandError(51024, `BSON field '${name}' value must be >= 0, actual value '${n}'`);
  return n;
}

export const find: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'find');
  const filter = (cmd.filter ?? {}) as Document;
  if (!isPlainObject(filter)) throw new CommandError(14, "BSON field 'FindCommandRequest.filter' is the wrong type, expected type 'object'");
  const coll = readable(ctx, name);
  const skip = nonNegative(cmd.skip, 'skip');
  let limit = asNumber(cmd.limit, 0);
  let singleBatch = cmd.singleBatch === true;
  if (limit < 0) {
    limit = -limit;
    singleBatch = true;
  }
  const sort = cmd.sort as Document | undefined;
  const hasSort = sort && Object.keys(sort).length > 0;
  let docs = coll ? coll.find(filter, !hasSort && limit > 0 ? skip + limit : 0) : (compileFilter(filter), []);
  if (hasSort) docs = sortDocuments(docs, sort, limit > 0 ? skip + limit : 0);
  if (skip > 0 || limit > 0) docs = docs.slice(skip, limit > 0 ? skip + limit : undefined);
  docs = applyProjection(docs, filter, cmd.projection as Document | undefined);
  const batchSize = batchSizeOf(cmd.batchSize, DEFAULT_FIRST_BATCH);
  return docsCursorReply(ctx, `${ctx.db}.${name}`, docs, cmd.batchSize === 0 ? 0 : batchSize, singleBatch);
};

export const count: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'count');
  const coll = readable(ctx, name);
  const query = (cmd.query ?? {}) as Document;
  const skip = nonNegative(cmd.skip, 'skip');
  const limit = Math.abs(asNumber(cmd.limit, 0));
  let n = coll ? (Object.keys(query).length === 0 ? coll.docs.size : coll.find(query).length) : (compileFilter(query), 0);
  n = Math.max(0, n - skip);
  if (limit > 0) n = Math.min(n, limit);
  return { n, ok: 1 };
};

export const distinct: Handler = (cmd, ctx) => {
  const name = collectionName(cmd, 'distinct');
  if (typeof cmd.key !== 'string') throw new CommandError(14, "BSON field 'distinct.key' is missing but a required field");
  const coll = readable(ctx, name);
  const docs = coll ? coll.find((cmd.query ?? {}) as Document) : (compileFilter(cmd.query as Document), []);
  const seen = new Map<string, unknown>();
  for (const doc of docs) {
    for (const v of valuesAtPath(doc, cmd.key)) {
      for (const x of Array.isArray(v) ? v : [v]) {
        if (x === undefined) continue;
        const k = keyString(x);
        if (!seen.has(k)) seen.set(k, x);
      }
    }
  }
  return { values: [...seen.values()].sort(compareValues), ok: 1 };
};

function resolver(ctx: CommandContext) {
  return (coll: string) => [...(ctx.state.storage.get(ctx.db, coll)?.docs.values() ?? [])];
}

export const aggregate: Handler = async (cmd, ctx) => {
  const target = cmd.aggregate;
  const pipeline = cmd.pipeline;
  if (!Array.isArray(pipeline)) throw new CommandError(14, "'pipeline' option must be specified as an array");
  if (!isPlainObject(cmd.cursor) && cmd.explain !== true) {
    throw new CommandError(9, "The 'cursor' option is required, except for aggregate with the explain argument");
  }
  if (isChangeStreamPipeline(pipeline)) return openChangeStream(cmd, ctx);
  for (const stage of pipeline as Document[]) {
    if ('$changeStream' in stage) throw new CommandError(40602, '$changeStream is only valid as the first stage in a pipeline.');
  }
  let input: Document[] = [];
  let stages = pipeline as Document[];
  const collName = typeof target === 'string' ? target : undefined;
  if (collName !== undefined) {
    const coll = readable(ctx, collName);
    // A leading $match can use the _id map and indexes.
    const first = stages[0];
    if (coll && first && isPlainObject(first.$match)) {
      input = coll.find(first.$match);
      stages = stages.slice(1);
    } else {
      input = coll ? [...coll.docs.values()] : [];
    }
  } else if (target !== 1) {
    throw new CommandError(14, "Invalid aggregate namespace: 'aggregate' must be a collection name or 1");
  }
  const last = stages[stages.length - 1];
  if (last && ('$merge' in last || '$out' in last)) {
    if ('$merge' in last) throw new CommandError(115, '$merge is not supported by this server (the development emulator)');
    const out = runPipeline(input, stages.slice(0, -1), resolver(ctx));
    const targetName = typeof last.$out === 'string' ? last.$out : (last.$out as Document)?.coll;
    if (typeof targetName !== 'string') throw new CommandError(2, '$out requires a collection name');
    ctx.state.storage.drop(ctx.db, targetName);
    const dest = ctx.state.storage.ensure(ctx.db, targetName);
    for (const doc of out) dest.insert(doc);
    return { cursor: { firstBatch: [], id: Long.ZERO, ns: `${ctx.db}.${collName ?? '$cmd.aggregate'}` }, ok: 1 };
  }
  const result = stages.length ? runPipeline(input, stages, resolver(ctx)) : input;
  const cursorOpts = (cmd.cursor ?? {}) as Document;
  const ns = collName !== undefined ? `${ctx.db}.${collName}` : `${ctx.db}.$cmd.aggregate`;
  return docsCursorReply(ctx, ns, result, cursorOpts.batchSize === 0 ? 0 : batchSizeOf(cursorOpts.batchSize, DEFAULT_FIRST_BATCH));
};
