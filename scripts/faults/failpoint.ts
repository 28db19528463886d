/**
 * mongod's `failCommand` fail point (test commands enabled), scoped to one client's appName so that
 * nothing else on the server is affected. The emulator implements the same command.
 */
import type { Document, MongoClient } from 'mongodb';

export interface FailCommand {
  failCommands: string[];
  errorCode?: number;
  errorLabels?: string[];
  closeConnection?: boolean;
}

export type FailMode = { times: number } | { skip: number } | 'alwaysOn';

/**
 * How the scenarios arm and clear the fail point. mongod has one `failCommand` fail point per
 * server: `npm run faults` has the server to itself and configures it directly; inside `npm test`,
 * where test files run in parallel on one server, test/faults installs the test suite's locking
 * helpers (test/support/mongo.ts) so that no two files arm it at once.
 */
export interface FailPointPort {
  arm(client: MongoClient, data: FailCommand & { appName: string }, mode: FailMode): Promise<void>;
  clear(client: MongoClient): Promise<void>;
}

const direct: FailPointPort = {
  async arm(client, data, mode) {
    await client.db('admin').command({ configureFailPoint: 'failCommand', mode, data: data as Document });
  },
  async clear(client) {
    await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
  },
};

let port: FailPointPort = direct;

/** Arm and clear fail points through `next` from now on; null goes back to configuring the server directly. */
export function useFailPointPort(next: FailPointPort | null): void {
  port = next ?? direct;
}

export async function armFailPoint(client: MongoClient, data: FailCommand, mode: FailMode = { times: 1 }): Promise<void> {
  const appName = client.options.appName;
  if (!appName) throw new Error('fail points are armed for one appName only: the client needs one');
  await port.arm(client, { ...data, appName }, mode);
}

export async function clearFailPoint(client: MongoClient): Promise<void> {
  await port.clear(client);
}

export function describeFault(data: FailCommand, mode: FailMode): string {
  const labels = data.errorLabels?.length ? ` [${data.errorLabels.join(', ')}]` : '';
  const what = data.closeConnection ? 'connection closed' : `error ${data.errorCode}${labels}`;
  const when = mode === 'alwaysOn' ? 'always' : 'times' in mode ? `${mode.times}×` : `after ${mode.skip}, until cleared`;
  return `${data.failCommands.join('/')} ${what} ${when}`;
}
