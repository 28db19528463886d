/** What a command handler gets: the server state, the target database, and its connection. */
import type { Document } from 'mongodb';
import type { CursorOwner, CursorRegistry } from '../cursors.js';
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
  /** Open change-stream cursors allowed at once (see server.ts `maxChangeStreams`); undefined = no limit. */
  maxChangeStreams?: number;
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
  /** The session and options a cursor opened by this command belongs to (set by the dispatcher). */
  cursorOwner?: CursorOwner;
}

/** `lsid.id` of a command as a string key (hex of the UUID bytes), or undefined without a session. */
export function sessionKey(lsid: unknown): string | undefined {
  const id = (lsid as { id?: { buffer?: Uint8Array; position?: number } } | null | undefined)?.id;
  if (!id?.buffer) return undefined;
  return Buffer.from(id.buffer.buffer, id.buffer.byteOffset, id.position ?? id.buffer.byteLength).toString('hex');
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
