import { Client, Receiver } from '@upstash/qstash';
import { startQStashServer, type QStashServer, type QStashServerOptions } from '../../server.js';
import { startSink, type Sink } from './sink.js';

/**
 * The real SDK pointed at the local server. Dev mode is forced off (it would replace baseUrl and token),
 * telemetry headers off, and transport retries off so a refused connection fails at once.
 */
export function clientFor(server: Pick<QStashServer, 'url' | 'token'>, token = server.token): Client {
  return new Client({ baseUrl: server.url, token, devMode: false, enableTelemetry: false, retry: false });
}

export function receiverFor(keys: { currentSigningKey: string; nextSigningKey: string }): Receiver {
  return new Receiver({ currentSigningKey: keys.currentSigningKey, nextSigningKey: keys.nextSigningKey, devMode: false });
}

export interface Rig {
  server: QStashServer;
  sink: Sink;
  client: Client;
  receiver: Receiver;
  close(): Promise<void>;
}

/** A QStash server on a free port, a destination sink, and SDK Client/Receiver for them. */
export async function startRig(opts: QStashServerOptions = {}): Promise<Rig> {
  const server = await startQStashServer({ port: 0, retryDelayScale: 0.001, ...opts });
  const sink = await startSink();
  return {
    server,
    sink,
    client: clientFor(server),
    receiver: receiverFor(server),
    async close() {
      await server.close();
      await sink.close();
    },
  };
}
