/**
 * The server the emulator benchmarks talk to: `--uri <uri>` from the command line, otherwise an
 * emulator started in a child process (as in tests and `npm start`), so client and server do not
 * share an event loop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MongoClient, type Db } from 'mongodb';

export interface BenchTarget {
  client: MongoClient;
  db: Db;
  /** The emulator process, when this script started one. */
  child: ChildProcess | undefined;
  close(): Promise<void>;
}

export async function benchTarget(dbPrefix: string): Promise<BenchTarget> {
  const uriArg = process.argv.indexOf('--uri');
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  const child = uriArg > 0 ? undefined : spawn(process.execPath, ['--import', 'tsx', main, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const uri = child
    ? await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve))
    : process.argv[uriArg + 1]!;
  const client = new MongoClient(uri);
  await client.connect();
  return {
    client,
    db: client.db(`${dbPrefix}_${Date.now()}`),
    child,
    async close() {
      await client.close();
      child?.kill('SIGTERM');
    },
  };
}
