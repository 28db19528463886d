/**
 * The local runner gives the api/ routes the Request/Response semantics Vercel gives them: file path
 * = route, exported methods = handlers, 404 for unknown paths, the raw body byte-for-byte (QStash
 * signatures hash it), and crons fired like Vercel Cron (GET + cron bearer + user agent).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveWeb, type WebServer } from '../runner/adapter.js';
import { readVercelCrons, startCrons } from '../runner/cron.js';
import { loadRoutes, type RouteTable } from '../runner/routes.js';

const root = join(import.meta.dirname, '..', '..', '..');
let routes: RouteTable;
let echo: WebServer;

beforeAll(async () => {
  routes = await loadRoutes(join(root, 'api'));
  // An echo handler behind the same adapter: what arrives is what the handler sees.
  echo = await serveWeb(
    async (r) => {
      const bytes = new Uint8Array(await r.arrayBuffer());
      return Response.json({ method: r.method, url: r.url, headers: Object.fromEntries([...(r.headers as unknown as Iterable<[string, string]>)]), body: Buffer.from(bytes).toString('base64') }, { headers: { 'set-cookie': 'a=1', 'x-multi': 'v' } });
    },
    { port: 0 },
  );
});
afterAll(async () => {
  await echo?.close();
});

describe('route table', () => {
  it('maps every api/ file to its path', () => {
    expect(routes.paths).toEqual(['/api/cron/fanout', '/api/drain', '/api/health', '/api/jobs/process', '/api/jobs/retry', '/api/status', '/api/trigger']);
  });

  it('answers 404 for an unknown path, with JSON naming it', async () => {
    const res = await routes.dispatch(new Request('http://localhost/api/nope'));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('/api/nope');
  });

  it('answers 405 with Allow for a method the file does not export', async () => {
    const res = await routes.dispatch(new Request('http://localhost/api/health', { method: 'OPTIONS' }));
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toContain('GET');
  });

  it('tolerates a trailing slash', async () => {
    const res = await routes.dispatch(new Request('http://localhost/api/status/', { method: 'DELETE' }));
    expect(res.status).toBe(405); // reached the status route (which exports a 405 for DELETE)
    expect(res.headers.get('allow')).toBe('GET');
  });
});

describe('Node http ↔ Web Request adapter', () => {
  it('passes method, URL, headers and the raw body through unchanged', async () => {
    const raw = Buffer.from('{ "orgId" :  "acme",\n"x": "\u00e9\u{1F600}" }', 'utf8');
    const res = await fetch(`http://127.0.0.1:${echo.port}/api/drain?x=1`, { method: 'POST', headers: { 'content-type': 'application/json', 'upstash-signature': 'sig' }, body: raw });
    const seen = (await res.json()) as { method: string; url: string; headers: Record<string, string>; body: string };
    expect(seen.method).toBe('POST');
    expect(new URL(seen.url).pathname + new URL(seen.url).search).toBe('/api/drain?x=1');
    expect(seen.headers['upstash-signature']).toBe('sig');
    expect(Buffer.from(seen.body, 'base64').equals(raw)).toBe(true);
    expect(res.headers.get('set-cookie')).toBe('a=1');
    expect(res.headers.get('x-multi')).toBe('v');
  });
});

describe('cron runner', () => {
  it('reads the crons of vercel.json', async () => {
    const crons = await readVercelCrons(join(root, 'vercel.json'));
    expect(crons.map((c) => c.path).sort()).toEqual(['/api/cron/fanout', '/api/jobs/process']);
  });

  it('fires a cron like Vercel: GET, Authorization: Bearer CRON_SECRET, vercel-cron user agent', async () => {
    const seen: Record<string, string | undefined>[] = [];
    const server = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, ua: req.headers['user-agent'], schedule: req.headers['x-vercel-cron-schedule'] as string | undefined });
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const runner = startCrons({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, cronSecret: 'local-secret', crons: [{ path: '/api/cron/fanout', schedule: '0 0 1 1 *' }] });
    try {
      expect(await runner.fire('/api/cron/fanout')).toMatchObject({ status: 200 });
      expect(seen).toEqual([{ method: 'GET', url: '/api/cron/fanout', auth: 'Bearer local-secret', ua: 'vercel-cron/1.0', schedule: '0 0 1 1 *' }]);
    } finally {
      runner.stop();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('with --tick-seconds fires on the local cadence instead of the schedule', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const results: number[] = [];
    const runner = startCrons({
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      cronSecret: 's',
      crons: [{ path: '/api/jobs/process', schedule: '0 0 1 1 *' }],
      tickSeconds: 1,
      onResult: (_p, r) => 'status' in r && results.push(r.status),
    });
    try {
      const start = Date.now();
      while (results.length < 2 && Date.now() - start < 5_000) await new Promise((r) => setTimeout(r, 50));
      expect(results.slice(0, 2)).toEqual([200, 200]);
      expect(hits).toBeGreaterThanOrEqual(2);
    } finally {
      runner.stop();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
