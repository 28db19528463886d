/**
 * EMULATOR-SPECIFIC behaviour (each test starts its own emulator instance, whatever backend the run
 * uses): bad wire input closes only the offending connection with a logged reason; bounded oplog
 * retention (`oplogMaxEntries` / `--oplog-max-entries`) turns old resume points into 286; the CLI.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BSON, MongoClient, MongoServerError } from 'mongodb';
import { startEmulator, type RunningEmulator } from '../server.js';
import { take, tokenData, until } from './support.js';

let emu: RunningEmulator;
let client: MongoClient;
const logs: string[] = [];

beforeAll(async () => {
  emu = await startEmulator({ oplogMaxEntries: 20, log: (line) => logs.push(line) });
  client = new MongoClient(emu.uri, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await emu?.close();
});

/** Sends raw bytes on a fresh socket; resolves with whatever came back once the server closes it. */
function rawExchange(bytes: Buffer, timeoutMs = 3_000): Promise<{ closed: boolean; reply: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(emu.port, emu.host, () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, reply: Buffer.concat(chunks) });
    }, timeoutMs);
    socket.on('data', (d) => chunks.push(d));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, reply: Buffer.concat(chunks) });
    });
    socket.on('error', () => {});
  });
}

function message(opCode: number, body: Buffer): Buffer {
  const header = Buffer.alloc(16);
  header.writeInt32LE(16 + body.length, 0);
  header.writeInt32LE(7, 4);
  header.writeInt32LE(0, 8);
  header.writeInt32LE(opCode, 12);
  return Buffer.concat([header, body]);
}

describe('bad input closes only that connection', () => {
  it.each([
    ['garbage bytes', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /invalid message length/],
    ['an oversized length', (() => { const b = Buffer.alloc(16); b.writeInt32LE(64 * 1024 * 1024, 0); return b; })(), /invalid message length/],
    ['an unknown opcode', message(4242, Buffer.alloc(8)), /unknown opcode 4242/],
    ['OP_COMPRESSED without negotiation', message(2012, Buffer.alloc(12)), /OP_COMPRESSED/],
    ['an OP_MSG with a corrupt BSON body', message(2013, Buffer.concat([Buffer.alloc(4), Buffer.from([0]), Buffer.from([0xff, 0xff, 0, 0, 1])])), /BSON/],
  ])('%s', async (_label, bytes, reason) => {
    const before = logs.length;
    const res = await rawExchange(bytes);
    expect(res.closed).toBe(true);
    await until(() => logs.slice(before).some((l) => reason.test(l)));
    expect(await client.db('admin').command({ ping: 1 })).toMatchObject({ ok: 1 });
  });

  it('a non-hello OP_QUERY gets error 352 and the connection stays usable', async () => {
    const query = BSON.serialize({ find: 'x' });
    const body = Buffer.concat([Buffer.alloc(4), Buffer.from('admin.$cmd\0'), Buffer.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), query]);
    const res = await rawExchange(message(2004, body), 500);
    expect(res.closed).toBe(false);
    expect(res.reply.readInt32LE(12)).toBe(1); // OP_REPLY
    const doc = BSON.deserialize(res.reply.subarray(36));
    expect(doc).toMatchObject({ ok: 0, code: 352 });
  });
});

describe('bounded oplog retention', () => {
  it('resuming from a token that fell out of the oplog fails with 286 and NonResumableChangeStreamError', async () => {
    const c = client.db('ret').collection('r1');
    const stream = c.watch([], { maxAwaitTimeMS: 50 });
    await stream.tryNext();
    await c.insertOne({ n: 0 });
    const [first] = await take(stream, 1);
    await stream.close();
    await c.insertMany(Array.from({ length: 30 }, (_, n) => ({ n: n + 1 })));
    const resumed = c.watch([], { resumeAfter: first!._id, maxAwaitTimeMS: 50 });
    const err = await resumed.tryNext().catch((e: unknown) => e);
    await resumed.close();
    expect((err as MongoServerError).code).toBe(286);
    expect((err as MongoServerError).hasErrorLabel('NonResumableChangeStreamError')).toBe(true);
  });

  it('an open stream that falls behind the retained oplog fails with 286 on its next getMore', async () => {
    const c = client.db('ret').collection('r2');
    const stream = c.watch([], { maxAwaitTimeMS: 50, batchSize: 1 });
    await stream.tryNext();
    await c.insertMany(Array.from({ length: 40 }, (_, n) => ({ n })));
    const err = await take(stream, 40).catch((e: unknown) => e);
    await stream.close();
    expect((err as MongoServerError).code).toBe(286);
  });

  it('a token still inside the retained window resumes normally', async () => {
    const c = client.db('ret').collection('r3');
    const stream = c.watch([], { maxAwaitTimeMS: 50 });
    await stream.tryNext();
    await c.insertMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const evs = await take(stream, 3);
    await stream.close();
    const resumed = c.watch([], { resumeAfter: evs[0]!._id, maxAwaitTimeMS: 50 });
    try {
      expect((await take(resumed, 2)).map((e) => e.fullDocument.n)).toEqual([2, 3]);
    } finally {
      await resumed.close();
    }
  });
});

describe('idle primary', () => {
  it('periodic no-op entries advance an idle stream\'s post-batch resume token', async () => {
    const idle = await startEmulator({ noopIntervalMs: 100 });
    const c2 = new MongoClient(idle.uri, { serverSelectionTimeoutMS: 5_000 });
    try {
      await c2.connect();
      const stream = c2.db('idle').collection('c').watch([], { maxAwaitTimeMS: 50 });
      await stream.tryNext();
      const first = tokenData(stream.resumeToken);
      await until(async () => {
        expect(await stream.tryNext()).toBeNull();
        return tokenData(stream.resumeToken) > first;
      });
      await stream.close();
    } finally {
      await c2.close();
      await idle.close();
    }
  });
});

describe('CLI', () => {
  it('prints the connection string first, serves, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'dev/mongo/main.ts', '--port', '0', '--oplog-max-entries', '100'], {
      cwd: new URL('../../..', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const lines = createInterface({ input: child.stdout! });
      const uri = await new Promise<string>((resolve, reject) => {
        lines.once('line', resolve);
        child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
      });
      expect(uri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/\?replicaSet=rs0$/);
      const cli = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
      await cli.connect();
      expect((await cli.db('admin').command({ serverStatus: 1 })).oplog.maxEntries).toBe(100);
      await cli.close();
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
