import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the destination saw it, with the raw body bytes (what signature verification needs). */
export interface Received {
  method: string;
  /** Full URL: sink origin + request-target, i.e. what the publisher used as destination. */
  url: string;
  path: string;
  headers: Headers;
  body: string;
  receivedAt: number;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Hold the response until this settles (a slow or hanging endpoint). */
  until?: Promise<unknown>;
}

export type Responder = (req: Received, index: number) => Reply | Promise<Reply>;

/** A local HTTP endpoint that records every request and answers with a programmable responder. */
export interface Sink {
  url: string;
  received: Received[];
  /** Requests currently being answered. */
  inFlight(): number;
  /** Highest number of requests answered at the same time so far. */
  maxInFlight(): number;
  respond(fn: Responder): void;
  /** Requests whose path (without query) equals `path`. */
  at(path: string): Received[];
  close(): Promise<void>;
}

export async function startSink(initial: Responder = () => ({ status: 200, body: 'ok' })): Promise<Sink> {
  let responder = initial;
  const received: Received[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    // 'data' events, not async iteration: the same raw-body reading that works on Vercel's Node runtime.
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const headers = new Headers();
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      const target = req.url ?? '/';
      const entry: Received = {
        method: req.method ?? 'GET',
        url: `${sink.url}${target}`,
        path: target.split('?')[0]!,
        headers,
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Date.now(),
      };
      received.push(entry);
      void (async () => {
        let reply: Reply;
        try {
          reply = await responder(entry, received.length - 1);
          if (reply.until) await reply.until.catch(() => undefined);
        } catch {
          reply = { status: 500, body: 'responder threw' };
        }
        inFlight--;
        if (res.destroyed) return;
        res.writeHead(reply.status, reply.headers).end(reply.body ?? '');
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const sink: Sink = {
    url: `http://127.0.0.1:${port}`,
    received,
    inFlight: () => inFlight,
    maxInFlight: () => maxInFlight,
    respond(fn) {
      responder = fn;
    },
    at: (path) => received.filter((r) => r.path === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return sink;
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function until<T>(check: () => T | undefined | false | null, what: string, timeoutMs = 5000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A responder that measures overlap per path. Requests to a path listed in `holdUntil` are held open
 * until that many are open at once (so a parallelism limit is reached however slow the machine is);
 * after that, and for other paths, each answer is held `holdMs`. `peak(path)` is the most seen at once.
 */
export function overlapProbe(holdUntil: Record<string, number>, holdMs = 20) {
  const active = new Map<string, number>();
  const peak = new Map<string, number>();
  const held = new Map<string, Array<() => void>>();
  const opened = new Set<string>();
  const responder: Responder = (req) => {
    const n = (active.get(req.path) ?? 0) + 1;
    active.set(req.path, n);
    peak.set(req.path, Math.max(peak.get(req.path) ?? 0, n));
    const done = () => active.set(req.path, active.get(req.path)! - 1);
    const target = holdUntil[req.path];
    if (target === undefined || opened.has(req.path)) {
      return { status: 200, until: new Promise<void>((r) => setTimeout(r, holdMs)).then(done) };
    }
    const wait = new Promise<void>((r) => held.set(req.path, [...(held.get(req.path) ?? []), r]));
    if (n >= target) {
      opened.add(req.path);
      for (const release of held.get(req.path) ?? []) release();
    }
    return { status: 200, until: wait.then(done) };
  };
  return { responder, peak: (path: string) => peak.get(path) ?? 0, active: (path: string) => active.get(path) ?? 0 };
}
