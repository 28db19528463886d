/** A webhook receiver on 127.0.0.1 for the processor scenario: answers 200 and records (key, attempt). */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  key: string;
  attempt: number;
}

export interface WebhookReceiver {
  url: string;
  deliveries: Delivery[];
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let attempt = -1;
      try {
        attempt = Number((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { job?: { attempt?: number } }).job?.attempt ?? -1);
      } catch {
        attempt = -1;
      }
      deliveries.push({ key: String(req.headers['idempotency-key'] ?? ''), attempt });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    deliveries,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
