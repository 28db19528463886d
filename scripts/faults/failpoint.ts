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

export async function armFailPoint(client: MongoClient, data: FailCommand, mode: FailMode = { times: 1 }): Promise<void> {
  const appName = client.options.appName;
  if (!appName) throw new Error('fail points are armed for one appName only: the client needs one');
  await client.db('admin').command({ configureFailPoint: 'failCommand', mode, data: { ...data, appName } as Document });
}

export async function clearFailPoint(client: MongoClient): Promise<void> {
  await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
}

export function describeFault(data: FailCommand, mode: FailMode): string {
  const labels = data.errorLabels?.length ? ` [${data.errorLabels.join(', ')}]` : '';
  const what = data.closeConnection ? 'connection closed' : `error ${data.errorCode}${labels}`;
  const when = mode === 'alwaysOn' ? 'always' : 'times' in mode ? `${mode.times}×` : `after ${mode.skip}, until cleared`;
  return `${data.failCommands.join('/')} ${what} ${when}`;
}
