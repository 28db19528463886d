/**
 * Cursor commands: opening change streams (aggregate with $changeStream), getMore (including the
 * awaiting getMore of change streams, which waits for the oplog without blocking anyone else), and
 * killCursors.
 */
import { Long, type Document } from 'mongodb';
import { ChangeStream, type StreamScope } from '../changestream.js';
import { changeStreamLabels, CommandError } from '../errors.js';
import { isPlainObject } from '../bson.js';
import { asNumber, type CommandContext, type Handler } from './context.js';
import { batchSizeOf, DEFAULT_FIRST_BATCH, takeBatch } from './batches.js';

/** Server default wait of an awaitData getMore without maxTimeMS (SERVER-19665). */
export const DEFAULT_AWAIT_MS = 1000;

/** Code and code name Atlas uses for limits its proxy enforces (e.g. on M0/Flex tiers). */
export const ATLAS_ERROR_CODE = 8000;

/**
 * The refusal of a change stream beyond the `maxChangeStreams` budget. mongod has no such limit;
 * Atlas caps open change streams per cluster by tier and reports its limits as `AtlasError` (8000).
 * No error label: reopening at once would fail again, so the client must close a stream first.
 */
export function tooManyChangeStreams(max: number): CommandError {
  return new CommandError(
    ATLAS_ERROR_CODE,
    `too many open change streams: this server allows ${max} at once (EMULATOR_MAX_CHANGE_STREAMS); close a change stream or raise the limit`,
  );
}

export function openChangeStream(cmd: Document, ctx: CommandContext): Document {
  const pipeline = cmd.pipeline as Document[];
  const stage = pipeline[0]!.$changeStream;
  if (!isPlainObject(stage)) throw new CommandError(50808, '$changeStream stage expects a document as argument');
  let scope: StreamScope;
  if (typeof cmd.aggregate === 'string') {
    if (ctx.db === 'admin' || ctx.db === 'config' || ctx.db === 'local') {
      throw new CommandError(73, `$changeStream may not be opened on the internal ${ctx.db} database`);
    }
    scope = { db: ctx.db, coll: cmd.aggregate, cluster: false };
  } else if (stage.allChangesForCluster === true) {
    if (ctx.db !== 'admin') throw new CommandError(73, "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database");
    scope = { db: ctx.db, cluster: true };
  } else {
    if (ctx.db === 'admin') throw new CommandError(73, "$changeStream on the 'admin' database requires 'allChangesForCluster: true'");
    scope = { db: ctx.db, cluster: false };
  }
  const max = ctx.state.maxChangeStreams;
  if (max !== undefined && ctx.state.cursors.streamCount >= max) throw tooManyChangeStreams(max);
  const stream = new ChangeStream(ctx.state.storage, scope, stage, pipeline.slice(1));
  const cursorOpts = (cmd.cursor ?? {}) as Document;
  const limit = cursorOpts.batchSize === 0 ? 0 : batchSizeOf(cursorOpts.batchSize, DEFAULT_FIRST_BATCH);
  let r;
  try {
    r = stream.read(limit);
  } catch (error) {
    throw withContext(error, 'PlanExecutor error during aggregation');
  }
  const id = r.closed ? Long.ZERO : ctx.state.cursors.addStream(stream.ns, stream, ctx.cursorOwner).id;
  return { cursor: { firstBatch: r.events, postBatchResumeToken: r.pbrt, id, ns: stream.ns }, ok: 1 };
}

export const getMore: Handler = async (cmd, ctx) => {
  const rawId = cmd.getMore;
  if (!(rawId instanceof Long) && typeof rawId !== 'number' && typeof rawId !== 'bigint') {
    throw new CommandError(14, "BSON field 'getMore.getMore' is the wrong type, expected type 'long'");
  }
  if (typeof cmd.collection !== 'string') throw new CommandError(14, "BSON field 'getMore.collection' is missing but a required field");
  const { cursors } = ctx.state;
  const cursor = cursors.get(rawId);
  if (!cursor) throw new CommandError(43, `cursor id ${String(rawId)} not found`);
  const expectedNs = `${ctx.db}.${cmd.collection}`;
  if (cursor.ns !== expectedNs) {
    throw new CommandError(13, `Requested getMore on namespace '${expectedNs}', but cursor belongs to a different namespace ${cursor.ns}`);
  }
  if (cursor.busy) throw new CommandError(292, `cursor id ${String(rawId)} is already in use`);
  const injected = ctx.state.failpoints.afterCursorCheckout(ctx.conn.appName, expectedNs);
  if (injected) {
    // mongod gets rid of a cursor whose getMore failed after checkout; the error is labelled as a
    // genuine error of this cursor would be (the dispatcher no longer finds the closed cursor).
    cursors.close(cursor.id);
    if (cursor.kind === 'stream') throw new CommandError(injected.code, injected.message, {}, changeStreamLabels(injected.code));
    throw injected;
  }
  const limit = batchSizeOf(cmd.batchSize, Number.MAX_SAFE_INTEGER);
  if (cursor.kind === 'docs') {
    const batch = takeBatch(cursor.docs, cursor.pos, limit);
    cursor.pos += batch.length;
    let id = cursor.id;
    if (cursor.pos >= cursor.docs.length) {
      cursors.close(cursor.id);
      id = Long.ZERO;
    }
    return { cursor: { nextBatch: batch, id, ns: cursor.ns }, ok: 1 };
  }
  const { stream } = cursor;
  const oplog = ctx.state.storage.oplog;
  const waitMs = asNumber(cmd.maxTimeMS, DEFAULT_AWAIT_MS);
  const deadline = ctx.state.now() + waitMs;
  cursor.busy = true;
  const signals = [ctx.signal, cursor.abort.signal];
  try {
    for (;;) {
      const r = stream.read(limit);
      const remaining = deadline - ctx.state.now();
      if (r.events.length > 0 || r.closed || remaining <= 0 || signals.some((s) => s.aborted)) {
        if (cursor.abort.signal.aborted) throw new CommandError(237, `cursor id ${String(rawId)} was killed`);
        let id = cursor.id;
        if (r.closed) {
          cursors.close(cursor.id);
          id = Long.ZERO;
        }
        return { cursor: { nextBatch: r.events, postBatchResumeToken: r.pbrt, id, ns: cursor.ns }, ok: 1 };
      }
      await oplog.waitFor(stream.nextSeq, remaining, signals);
    }
  } catch (error) {
    // As on mongod, a getMore that fails kills its cursor (a stream that fell off the oplog, an
    // event too large to return): the client must open a new one.
    if (error instanceof CommandError) cursors.close(cursor.id);
    throw withContext(error, 'Executor error during getMore');
  } finally {
    cursor.busy = false;
  }
};

/** mongod prefixes an error raised while executing a query plan (here: BSONObjectTooLarge) with where it happened. */
function withContext(error: unknown, where: string): unknown {
  if (error instanceof CommandError && error.code === 10334) return new CommandError(error.code, `${where} :: caused by :: ${error.message}`, error.extra, error.labels);
  return error;
}

export const killCursors: Handler = (cmd, ctx) => {
  const ids = cmd.cursors;
  if (!Array.isArray(ids)) throw new CommandError(14, "BSON field 'killCursors.cursors' is missing but a required field");
  const killed: Long[] = [];
  const notFound: Long[] = [];
  for (const raw of ids) {
    const id = raw instanceof Long ? raw : Long.fromNumber(Number(raw));
    if (ctx.state.cursors.kill(id)) killed.push(id);
    else notFound.push(id);
  }
  return { cursorsKilled: killed, cursorsNotFound: notFound, cursorsAlive: [], cursorsUnknown: [], ok: 1 };
};
