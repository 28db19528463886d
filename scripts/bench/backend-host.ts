/**
 * Child process that hosts the MongoDB backend for the bench and fault CLIs, so that an in-process
 * emulator never shares an event loop (or a CPU) with the code being measured. Chooses the backend
 * exactly like the tests (dev/local/backend.ts), prints one JSON line `{kind, uri, version, describe}` on
 * stdout, and stops the backend when stdin closes or on SIGTERM/SIGINT.
 */
import { startMongoBackend } from '../../dev/local/backend.js';

const backend = await startMongoBackend({ log: (line) => process.stderr.write(`${line}\n`) });
process.stdout.write(`${JSON.stringify({ kind: backend.kind, uri: backend.uri, version: backend.version, describe: backend.describe })}\n`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await backend.stop().catch(() => undefined);
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
// The parent holds our stdin open; when it goes away for any reason, so do we.
process.stdin.on('end', () => void stop());
process.stdin.on('close', () => void stop());
process.stdin.resume();
