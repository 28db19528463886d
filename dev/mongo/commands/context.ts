/** What a command handler gets: the server state, the target database, and its connection. */
import type { Document } from 'mongodb';
import type { CursorRegistry } from '../cursors.js';
import type { FailPoints } from '../failpoints.js';
import type { Storage } from '../storage.js';
import { CommandError } from '../errors.js';

export interface ServerState {
  storage: Storage;
  cursors: CursorRegistry;
  failpoints: FailPoints;
  now(): number;
  /** `host:port` as clients dial it (what hello lists in `hosts`). */
  address: string;
  setName: string;
  startedAt: number;
  connections: { current: number; totalCreated: number };
  log(line: string): void;
}

export interface ConnectionInfo {
  id: number;
  appName?: string;
  remote: string;
}

export interface CommandContext {
  state: ServerState;
  db: string;
  conn: ConnectionInfo;
  /** Aborted when the connection closes (ends waits such as an awaiting getMore). */
  signal: AbortSignal;
}

export type Handler = (cmd: Document, ctx: CommandContext) => Document | Promise<Document>;

/** The value of the command's first field: the collection name for collection commands. */
export function collectionName(cmd: Document, name: string): string {
  const v = cmd[name];
  if (typeof v !== 'string' || v.length === 0) {
    throw new CommandError(73, `collection name has invalid type ${typeof v}`);
  }
  return v;
}

export function asNumber(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'number') return v;
  const n = Number((v as { toNumber?: () => number }).toNumber?.() ?? v);
  return Number.isFinite(n) ? n : fallback;
}
