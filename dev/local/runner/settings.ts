import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * The local settings file `npm start` leaves for `npm run ops`: the MongoDB URI, the rollout
 * settings, the secrets and the base URL of the running local stack, so that the CLI started in the
 * same folder reads the same database with the same configuration as the routes (and `ops status`
 * agrees with the dashboard). Git-ignored (`.local/`), mode 0600 (it holds the admin token), removed
 * again when `npm start` stops.
 */
export const LOCAL_SETTINGS_FILE = join('.local', 'settings.json');

/** The variables `npm start` records: what `ops` needs to act like the routes of the running stack. */
export const LOCAL_SETTINGS_KEYS = [
  'MONGODB_URI',
  'MONGODB_DB',
  'USE_CHANGE_STREAMS',
  'CHANGE_STREAMS_ORG_IDS',
  'CHANGE_STREAMS_ALL_ORGS',
  'TRIGGER_MODE',
  'TRIGGER_MODE_BY_ORG',
  'STREAM_LAYOUT',
  'STREAM_PARTITIONS',
  'RELAY',
  'ADMIN_TOKEN',
  'CRON_SECRET',
  'PUBLIC_BASE_URL',
  'QSTASH_URL',
  'QSTASH_TOKEN',
  'QSTASH_CURRENT_SIGNING_KEY',
  'QSTASH_NEXT_SIGNING_KEY',
  'WEBHOOK_SIGNING_SECRET',
  'WEBHOOK_ALLOW_HOSTS',
] as const;

export interface LocalSettings {
  /** Process id of the `npm start` that wrote the file. */
  pid: number;
  writtenAt: string;
  /** Where the routes answer, e.g. `http://127.0.0.1:3000`. */
  baseUrl: string;
  env: Partial<Record<(typeof LOCAL_SETTINGS_KEYS)[number], string>>;
}

/** Write the settings file under `dir` (0600, directory 0700). Returns its path. */
export async function writeLocalSettings(dir: string, env: Record<string, string | undefined>, baseUrl: string, pid = process.pid): Promise<string> {
  const file = join(dir, LOCAL_SETTINGS_FILE);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const picked = Object.fromEntries(LOCAL_SETTINGS_KEYS.flatMap((k) => (env[k] ? [[k, env[k]]] : [])));
  const settings: LocalSettings = { pid, writtenAt: new Date().toISOString(), baseUrl, env: picked };
  await writeFile(file, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
  // `mode` applies only when the file is created; an older file keeps its bits unless set again.
  await chmod(file, 0o600);
  return file;
}

/** Remove the settings file, but only if this process wrote it (a second `npm start` may own it now). */
export async function removeLocalSettings(dir: string, pid = process.pid): Promise<void> {
  const file = join(dir, LOCAL_SETTINGS_FILE);
  try {
    const settings = JSON.parse(await readFile(file, 'utf8')) as LocalSettings;
    if (settings.pid === pid) await rm(file, { force: true });
  } catch {
    // Absent or unreadable: nothing of ours to remove.
  }
}

export type LoadedSettings =
  | { status: 'none'; file: string }
  | { status: 'stale'; file: string; pid: number }
  | { status: 'invalid'; file: string; problem: string }
  | { status: 'applied'; file: string; baseUrl: string; applied: string[] };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Fill the variables `env` lacks from the settings file under `dir`; the environment wins. A file
 * left by an `npm start` that is no longer running is not applied (its MongoDB is gone).
 */
export function applyLocalSettings(dir: string, env: Record<string, string | undefined> = process.env): LoadedSettings {
  const file = join(dir, LOCAL_SETTINGS_FILE);
  if (!existsSync(file)) return { status: 'none', file };
  let settings: LocalSettings;
  try {
    settings = JSON.parse(readFileSync(file, 'utf8')) as LocalSettings;
    if (typeof settings !== 'object' || settings === null || typeof settings.env !== 'object' || typeof settings.pid !== 'number') throw new Error('not a settings file written by npm start');
  } catch (error) {
    return { status: 'invalid', file, problem: (error as Error).message };
  }
  if (!alive(settings.pid)) return { status: 'stale', file, pid: settings.pid };
  const applied: string[] = [];
  for (const key of LOCAL_SETTINGS_KEYS) {
    const value = settings.env[key];
    if (value && !env[key]?.trim()) {
      env[key] = value;
      applied.push(key);
    }
  }
  return { status: 'applied', file, baseUrl: settings.baseUrl, applied };
}
