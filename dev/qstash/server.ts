import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from './clock.js';
import { handleApi } from './api.js';
import { DedupWindow } from './dedup.js';
import { DeliveryEngine } from './engine.js';
import { DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY, DEV_TOKEN } from './keys.js';
import { QueueRegistry } from './queues.js';
import type { ApiRequest, ServerState } from './state.js';
import type { DlqEntry, StoredMessage } from './types.js';

/** Options of the local QStash server. Defaults are the QStash dev server's public credentials. */
export interface QStashServerOptions {
  /** Default 8080 (the QStash dev server's port); tests pass 0 for a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Bearer token publishers must send; default the dev token. */
  token?: string;
  /** Key deliveries are signed with; default the dev current key. */
  currentSigningKey?: string;
  /** Default the dev next key. */
  nextSigningKey?: string;
  /** Multiplies every retry delay; default 1 (QStash timing). Tests use e.g. 0.001. */
  retryDelayScale?: number;
  /** One line per publish and delivery outcome; default silent. Never receives tokens or bodies. */
  log?: (line: string) => void;
  /** Transport for deliveries; default global fetch. */
  fetchImpl?: typeof fetch;
  /** Time source for signatures, delays and the dedup window; default the system clock. */
  clock?: Clock;
  /** Retries when a message does not say; default 3. */
  defaultRetries?: number;
  /** Highest accepted `Upstash-Retries`; default 20. */
  maxRetries?: number;
  /** Attempt timeout cap (plan's max response duration); default 15 minutes. */
  maxTimeoutMs?: number;
  /** Deduplication window; default 10 minutes. */
  dedupWindowMs?: number;
  /** Largest accepted request body; default 1 MiB. */
  maxBodyBytes?: number;
  /** `Upstash-Region` sent on deliveries; default US-EAST-1. */
  region?: string;
}

export interface QStashServer {
  /** Base URL for `new Client({ baseUrl: url, token })`. */
  url: string;
  token: string;
  currentSigningKey: string;
  nextSigningKey: string;
  close(): Promise<void>;
  /** Every message ever accepted (including callbacks), with state and attempts. */
  messages(): StoredMessage[];
  /** Current dead-letter entries. */
  dlq(): DlqEntry[];
  /** Resolves when no delivery is pending or in flight. */
  idle(): Promise<void>;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) reject(new BodyTooLarge());
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, json?: unknown): void {
  if (json === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(json);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
}

/** Starts a QStash-compatible HTTP server: publish, batch, enqueue, signed delivery with retries, DLQ. */
export async function startQStashServer(opts: QStashServerOptions = {}): Promise<QStashServer> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? (() => {});
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  const maxTimeoutMs = opts.maxTimeoutMs ?? 15 * 60_000;
  const queues = new QueueRegistry();
  // The engine reads the keys through `state`, so a rotation takes effect on the next attempt.
  const state: ServerState = {
    token: opts.token ?? DEV_TOKEN,
    keys: { current: opts.currentSigningKey ?? DEV_CURRENT_SIGNING_KEY, next: opts.nextSigningKey ?? DEV_NEXT_SIGNING_KEY },
    queues,
    dedup: new DedupWindow(opts.dedupWindowMs ?? 10 * 60_000),
    clock,
    limits: { defaultRetries: opts.defaultRetries ?? 3, maxRetries: opts.maxRetries ?? 20, maxTimeoutMs },
    log,
    engine: undefined as unknown as DeliveryEngine,
  };
  state.engine = new DeliveryEngine({
    port: {
      fetchImpl: opts.fetchImpl ?? fetch,
      signingKey: () => state.keys.current,
      nowMs: () => clock.now(),
      region: opts.region ?? 'US-EAST-1',
    },
    clock,
    queues,
    retryDelayScale: opts.retryDelayScale ?? 1,
    maxTimeoutMs,
    log,
  });

  const server = createServer((req, res) => {
    void (async () => {
      let body: Buffer;
      try {
        body = await readBody(req, maxBodyBytes);
      } catch (err) {
        if (err instanceof BodyTooLarge) {
          res.setHeader('Connection', 'close');
          return send(res, 413, { error: `request body exceeds ${maxBodyBytes} bytes` });
        }
        return send(res, 400, { error: 'could not read request body' });
      }
      const headers = new Headers();
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      const apiReq: ApiRequest = { method: req.method ?? 'GET', target: req.url ?? '/', headers, body };
      if (req.socket.remoteAddress !== undefined) apiReq.remoteAddress = req.socket.remoteAddress;
      const out = await handleApi(state, apiReq);
      send(res, out.status, out.json);
    })();
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const publicHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${publicHost}:${port}`,
    token: state.token,
    get currentSigningKey() {
      return state.keys.current;
    },
    get nextSigningKey() {
      return state.keys.next;
    },
    close() {
      closed ??= (async () => {
        await state.engine.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return closed;
    },
    messages: () => state.engine.all().map((m) => ({ ...m, attempts: [...m.attempts] })),
    dlq: () => state.engine.dlq().map((e) => ({ ...e, message: { ...e.message, attempts: [...e.message.attempts] } })),
    idle: () => state.engine.idle(),
  };
}
