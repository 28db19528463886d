/**
 * hello / isMaster as a single-node replica-set primary, and the admin commands drivers and tools
 * send (ping, buildInfo, serverStatus, replSetGetStatus, endSessions, getParameter, ...).
 */
import { Long, ObjectId, type Document } from 'mongodb';
import { sessionKey, type Handler } from './context.js';

/** Reported server version and wire version (8.0 → 25). */
export const SERVER_VERSION = '8.0.0';
export const MAX_WIRE_VERSION = 25;
const ELECTION_ID = new ObjectId('7fffffff0000000000000001');

export function helloReply(legacy: boolean, cmd: Document, state: Parameters<Handler>[1]['state'], connectionId: number): Document {
  const ts = state.storage.oplog.clusterTime;
  const opTime = { ts, t: Long.fromNumber(1) };
  const wall = new Date(ts.t * 1000);
  const reply: Document = {
    hosts: [state.address],
    setName: state.setName,
    setVersion: 1,
    [legacy ? 'ismaster' : 'isWritablePrimary']: true,
    secondary: false,
    primary: state.address,
    me: state.address,
    electionId: ELECTION_ID,
    lastWrite: { opTime, lastWriteDate: wall, majorityOpTime: opTime, majorityWriteDate: wall },
    maxBsonObjectSize: 16 * 1024 * 1024,
    maxMessageSizeBytes: 48_000_000,
    maxWriteBatchSize: 100_000,
    localTime: new Date(state.now()),
    logicalSessionTimeoutMinutes: 30,
    connectionId,
    minWireVersion: 0,
    maxWireVersion: MAX_WIRE_VERSION,
    readOnly: false,
  };
  // Never advertise compression or topologyVersion: the driver then polls with plain hello.
  if (legacy && cmd.helloOk === true) reply.helloOk = true;
  reply.ok = 1;
  return reply;
}

export const hello: Handler = (cmd, ctx) => helloReply(false, cmd, ctx.state, ctx.conn.id);
export const isMaster: Handler = (cmd, ctx) => helloReply(true, cmd, ctx.state, ctx.conn.id);

export const ping: Handler = () => ({ ok: 1 });

export const buildInfo: Handler = () => ({
  version: SERVER_VERSION,
  gitVersion: 'emulator',
  versionArray: [8, 0, 0, 0],
  bits: 64,
  debug: false,
  maxBsonObjectSize: 16 * 1024 * 1024,
  storageEngines: ['memory'],
  modules: [],
  allocator: 'system',
  javascriptEngine: 'none',
  openssl: { running: 'disabled' },
  emulator: true,
  ok: 1,
});

export const serverStatus: Handler = (_cmd, ctx) => {
  const s = ctx.state;
  return {
    host: s.address,
    version: SERVER_VERSION,
    process: 'mongod',
    pid: Long.fromNumber(process.pid),
    uptime: Math.floor((s.now() - s.startedAt) / 1000),
    uptimeMillis: Long.fromNumber(s.now() - s.startedAt),
    localTime: new Date(s.now()),
    connections: { current: s.connections.current, available: 1_000_000, totalCreated: s.connections.totalCreated },
    metrics: { cursor: cursorMetrics(s) },
    oplog: { nextSeq: s.storage.oplog.nextSeq, oldestSeq: s.storage.oplog.oldestSeq, maxEntries: s.storage.oplog.maxEntries },
    repl: { setName: s.setName, isWritablePrimary: true, primary: s.address, hosts: [s.address] },
    storageEngine: { name: 'memory', persistent: false },
    ok: 1,
  };
};

export const replSetGetStatus: Handler = (_cmd, ctx) => {
  const s = ctx.state;
  const ts = s.storage.oplog.clusterTime;
  const optime = { ts, t: Long.fromNumber(1) };
  return {
    set: s.setName,
    date: new Date(s.now()),
    myState: 1,
    term: Long.fromNumber(1),
    heartbeatIntervalMillis: Long.fromNumber(2000),
    optimes: { lastCommittedOpTime: optime, appliedOpTime: optime, durableOpTime: optime },
    members: [
      { _id: 0, name: s.address, health: 1, state: 1, stateStr: 'PRIMARY', uptime: Math.floor((s.now() - s.startedAt) / 1000), optime, optimeDate: new Date(ts.t * 1000), self: true },
    ],
    ok: 1,
  };
};

/**
 * `metrics.cursor` of serverStatus, as mongod reports it: `open.total` (every open cursor, change
 * streams included), `open.noTimeout` (opened with `noCursorTimeout`), `open.pinned` (a getMore is
 * running on it), `totalOpened` and `timedOut` since start; all int64.
 */
function cursorMetrics(s: Parameters<Handler>[1]['state']): Document {
  const m = s.cursors.metrics();
  return {
    open: { noTimeout: Long.fromNumber(m.open.noTimeout), pinned: Long.fromNumber(m.open.pinned), total: Long.fromNumber(m.open.total) },
    timedOut: Long.fromNumber(m.timedOut),
    totalOpened: Long.fromNumber(m.totalOpened),
  };
}

/** The `[{id: UUID}, ...]` session list of endSessions / killSessions as session keys. */
function sessionKeys(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((l) => sessionKey(l)).filter((k): k is string => k !== undefined);
}

/**
 * Ending a session closes the cursors it opened (mongod docs, endSessions: "closes any open cursors
 * associated with the session"; mongod does so when its session cache next refreshes, the emulator
 * at once). killSessions kills them immediately on both.
 */
export const endSessions: Handler = (cmd, ctx) => {
  for (const k of sessionKeys(cmd.endSessions)) ctx.state.cursors.killSession(k);
  return { ok: 1 };
};
export const killSessions: Handler = (cmd, ctx) => {
  for (const k of sessionKeys(cmd.killSessions)) ctx.state.cursors.killSession(k);
  return { ok: 1 };
};
/** killAllSessions: the emulator has no users, so every session's cursors are killed. */
export const killAllSessions: Handler = (_cmd, ctx) => {
  ctx.state.cursors.killAllSessions();
  return { ok: 1 };
};
export const refreshSessions: Handler = () => ({ ok: 1 });
export const startSession: Handler = () => ({ id: { id: new ObjectId().toHexString() }, timeoutMinutes: 30, ok: 1 });

export const getParameter: Handler = (cmd) => {
  const reply: Document = {};
  if (cmd.featureCompatibilityVersion !== undefined || cmd.getParameter === '*') reply.featureCompatibilityVersion = { version: '8.0' };
  if (cmd.enableTestCommands !== undefined || cmd.getParameter === '*') reply.enableTestCommands = true;
  reply.ok = 1;
  return reply;
};

export const setParameter: Handler = () => ({ was: null, ok: 1 });
export const hostInfo: Handler = () => ({ system: { hostname: 'localhost', cpuArch: process.arch }, os: { type: process.platform }, ok: 1 });
export const whatsmyuri: Handler = (_cmd, ctx) => ({ you: ctx.conn.remote, ok: 1 });
export const getCmdLineOpts: Handler = (_cmd, ctx) => ({ argv: ['mongod-emulator'], parsed: { replication: { replSet: ctx.state.setName } }, ok: 1 });
export const connectionStatus: Handler = () => ({ authInfo: { authenticatedUsers: [], authenticatedUserRoles: [] }, ok: 1 });
export const getLog: Handler = () => ({ totalLinesWritten: 0, log: [], ok: 1 });
export const dbStats: Handler = (_cmd, ctx) => {
  const colls = ctx.state.storage.databases.get(ctx.db);
  let objects = 0;
  for (const c of colls?.values() ?? []) objects += c.docs.size;
  return { db: ctx.db, collections: colls?.size ?? 0, objects, dataSize: objects * 64, ok: 1 };
};
