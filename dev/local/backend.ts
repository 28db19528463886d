/**
 * Chooses the MongoDB the local stack and the tests run against, in one place:
 *   1. `MONGODB_URI` when set (any real deployment);
 *   2. a real `mongod` through mongodb-memory-server (`MongoMemoryReplSet`, test commands enabled),
 *      when a binary is available: `MONGOMS_SYSTEM_BINARY`, the download cache, or a download —
 *      attempted only when the download host answers, so offline machines give up in seconds;
 *   3. the project's wire-protocol emulator (dev/mongo).
 * `REQUIRE_REAL_MONGO=1` turns step 3 (and a URI that points at the emulator) into an error.
 */
import https from 'node:https';
import { MongoClient } from 'mongodb';
import { startEmulator } from '../mongo/server.js';
import { SERVER_VERSION } from '../mongo/commands/admin.js';

export interface MongoBackend {
  kind: 'uri' | 'mongod' | 'emulator';
  uri: string;
  version: string;
  describe: string;
  stop(): Promise<void>;
}

export interface MongoBackendOptions {
  /** Receives the backend line and diagnostics. Default: console.log. */
  log?: (line: string) => void;
  /** Oplog retention of the emulator, if the emulator is chosen. Default 1,000,000 entries. */
  oplogMaxEntries?: number;
}

/** How long a local mongod binary may take to start a one-node replica set. */
const START_TIMEOUT_MS = 30_000;
/** How long a download plus start may take when the download host is reachable. */
const DOWNLOAD_TIMEOUT_MS = 180_000;
/** How long to wait for the download host before calling the machine offline. */
const PROBE_TIMEOUT_MS = 3_000;

export async function startMongoBackend(opts: MongoBackendOptions = {}): Promise<MongoBackend> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const requireReal = process.env.REQUIRE_REAL_MONGO === '1' || process.env.REQUIRE_REAL_MONGO === 'true';
  const announce = (b: MongoBackend) => {
    log(`[mongo] backend=${b.kind} version=${b.version} (${b.describe}) uri=${redact(b.uri)}`);
    return b;
  };

  const fromEnv = process.env.MONGODB_URI;
  if (fromEnv) {
    const info = await buildInfo(fromEnv);
    if (requireReal && info.emulator) throw new Error('REQUIRE_REAL_MONGO=1 but MONGODB_URI points at the development emulator');
    return announce({ kind: 'uri', uri: fromEnv, version: info.version, describe: info.emulator ? 'MONGODB_URI, development emulator' : 'MONGODB_URI', stop: async () => {} });
  }

  const real = await tryMemoryServer(log);
  if (real) return announce(real);
  if (requireReal) {
    throw new Error('REQUIRE_REAL_MONGO=1 but no real mongod is available (set MONGODB_URI or MONGOMS_SYSTEM_BINARY, or allow the mongodb-memory-server download)');
  }

  const emulator = await startEmulator({
    ...(opts.oplogMaxEntries !== undefined ? { oplogMaxEntries: opts.oplogMaxEntries } : {}),
    log,
  });
  return announce({ kind: 'emulator', uri: emulator.uri, version: SERVER_VERSION, describe: 'project emulator, dev/mongo', stop: () => emulator.close() });
}

async function buildInfo(uri: string): Promise<{ version: string; emulator: boolean }> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 });
  try {
    const info = await client.db('admin').command({ buildInfo: 1 });
    return { version: String(info.version), emulator: info.emulator === true };
  } finally {
    await client.close();
  }
}

async function tryMemoryServer(log: (line: string) => void): Promise<MongoBackend | undefined> {
  let mms: typeof import('mongodb-memory-server');
  try {
    mms = await import('mongodb-memory-server');
  } catch {
    return undefined;
  }
  let binary: string | undefined;
  try {
    const options = await mms.DryMongoBinary.generateOptions();
    binary = await mms.DryMongoBinary.locateBinary(options);
  } catch {
    binary = undefined;
  }
  if (!binary && !(await downloadHostAnswers())) {
    log('[mongo] no cached mongod binary and the download host is unreachable: skipping mongodb-memory-server');
    return undefined;
  }
  const timeoutMs = binary ? START_TIMEOUT_MS : DOWNLOAD_TIMEOUT_MS;
  const starting = mms.MongoMemoryReplSet.create({
    replSet: { count: 1, name: 'rs0', storageEngine: 'wiredTiger', args: ['--setParameter', 'enableTestCommands=1'] },
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const result = await Promise.race([starting, timeout]);
    if (result === 'timeout') {
      log(`[mongo] mongodb-memory-server did not start within ${timeoutMs} ms: falling back`);
      void starting.then((rs) => rs.stop()).catch(() => {});
      return undefined;
    }
    const uri = result.getUri();
    const { version } = await buildInfo(uri);
    return {
      kind: 'mongod',
      uri,
      version,
      describe: `mongodb-memory-server${binary ? `, ${binary}` : ', downloaded'}`,
      stop: async () => {
        await result.stop({ doCleanup: true, force: true });
      },
    };
  } catch (error) {
    log(`[mongo] mongodb-memory-server failed: ${(error as Error).message.split('\n')[0]}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** True when the mongod download host answers at all within a few seconds. */
function downloadHostAnswers(): Promise<boolean> {
  const base = process.env.MONGOMS_DOWNLOAD_URL ?? process.env.MONGOMS_DOWNLOAD_MIRROR ?? 'https://fastdl.mongodb.org';
  return new Promise((resolve) => {
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      resolve(ok);
    };
    try {
      const req = https.request(base, { method: 'HEAD', timeout: PROBE_TIMEOUT_MS }, (res) => {
        res.resume();
        finish(true);
      });
      req.on('timeout', () => {
        req.destroy();
        finish(false);
      });
      req.on('error', () => finish(false));
      req.end();
    } catch {
      finish(false);
    }
  });
}

/** Hides credentials in a connection string before it is printed. */
function redact(uri: string): string {
  return uri.replace(/\/\/([^@/]+)@/, '//***@');
}
