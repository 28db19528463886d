/**
 * The MongoDB wire-protocol emulator: a single-node replica-set primary (`rs0`) held in memory,
 * for development and tests when no real mongod is available. Not for production.
 */
import net from 'node:net';
import { Connection } from './connection.js';
import { CursorRegistry } from './cursors.js';
import { Dispatcher } from './dispatch.js';
import { FailPoints } from './failpoints.js';
import { DEFAULT_OPLOG_MAX_ENTRIES, Oplog } from './oplog.js';
import { Storage } from './storage.js';
import type { ServerState } from './commands/context.js';

export interface EmulatorOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 0. */
  port?: number;
  /** Oplog entries retained for change streams. Default 1,000,000. */
  oplogMaxEntries?: number;
  /** Replica set name. Default `rs0`. */
  setName?: string;
  /** Receives one line per notable server event (closed connections, internal errors). Default: none. */
  log?: (line: string) => void;
  /** Wall clock in ms (cluster times, wallTime, waits). Default `Date.now`. */
  now?: () => number;
  /**
   * Like a real primary, write a no-op oplog entry when nothing was written for this long, so that
   * idle change streams still see their post-batch resume token advance. Default 10,000; 0 disables.
   */
  noopIntervalMs?: number;
  /**
   * Open change-stream cursors allowed at once; one more `aggregate` with `$changeStream` fails with
   * 8000 AtlasError (the way Atlas reports its per-cluster change-stream cap). Default: the
   * `EMULATOR_MAX_CHANGE_STREAMS` environment variable, else no limit.
   */
  maxChangeStreams?: number;
}

/** `maxChangeStreams` from the option or `EMULATOR_MAX_CHANGE_STREAMS`; throws on a value that is not a positive integer. */
export function maxChangeStreamsSetting(option: number | undefined, env = process.env.EMULATOR_MAX_CHANGE_STREAMS): number | undefined {
  const raw = option ?? (env !== undefined && env.trim() !== '' ? Number(env) : undefined);
  if (raw === undefined) return undefined;
  if (!Number.isInteger(raw) || raw < 1) {
    throw new Error(`maxChangeStreams / EMULATOR_MAX_CHANGE_STREAMS must be a positive integer, got ${String(option ?? env)}`);
  }
  return raw;
}

export interface RunningEmulator {
  /** `mongodb://host:port/?replicaSet=rs0` */
  uri: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const host = options.host ?? '127.0.0.1';
  const maxChangeStreams = maxChangeStreamsSetting(options.maxChangeStreams);
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => {});
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  const setName = options.setName ?? 'rs0';
  const state: ServerState = {
    storage: new Storage(new Oplog(now, options.oplogMaxEntries ?? DEFAULT_OPLOG_MAX_ENTRIES)),
    cursors: new CursorRegistry(now),
    failpoints: new FailPoints(),
    now,
    // A wildcard listen address is not dialable: advertise loopback instead.
    address: `${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.toLowerCase()}:${port}`,
    setName,
    startedAt: now(),
    connections: { current: 0, totalCreated: 0 },
    ...(maxChangeStreams !== undefined ? { maxChangeStreams } : {}),
    log,
  };
  const dispatcher = new Dispatcher();
  const oplog = state.storage.oplog;
  const noopMs = options.noopIntervalMs ?? 10_000;
  const noop =
    noopMs > 0
      ? setInterval(() => {
          const last = oplog.clusterTime.t * 1000;
          if (now() - last >= noopMs) oplog.append({ op: 'noop', db: 'admin' });
        }, noopMs)
      : undefined;
  noop?.unref();
  const open = new Set<Connection>();
  let nextId = 1;
  server.on('connection', (socket) => {
    state.connections.current += 1;
    state.connections.totalCreated += 1;
    const conn = new Connection(socket, state, dispatcher, nextId++);
    open.add(conn);
    socket.on('close', () => {
      state.connections.current -= 1;
      open.delete(conn);
    });
  });
  let closing: Promise<void> | undefined;
  return {
    uri: `mongodb://${host}:${port}/?replicaSet=${setName}`,
    host,
    port,
    close() {
      clearInterval(noop);
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const conn of open) conn.close();
      });
      return closing;
    },
  };
}
