/**
 * Integration-test helpers. `useTestDb(name)` gives a test file its own database on the backend the
 * global setup chose (one MongoClient per file, database dropped afterwards). Fault injection goes
 * through mongod's `configureFailPoint: 'failCommand'`, so the same tests run on real mongod.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient, type Db, type Document, type MongoClientOptions } from 'mongodb';
import { afterAll, beforeAll, inject } from 'vitest';

export interface TestDb {
  client(): MongoClient;
  db(): Db;
  uri: string;
}

/** A database name from `name`: allowed characters only, plus a random suffix so runs never collide. */
export function testDbName(name: string): string {
  const base = name.replace(/[^a-zA-Z0-9_]/g, '_').slice(0, 40) || 'test';
  return `${base}_${randomBytes(4).toString('hex')}`;
}

/**
 * Registers beforeAll/afterAll in the calling file; call at the top level of a test file.
 * The client's `appName` is the database name, unique per file, so that fail points armed through
 * `failCommand(client, ...)` hit this file's commands only, never a file running in parallel.
 */
export function useTestDb(name: string, options: MongoClientOptions = {}): TestDb {
  const uri = inject('mongoUri');
  const dbName = testDbName(name);
  let client: MongoClient | undefined;
  beforeAll(async () => {
    client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, appName: dbName, ...options });
    await client.connect();
  });
  afterAll(async () => {
    if (!client) return;
    try {
      // A test that failed before disarming its fail point must not leave it (or the lock) behind.
      if (holdsFailPoint(uri)) await clearFailPoints(client);
      await client.db(dbName).dropDatabase();
    } finally {
      await client.close();
    }
  });
  return {
    uri,
    client() {
      if (!client) throw new Error('useTestDb: the client is available inside tests and hooks only');
      return client;
    },
    db() {
      return this.client().db(dbName);
    },
  };
}

/** `uri` | `mongod` | `emulator`: which backend this run uses. */
export function backendKind(): string {
  return inject('mongoBackend');
}

/** The `data` of a failCommand fail point (see mongod's test commands). */
export interface FailCommandData {
  failCommands: string[];
  errorCode?: number;
  /** Only commands from clients with this appName fail. Default: the appName of the arming client. */
  errorLabels?: string[];
  closeConnection?: boolean;
  blockConnection?: boolean;
  blockTimeMS?: number;
  appName?: string;
  writeConcernError?: Document;
}

/**
 * Arms the failCommand fail point: `mode` defaults to `{ times: 1 }`. mongod has a single fail point
 * per server, so this first waits for any other test file to release it,
 * and scopes it to `data.appName`, by default the arming client's own appName (see useTestDb).
 * Disarm with `clearFailPoints()` (in a `finally`), which also releases it.
 */
export async function failCommand(
  client: MongoClient,
  data: FailCommandData,
  mode: 'alwaysOn' | { times: number } | { skip: number } = { times: 1 },
): Promise<void> {
  await acquireFailPoint(inject('mongoUri'));
  const appName = data.appName ?? client.options.appName;
  await client.db('admin').command({ configureFailPoint: 'failCommand', mode, data: { ...data, ...(appName ? { appName } : {}) } });
}

/** Disarms the failCommand fail point and lets other test files use it (no-op while another file holds it). */
export async function clearFailPoints(client: MongoClient): Promise<void> {
  const uri = inject('mongoUri');
  if (heldByAnother(uri)) return;
  try {
    await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
  } finally {
    releaseFailPoint(uri);
  }
}

/**
 * Runs any `configureFailPoint` command (`failCommand`, `failGetMoreAfterCursorCheckout`, ...) under
 * the fail-point lock, scoped like `failCommand()`: `data.appName` defaults to the client's appName
 * (both fail points honour mongod's `appName` filter). Disarm with `disableFailPoint()`.
 */
export async function configureFailPoint(client: MongoClient, command: Document): Promise<void> {
  await acquireFailPoint(inject('mongoUri'));
  const data = { ...((command.data as Document | undefined) ?? {}) };
  const appName = (data.appName as string | undefined) ?? client.options.appName;
  await client.db('admin').command({ ...command, data: { ...data, ...(appName ? { appName } : {}) } });
}

/** Turns the named fail point off and gives the lock back (no-op while another file holds it). */
export async function disableFailPoint(client: MongoClient, name: string): Promise<void> {
  const uri = inject('mongoUri');
  if (heldByAnother(uri)) return;
  try {
    await client.db('admin').command({ configureFailPoint: name, mode: 'off' });
  } finally {
    releaseFailPoint(uri);
  }
}

/*
 * The fail-point lock. mongod has one `failCommand` fail point per server, and test files run in parallel worker
 * processes. This lock gives one process at a time the fail point: taken by `failCommand()`, given
 * back by `clearFailPoints()` (or when the file's client closes). A holder that died or held it for
 * longer than STALE_MS is taken over, so a crashed test cannot block the others.
 */
const STALE_MS = 60_000;
const WAIT_MS = 120_000;

function lockDir(uri: string): string {
  return join(tmpdir(), `failpoint-lock-${createHash('sha1').update(uri).digest('hex').slice(0, 12)}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function holder(dir: string): { pid: number; at: number } | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'owner'), 'utf8')) as { pid: number; at: number };
  } catch {
    return undefined;
  }
}

/** Waits until this process holds the fail point of the server at `uri` (re-entrant per process). */
async function acquireFailPoint(uri: string): Promise<void> {
  const dir = lockDir(uri);
  const end = Date.now() + WAIT_MS;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'owner'), JSON.stringify({ pid: process.pid, at: Date.now() }));
      return;
    } catch {
      const owner = holder(dir);
      if (owner?.pid === process.pid) return;
      if (owner && (!alive(owner.pid) || Date.now() - owner.at > STALE_MS)) rmSync(dir, { recursive: true, force: true });
    }
    if (Date.now() > end) throw new Error('timed out waiting for the failCommand fail point held by another test file');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whether this process holds the fail point of the server at `uri`. */
function holdsFailPoint(uri: string): boolean {
  return holder(lockDir(uri))?.pid === process.pid;
}

/** Whether a live process other than this one holds the fail point (it must not be touched then). */
function heldByAnother(uri: string): boolean {
  const owner = holder(lockDir(uri));
  return !!owner && owner.pid !== process.pid && alive(owner.pid) && Date.now() - owner.at <= STALE_MS;
}

function releaseFailPoint(uri: string): void {
  if (holdsFailPoint(uri)) rmSync(lockDir(uri), { recursive: true, force: true });
}
