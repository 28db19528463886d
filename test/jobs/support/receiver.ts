import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the receiver got. */
export interface Hit {
  path: string;
  method: string;
  headers: IncomingMessage['headers'];
  rawBody: string;
  /** Parsed body, when JSON. */
  body: { job?: { key?: string; attempt?: number; [k: string]: unknown }; submission?: unknown } | null;
  key: string | undefined;
  attempt: number | undefined;
}

/** What to do with a request: answer, never answer, or drop the connection. */
export type Action = { status: number; headers?: Record<string, string>; body?: string } | 'hang' | 'destroy';

export interface Receiver {
  url: string;
  hits: Hit[];
  /** Decides each answer; default 200. Replace it at any time. */
  behave: (hit: Hit) => Action;
  /** Resolves when at least `n` requests have arrived. */
  waitForHits(n: number): Promise<void>;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1 with scripted answers. */
export async function startReceiver(): Promise<Receiver> {
  const waiters: { n: number; resolve: () => void }[] = [];
  const hanging: ServerResponse[] = [];
  const receiver: Receiver = {
    url: '',
    hits: [],
    behave: () => ({ status: 200 }),
    waitForHits: (n) =>
      new Promise<void>((resolve) => {
        if (receiver.hits.length >= n) resolve();
        else waiters.push({ n, resolve });
      }),
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body: Hit['body'] = null;
      try {
        body = JSON.parse(rawBody) as Hit['body'];
      } catch {
        body = null;
      }
      const hit: Hit = {
        path: req.url ?? '',
        method: req.method ?? '',
        headers: req.headers,
        rawBody,
        body,
        key: req.headers['idempotency-key'] as string | undefined,
        attempt: body?.job?.attempt,
      };
      receiver.hits.push(hit);
      const action = receiver.behave(hit);
      for (const w of [...waiters]) {
        if (receiver.hits.length >= w.n) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
      if (action === 'hang') {
        hanging.push(res);
        return;
      }
      if (action === 'destroy') {
        req.socket.destroy();
        return;
      }
      res.writeHead(action.status, action.headers ?? {});
      res.end(action.body ?? '');
    });
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}
