/**
 * Runs the local QStash server: `tsx dev/qstash/main.ts [--port 8080] [--host 127.0.0.1] [--retry-delay-scale 1]`.
 * Prints the URL, token and signing keys (the public QStash dev-server values unless overridden) for .env use.
 */
import { parseArgs } from 'node:util';
import { startQStashServer } from './server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.QSTASH_DEV_PORT ?? '8080' },
    host: { type: 'string', default: '127.0.0.1' },
    'retry-delay-scale': { type: 'string', default: '1' },
    quiet: { type: 'boolean', default: false },
  },
});

const port = Number(values.port);
const retryDelayScale = Number(values['retry-delay-scale']);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be an integer between 0 and 65535, got ${values.port}`);
  process.exit(2);
}
if (!Number.isFinite(retryDelayScale) || retryDelayScale < 0) {
  console.error(`--retry-delay-scale must be a non-negative number, got ${values['retry-delay-scale']}`);
  process.exit(2);
}

const server = await startQStashServer({
  port,
  host: values.host,
  retryDelayScale,
  log: values.quiet ? undefined : (line) => console.log(`${new Date().toISOString()} ${line}`),
});

console.log(`QStash local server listening on ${server.url}`);
console.log('Development values (not secrets):');
console.log(`  QSTASH_URL=${server.url}`);
console.log(`  QSTASH_TOKEN=${server.token}`);
console.log(`  QSTASH_CURRENT_SIGNING_KEY=${server.currentSigningKey}`);
console.log(`  QSTASH_NEXT_SIGNING_KEY=${server.nextSigningKey}`);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`${signal} received, stopping`);
  await server.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
