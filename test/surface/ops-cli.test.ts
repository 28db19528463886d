/**
 * The operator's command line and the local runner's console: `npm run ops` reaches the stack
 * `npm start` left its settings for (the environment winning), argument and configuration mistakes
 * end in a usage line or a list of problems — never a stack trace —, a busy port names `--port`,
 * and the console lines say how to reach the stack and summarise job failures.
 */
import { spawn } from 'node:child_process';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { mkdtempSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as status from '../../api/status.js';
import { accessLines, cronLines, FailureSummary, summarisingLogger } from '../../dev/local/runner/console.js';
import { applyLocalSettings, LOCAL_SETTINGS_FILE, removeLocalSettings, writeLocalSettings } from '../../dev/local/runner/settings.js';
import { provideContext } from '../../lib/platform/context.js';
import type { Logger } from '../../lib/platform/log.js';
import type { StatusReport } from '../../lib/status/report.js';
import { seedWorkflow } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, bearer, request, useRouteContext } from '../api/support.js';

const root = join(import.meta.dirname, '..', '..');
const TSX = join(root, 'node_modules', '.bin', 'tsx');
const t = useTestDb('ops_cli');

/** The environment of a shell without any of the product's variables. */
function bareEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[key]) env[key] = process.env[key]!;
  return { ...env, ...extra };
}

function run(args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, args, { cwd: opts.cwd, env: opts.env ?? bareEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const ops = (args: string[], opts: { cwd: string; env?: Record<string, string> }) => run([join(root, 'scripts', 'ops.ts'), ...args], opts);
const noStack = (text: string) => expect(text).not.toMatch(/^\s+at .+[:(]/m);

let emptyDir: string;
beforeAll(() => {
  emptyDir = mkdtempSync(join(tmpdir(), 'ops-cli-'));
});
afterAll(() => provideContext(null));

describe('ops: argument and configuration mistakes', () => {
  it.each([
    ['an option without its value', ['retry-dead', '--org'], /Option '--org <value>' argument missing/, /usage: npm run ops -- retry-dead/],
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/, /usage: npm run ops -- <command>/],
    ['an unknown option', ['status', '--verbose'], /Unknown option '--verbose'/, /usage: npm run ops -- status/],
    ['a bad time', ['retry-dead', '--org', 'acme', '--from', 'yesterday'], /--from must be an ISO time with a zone/, /usage: npm run ops -- retry-dead/],
    ['a status search that is not an id prefix', ['status', '--org', 'a b'], /--org must be an organization or stream id prefix/, /usage: npm run ops -- status/],
    ['reconcile without --since', ['reconcile', 'acme', '--since', '2030-01-01'], /--since must be an ISO time with a zone/, /usage: npm run ops -- reconcile/],
    // An option of another command is refused, never ignored: a dry run asked for must not run for real.
    ['an option of another command', ['reconcile', 'acme', '--since', '2030-01-01T00:00:00Z', '--dry-run'], /reconcile does not take --dry-run \(its options: --since, --include-later-workflows\)/, /usage: npm run ops -- reconcile/],
    ['an option on a command that takes none', ['drain', 'acme', '--dry-run'], /drain does not take --dry-run/, /usage: npm run ops -- drain/],
  ])('%s: a usage line, exit code 2, no stack trace', async (_name, args, message, usage) => {
    const r = await ops(args, { cwd: emptyDir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(usage);
    noStack(r.stderr);
  });

  it('a missing configuration is a list of problems, not a zod dump, and says where settings come from', async () => {
    const r = await ops(['status'], { cwd: emptyDir, env: bareEnv({ DRAIN_BATCH_SIZE: 'lots' }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('configuration problems:\n  - MONGODB_URI: required, not set\n  - DRAIN_BATCH_SIZE:');
    expect(r.stderr).toContain(`no ${join(emptyDir, LOCAL_SETTINGS_FILE)}: start the local stack with \`npm start\``);
    expect(r.stderr).not.toMatch(/✖|→ at|Invalid input: expected string/);
    noStack(r.stderr);
  });
});

describe('ops reads the settings npm start leaves', () => {
  let dir: string;
  beforeAll(async () => {
    await seedWorkflow(t.db(), { organizationId: 'acme' });
    dir = mkdtempSync(join(tmpdir(), 'ops-settings-'));
    // What npm start records: this test process stands in for it (its pid is alive).
    await writeLocalSettings(
      dir,
      { MONGODB_URI: t.uri, MONGODB_DB: t.db().databaseName, USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ORG_IDS: 'acme', TRIGGER_MODE: 'change_streams', STREAM_LAYOUT: 'collection', ADMIN_TOKEN: ADMIN, LOG_LEVEL: 'debug' },
      'http://127.0.0.1:3999',
    );
  });

  it('writes a 0600 file holding only the settings it names', () => {
    const file = join(dir, LOCAL_SETTINGS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const env: Record<string, string | undefined> = { MONGODB_DB: 'mine' };
    const loaded = applyLocalSettings(dir, env);
    expect(loaded).toMatchObject({ status: 'applied', baseUrl: 'http://127.0.0.1:3999' });
    expect(env).toMatchObject({ MONGODB_DB: 'mine', MONGODB_URI: t.uri, TRIGGER_MODE: 'change_streams', ADMIN_TOKEN: ADMIN });
    expect(env.LOG_LEVEL).toBeUndefined();
  });

  it('`ops status` with no variables set shows what the status route shows', async () => {
    const r = await ops(['status', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const cli = JSON.parse(r.stdout) as StatusReport;
    await useRouteContext(t.db(), t.client(), { CHANGE_STREAMS_ALL_ORGS: undefined, CHANGE_STREAMS_ORG_IDS: 'acme' });
    const res = await status.GET(request('GET', '/api/status?format=json', { headers: bearer(ADMIN) }));
    const route = (await res.json()) as StatusReport;
    expect(cli.streams.map((s) => [s.id, s.state])).toEqual(route.streams.map((s) => [s.id, s.state]));
    expect(cli.streams.map((s) => s.id)).toContain('org:acme');
    expect(cli.rollout).toEqual(route.rollout);
    expect(cli.jobs.byStatus).toEqual(route.jobs.byStatus);
    const text = await ops(['status'], { cwd: dir });
    expect(text.stdout).toMatch(/^org:acme\s+idle/m);
  });

  it('pausing by organization id in the database layout says the whole partition stops, and resume says it started again', async () => {
    const env = bareEnv({ STREAM_LAYOUT: 'database' });
    const paused = await ops(['pause', 'acme'], { cwd: dir, env });
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/^partition:0\/1 paused$/m);
    expect(paused.stdout).toMatch(/partition:0\/1 serves every organization whose collection hashes to it, not only acme: all of them are paused/);
    const resumed = await ops(['resume', 'partition:0/1'], { cwd: dir, env });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/^partition:0\/1 resumed$/m);
    // By stream id the operator named the partition: no note.
    expect(resumed.stdout).not.toMatch(/serves every organization/);
    const search = await ops(['status', '--org', 'acme'], { cwd: dir, env });
    expect(search.stdout).toMatch(/no stream matches "acme"/);
    expect(search.stdout).toMatch(/GET \/api\/status\?view=streams&org=acme shows which partition serves "acme"/);
    await t.db().collection(COLLECTIONS.checkpoints).deleteOne({ _id: 'partition:0/1' as never });
  });

  it('the environment wins over the file', async () => {
    const r = await ops(['status', '--json'], { cwd: dir, env: bareEnv({ USE_CHANGE_STREAMS: 'false' }) });
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as StatusReport).streams).toEqual([]);
  });

  it('a file left by an npm start that stopped is not used, and says so', async () => {
    const stale = mkdtempSync(join(tmpdir(), 'ops-stale-'));
    const gone = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', '']);
      child.on('close', () => resolve(child.pid!));
    });
    await writeLocalSettings(stale, { MONGODB_URI: t.uri }, 'http://127.0.0.1:3999', gone);
    const r = await ops(['status'], { cwd: stale });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`was left by an npm start (pid ${gone}) that is no longer running; not used`);
    expect(r.stderr).toContain('MONGODB_URI: required, not set');
  });

  it('is removed at exit only by the npm start that wrote it', async () => {
    const other = mkdtempSync(join(tmpdir(), 'ops-owner-'));
    await writeLocalSettings(other, { MONGODB_URI: t.uri }, 'http://127.0.0.1:3999', 424242);
    await removeLocalSettings(other);
    expect(applyLocalSettings(other, {}).status).not.toBe('none');
    await removeLocalSettings(other, 424242);
    expect(applyLocalSettings(other, {}).status).toBe('none');
  });

  it('an unreadable file is reported, not a crash', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'ops-bad-'));
    mkdirSync(join(bad, '.local'));
    writeFileSync(join(bad, LOCAL_SETTINGS_FILE), '{not json');
    const r = await ops(['status'], { cwd: bad });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/settings\.json is not readable .*; not used/);
    noStack(r.stderr);
  });
});

describe('npm start: messages', () => {
  let busy: Server;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
  });
  afterAll(() => new Promise<void>((resolve) => busy.close(() => resolve())));

  it('a busy port ends with one line naming --port and PORT, not an EADDRINUSE stack', async () => {
    const port = (busy.address() as { port: number }).port;
    const r = await run([join(root, 'dev', 'local', 'server.ts'), '--port', String(port), '--no-demo'], { cwd: emptyDir });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`port ${port} is already in use (another npm start?): choose another with --port, e.g. npm start -- --port ${port + 1}, or PORT=${port + 1} npm start`);
  });

  it('the printed curl carries the generated token, or says to export the one from the environment', () => {
    const generated = accessLines({ port: 3000, adminToken: 'tok-123', tokenGenerated: true, settingsFile: '.local/settings.json' });
    expect(generated[0]).toBe('[status] curl -H "Authorization: Bearer tok-123" http://localhost:3000/api/status');
    expect(generated.join('\n')).toContain('npm run ops -- status');
    const fromEnv = accessLines({ port: 3000, adminToken: 'secret-from-env', tokenGenerated: false, settingsFile: null });
    expect(fromEnv.join('\n')).not.toContain('secret-from-env');
    expect(fromEnv.join('\n')).toMatch(/\$ADMIN_TOKEN.*\n.*export it in the shell/);
  });

  it('the banner says when the crons fire and how to speed them up', () => {
    const crons = [{ path: '/api/cron/fanout', schedule: '* * * * *' }, { path: '/api/jobs/process', schedule: '* * * * *' }];
    const lines = cronLines(crons, undefined, new Date('2030-01-01T12:00:30Z'));
    expect(lines).toEqual([
      '[cron] /api/cron/fanout: every minute, at second 0 UTC (vercel.json "* * * * *"), next at 12:01:00 UTC',
      '[cron] /api/jobs/process: every minute, at second 0 UTC (vercel.json "* * * * *"), next at 12:01:00 UTC',
      '[cron] start with --tick-seconds N (1..59) to fire them every N seconds instead',
    ]);
    expect(cronLines(crons, 5, new Date())).toEqual(['[cron] /api/cron/fanout and /api/jobs/process fire every 5 s (--tick-seconds 5; vercel.json schedules them every minute, at second 0)']);
  });

  it('job failures become one line per workflow per interval, with counts; other lines pass through', () => {
    const printed: string[] = [];
    const inner: Logger = { debug: (m) => printed.push(m), info: (m) => printed.push(m), warn: (m) => printed.push(m), error: (m) => printed.push(m) };
    const summary = new FailureSummary(Date.parse('2030-01-01T12:00:00Z'));
    const log = summarisingLogger(inner, summary);
    for (let i = 0; i < 70; i++) log.warn('job dead', { key: `wf-a:sub${i}:insert`, attempt: 1, code: 'webhook_rejected', retryable: false, reason: 'webhook answered 404' });
    log.info('job attempt failed; retry scheduled', { key: 'wf-b:s1:insert', attempt: 1, code: 'webhook_server_error', retryable: true });
    log.warn('job claim lost: another processor owns the job; result not recorded', { key: 'wf-a:x:insert' });
    expect(printed).toEqual(['job claim lost: another processor owns the job; result not recorded']);
    expect(summary.flush(Date.parse('2030-01-01T12:00:30Z'))).toEqual([
      '[jobs] 12:00:00–12:00:30 UTC workflow wf-a: 70 dead, 0 failed attempts to retry · webhook_rejected ×70 (webhook answered 404)',
      '[jobs] 12:00:00–12:00:30 UTC workflow wf-b: 0 dead, 1 failed attempts to retry · webhook_server_error ×1',
    ]);
    expect(summary.flush(Date.parse('2030-01-01T12:01:00Z'))).toEqual([]);
  });
});
