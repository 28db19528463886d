/**
 * Runs one command: finds its handler, applies the failCommand fail point, de-duplicates retried
 * writes, turns errors into `{ok: 0}` replies with mongod's labels, and adds cluster time gossip.
 */
import { Binary, Long, type Document, type Timestamp } from 'mongodb';
import { changeStreamLabels, CommandError, NON_RESUMABLE_CHANGE_STREAM_CODES, RETRIABLE_CODES } from './errors.js';
import { sessionKey, type CommandContext, type Handler } from './commands/context.js';
import * as admin from './commands/admin.js';
import * as crud from './commands/crud.js';
import * as ddl from './commands/ddl.js';
import * as query from './commands/query.js';
import * as streams from './commands/streams.js';
import { bulkWrite } from './commands/bulkwrite.js';
import { rejectCollation } from './commands/writes.js';
import { isChangeStreamPipeline } from './changestream.js';
import { RetryCache } from './retry.js';

const HANDLERS: Record<string, Handler> = {
  hello: admin.hello,
  isMaster: admin.isMaster,
  ping: admin.ping,
  buildInfo: admin.buildInfo,
  serverStatus: admin.serverStatus,
  replSetGetStatus: admin.replSetGetStatus,
  endSessions: admin.endSessions,
  killSessions: admin.killSessions,
  killAllSessions: admin.killAllSessions,
  refreshSessions: admin.refreshSessions,
  startSession: admin.startSession,
  getParameter: admin.getParameter,
  setParameter: admin.setParameter,
  hostInfo: admin.hostInfo,
  whatsmyuri: admin.whatsmyuri,
  getCmdLineOpts: admin.getCmdLineOpts,
  connectionStatus: admin.connectionStatus,
  getLog: admin.getLog,
  dbStats: admin.dbStats,
  insert: crud.insert,
  update: crud.update,
  delete: crud.delete,
  findAndModify: crud.findAndModify,
  bulkWrite,
  find: query.find,
  count: query.count,
  distinct: query.distinct,
  aggregate: query.aggregate,
  getMore: streams.getMore,
  killCursors: streams.killCursors,
  create: ddl.create,
  drop: ddl.drop,
  dropDatabase: ddl.dropDatabase,
  renameCollection: ddl.renameCollection,
  createIndexes: ddl.createIndexes,
  listIndexes: ddl.listIndexes,
  dropIndexes: ddl.dropIndexes,
  deleteIndexes: ddl.dropIndexes,
  listCollections: ddl.listCollections,
  listDatabases: ddl.listDatabases,
  collMod: ddl.collMod,
  configureFailPoint: (cmd, ctx) => {
    if (ctx.db !== 'admin') throw new CommandError(13, 'configureFailPoint may only be run against the admin database.');
    return ctx.state.failpoints.configure(cmd);
  },
};

/** Lower-case aliases mongod accepts (`ismaster`, `buildinfo`, `findandmodify`, ...). */
const BY_LOWER = new Map(Object.keys(HANDLERS).map((k) => [k.toLowerCase(), k]));

const RETRYABLE_WRITES = new Set(['insert', 'update', 'delete', 'findAndModify', 'bulkWrite']);
const ZERO_HASH = new Binary(Buffer.alloc(20), 0);

/** `$clusterTime` (with the all-zero signature of a no-auth mongod) and `operationTime`. */
export function gossip(ts: Timestamp): Document {
  return { $clusterTime: { clusterTime: ts, signature: { hash: ZERO_HASH, keyId: Long.ZERO } }, operationTime: ts };
}

export function canonicalName(raw: string): string | undefined {
  return raw in HANDLERS ? raw : BY_LOWER.get(raw.toLowerCase());
}

export class Dispatcher {
  private readonly retries = new RetryCache(10_000);

  /** Returns the reply, or `undefined` when the connection must be closed without a reply. */
  async run(cmd: Document, ctx: CommandContext): Promise<Document | undefined> {
    const raw = Object.keys(cmd)[0] ?? '';
    const name = canonicalName(raw);
    let reply: Document;
    try {
      reply = (await this.execute(raw, name, cmd, ctx)) as Document;
    } catch (error) {
      if (error === CLOSE) return undefined;
      reply = this.errorReply(error, name ?? raw, cmd, ctx);
    }
    return Object.assign(reply, gossip(ctx.state.storage.oplog.clusterTime));
  }

  private async execute(raw: string, name: string | undefined, cmd: Document, ctx: CommandContext): Promise<Document> {
    const ns = `${ctx.db}.${typeof cmd[raw] === 'string' ? (cmd[raw] as string) : '$cmd'}`;
    const action = ctx.state.failpoints.check(name ?? raw, ctx.conn.appName, ns);
    if (action) {
      if (action.blockMs > 0) await sleep(action.blockMs, ctx.signal);
      if (action.closeConnection) {
        ctx.state.log(`[mongo-emulator] conn${ctx.conn.id} closed by failCommand fail point (${raw})`);
        throw CLOSE;
      }
      if (action.error) {
        const labels = action.error.labels;
        throw new FailPointError(action.error.code, action.error.errmsg ?? `Failing command ${raw} via 'failCommand' failpoint`, labels);
      }
    }
    if (!name) throw new CommandError(59, `no such command: '${raw}'`);
    rejectCollation(cmd.collation);
    if (cmd.tailable === true) throw new CommandError(115, 'tailable cursors are not supported by this server (the development emulator)');
    if (cmd.autocommit === false || cmd.startTransaction === true) {
      throw new CommandError(20, 'multi-document transactions are not supported by this server (the development emulator)');
    }
    const retryKey = RETRYABLE_WRITES.has(name) ? RetryCache.key(cmd) : undefined;
    if (retryKey) {
      const previous = this.retries.get(retryKey);
      if (previous) return { ...previous, retriedStmtIds: [] };
    }
    const lsid = sessionKey(cmd.lsid);
    ctx.cursorOwner = { ...(lsid !== undefined ? { lsid } : {}), noTimeout: cmd.noCursorTimeout === true };
    let reply = await HANDLERS[name]!(cmd, ctx);
    if (retryKey) this.retries.set(retryKey, reply);
    if (action?.writeConcernError) {
      // On the reply only, not the cached outcome: a retry waits for write concern afresh.
      reply = { ...reply, writeConcernError: action.writeConcernError };
      // mongod labels the reply with the fail point's errorLabels, else by its ErrorLabelBuilder:
      // RetryableWriteError for a retryable write whose write concern error code is retriable.
      const wcCode = Number(action.writeConcernError.code);
      const labels = action.labels ?? (RETRYABLE_WRITES.has(name) && cmd.txnNumber !== undefined && RETRIABLE_CODES.has(wcCode) ? ['RetryableWriteError'] : []);
      if (labels.length > 0) reply.errorLabels = labels;
    }
    return reply;
  }

  private errorReply(error: unknown, name: string, cmd: Document, ctx: CommandContext): Document {
    if (!(error instanceof CommandError)) {
      ctx.state.log(`[mongo-emulator] internal error in ${name}: ${(error as Error)?.stack ?? String(error)}`);
      return new CommandError(1, `internal error in ${name}: ${(error as Error)?.message ?? String(error)}`).toReply();
    }
    const reply = error.toReply();
    if (error instanceof FailPointError && error.explicitLabels) return reply;
    const labels = new Set(error.labels);
    // mongod's ErrorLabelBuilder finds a getMore's change stream through the checked-out cursor:
    // failCommand fires before the checkout, so its getMore errors get no ResumableChangeStreamError.
    const isStream =
      (name === 'aggregate' && isChangeStreamPipeline(cmd.pipeline)) ||
      (name === 'getMore' && !(error instanceof FailPointError) && ctx.state.cursors.get(cmd.getMore as number)?.kind === 'stream');
    if (isStream) for (const label of changeStreamLabels(error.code)) labels.add(label);
    // NonResumableChangeStreamError depends on the code alone.
    else if (NON_RESUMABLE_CHANGE_STREAM_CODES.has(error.code)) labels.add('NonResumableChangeStreamError');
    if (RETRYABLE_WRITES.has(name) && cmd.txnNumber !== undefined && RETRIABLE_CODES.has(error.code)) labels.add('RetryableWriteError');
    if (labels.size > 0) reply.errorLabels = [...labels];
    return reply;
  }
}

/** Sentinel: close the connection without replying. */
const CLOSE = Symbol('close-connection');

class FailPointError extends CommandError {
  readonly explicitLabels: boolean;
  constructor(code: number, message: string, labels?: string[]) {
    super(code, message, {}, labels ?? []);
    this.explicitLabels = labels !== undefined;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
