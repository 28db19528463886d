/**
 * A local webhook sink in its own process: answers every POST with 200 at once and counts requests
 * and distinct Idempotency-Keys. `GET /stats` returns the counts. Prints its base URL on stdout.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let requests = 0;
const keys = new Set<string>();
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ requests, distinctKeys: keys.size }));
    return;
  }
  req.on('data', () => {});
  req.on('end', () => {
    requests++;
    const key = req.headers['idempotency-key'];
    if (typeof key === 'string') keys.add(key);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
});
server.keepAliveTimeout = 5_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
