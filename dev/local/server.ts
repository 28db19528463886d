/**
 * `npm start`: the whole stack on one machine.
 *   MongoDB   MONGODB_URI, else a real mongod (mongodb-memory-server), else the offline emulator
 *   QStash    QSTASH_URL (+ token and keys), else the local QStash server from dev/qstash;
 *             `--in-process`: no QStash at all — relay runners and job runs in this process
 *   routes    every api/ file on http://localhost:$PORT with Vercel's Request/Response semantics
 *   crons     vercel.json schedules, fired with the cron bearer (`--tick-seconds N` for a faster local cadence)
 *   demo      by default when MONGODB_URI is not set (`--no-demo` to skip; `--demo` to force)
 *   settings  .local/settings.json (0600, git-ignored) for `npm run ops` in the same folder, removed at exit
 * Ctrl-C stops everything in order.
 */
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startMongoBackend } from './backend.js';
import { startQStashServer } from '../qstash/server.js';
import { serveWeb } from './runner/adapter.js';
import { startCrons, readVercelCrons } from './runner/cron.js';
import { accessLines, cronLines, FailureSummary, summarisingLogger } from './runner/console.js';
import { LOCAL_SETTINGS_FILE, removeLocalSettings, writeLocalSettings } from './runner/settings.js';
import { loadRoutes } from './runner/routes.js';
import { DEMO_ORG, seedDemo, startDemo, type Demo } from './runner/demo.js';
import { buildContext, getContext, provideContext, resetContext } from '../../lib/platform/context.js';
import { loadConfig } from '../../lib/platform/config.js';
import { jsonLogger, type Logger } from '../../lib/platform/log.js';
import { closeMongoClients, COLLECTIONS } from '../../lib/data/mongo.js';
import { singleFlightRuns } from '../../lib/jobs/kick.js';
import { inProcessRecoveries } from '../../lib/drain/recovery-run.js';
import { processJobsAndContinue } from '../../lib/fanout/continuation.js';
import { isContinuousStream, relayMode } from '../../lib/fanout/relay.js';
import { startRelayRunners } from '../../lib/fanout/runner.js';
import { listStreams, platformStreamOf } from '../../lib/streams/refs.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    demo: { type: 'boolean' },
    'no-demo': { type: 'boolean', default: false },
    'tick-seconds': { type: 'string' },
    'submit-every-ms': { type: 'string', default: '1000' },
    'in-process': { type: 'boolean', default: false },
  },
});

const env = process.env;
const say = (line: string) => process.stdout.write(`${line}\n`);
const fail = (message: string): never => {
  process.stderr.write(`${message}\n`);
  process.exit(2);
};

const port = Number(args.port ?? env.PORT ?? 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port/PORT must be 0..65535, got ${args.port ?? env.PORT}`);
const tickSeconds = args['tick-seconds'] === undefined ? undefined : Number(args['tick-seconds']);
if (tickSeconds !== undefined && (!Number.isInteger(tickSeconds) || tickSeconds < 1 || tickSeconds > 59)) fail('--tick-seconds must be an integer 1..59');
const submitEveryMs = Number(args['submit-every-ms']);
if (!Number.isFinite(submitEveryMs) || submitEveryMs < 10) fail('--submit-every-ms must be a number >= 10');
const demoWanted = args['no-demo'] ? false : (args.demo ?? !env.MONGODB_URI);

/** Shutdown steps by order: producers first (demo, crons, QStash), then HTTP, then MongoDB. */
const stops: { order: number; run: () => Promise<void> | void }[] = [];
const onStop = (order: number, run: () => Promise<void> | void) => stops.push({ order, run });
let stopping = false;
async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  say('\nstopping… (drains and job attempts in flight are cut short: their leases expire and the next run resumes from the saved token)');
  for (const { run: stop } of stops.sort((a, b) => a.order - b.order)) {
    try {
      await stop();
    } catch (error) {
      process.stderr.write(`shutdown step failed: ${(error as Error).message}\n`);
    }
  }
  say('stopped.');
  process.exit(code);
}
// npm forwards the terminal's SIGINT to this process as well, so one Ctrl-C can arrive twice:
// only a second Ctrl-C a moment later forces the exit.
let firstSignalAt = 0;
process.on('SIGINT', () => {
  if (stopping) {
    if (Date.now() - firstSignalAt > 1_000) process.exit(130);
    return;
  }
  firstSignalAt = Date.now();
  void shutdown(0);
});
process.on('SIGTERM', () => void shutdown(0));

// 1. HTTP first (503 until ready), so the port is known for PUBLIC_BASE_URL before any config is read.
let ready = false;
let demo: Demo | null = null;
const routes = await loadRoutes(join(root, 'api'));
const listening = serveWeb(
  async (request) => {
    const { pathname } = new URL(request.url);
    if (pathname === '/__dev/sink' && request.method === 'POST') {
      await request.arrayBuffer();
      demo?.hit();
      return new Response(null, { status: 204 });
    }
    if (!ready) return Response.json({ error: { code: 'starting', message: 'the local stack is starting' } }, { status: 503 });
    return routes.dispatch(request);
  },
  { port, host: env.HOST ?? '127.0.0.1', onError: (error) => process.stderr.write(`request failed: ${(error as Error).stack ?? String(error)}\n`) },
);
const web = await listening.catch((error: NodeJS.ErrnoException) =>
  fail(
    error.code === 'EADDRINUSE'
      ? `port ${port} is already in use (another npm start?): choose another with --port, e.g. npm start -- --port ${port + 1}, or PORT=${port + 1} npm start`
      : error.code === 'EACCES'
        ? `port ${port} needs privileges on this machine: choose another with --port (e.g. npm start -- --port 3000) or PORT`
        : `cannot listen on port ${port}: ${error.message}`,
  ),
);
onStop(5, () => web.close());
const base = `http://127.0.0.1:${web.port}`;

// 2. MongoDB.
const backend = await startMongoBackend({ log: (line) => say(line) }).catch((error: unknown) => fail(`no MongoDB backend: ${(error as Error).message}`));
onStop(7, () => backend.stop());
env.MONGODB_URI ??= backend.uri;
onStop(6, () => closeMongoClients());

// 3. Secrets: random local ones when unset (printed once, for this run only).
const generated: string[] = [];
for (const key of ['CRON_SECRET', 'ADMIN_TOKEN', 'WEBHOOK_SIGNING_SECRET'] as const) {
  if (!env[key]) {
    env[key] = randomBytes(18).toString('base64url');
    if (key !== 'WEBHOOK_SIGNING_SECRET') generated.push(key);
  }
}

// 4. QStash.
let qstashLine: string;
const inProcess = args['in-process'];
if (inProcess) {
  if (env.QSTASH_URL || env.QSTASH_TOKEN) fail('--in-process runs without QStash: unset QSTASH_URL and QSTASH_TOKEN');
  qstashLine = '[qstash] none (--in-process): relay runners and job runs in this process';
} else if (env.QSTASH_URL) {
  qstashLine = `[qstash] using QSTASH_URL=${new URL(env.QSTASH_URL).origin} (deliveries go to PUBLIC_BASE_URL=${env.PUBLIC_BASE_URL ?? base})`;
} else {
  const qstash = await startQStashServer({ port: 0, log: env.QSTASH_LOG ? (l) => say(`[qstash] ${l}`) : undefined });
  onStop(4, () => qstash.close());
  Object.assign(env, {
    QSTASH_URL: qstash.url,
    QSTASH_TOKEN: qstash.token,
    QSTASH_CURRENT_SIGNING_KEY: qstash.currentSigningKey,
    QSTASH_NEXT_SIGNING_KEY: qstash.nextSigningKey,
  });
  qstashLine = `[qstash] local QStash server (dev/qstash) at ${qstash.url}`;
}
env.PUBLIC_BASE_URL ??= base;

// 5. Demo settings: change streams on for the demo organization, quiet logs for a readable progress line.
if (demoWanted) {
  env.USE_CHANGE_STREAMS ??= 'true';
  if (!env.CHANGE_STREAMS_ALL_ORGS && !env.CHANGE_STREAMS_ORG_IDS) env.CHANGE_STREAMS_ORG_IDS = DEMO_ORG;
  env.TRIGGER_MODE ??= 'change_streams';
}
env.LOG_LEVEL ??= 'warn';
// Local receivers (the demo's, a developer's) listen on loopback, which the processor refuses by default.
env.WEBHOOK_ALLOW_HOSTS ??= '127.0.0.0/8,::1';

// The context is built here so that its logger goes quiet once shutdown starts: drains and job
// attempts still in flight are cut short on purpose, and their errors would only be noise.
resetContext();
const config = (() => {
  try {
    return loadConfig(env);
  } catch (error) {
    return fail(`configuration: ${(error as Error).message}`);
  }
})();
const failures = new FailureSummary(Date.now());
const baseLog = summarisingLogger(jsonLogger(config.LOG_LEVEL), failures);
const quietOnStop = Object.fromEntries(
  (['debug', 'info', 'warn', 'error'] as const).map((level) => [level, (msg: string, fields?: Record<string, unknown>) => (stopping ? undefined : baseLog[level](msg, fields))]),
) as unknown as Logger;
// Without QStash, a drain's job-processor kick runs the processor here (one run at a time).
const runJobsNow = inProcess
  ? singleFlightRuns(
      () => (stopping ? Promise.resolve() : processJobsAndContinue(ctx)),
      (error) => process.stderr.write(`[jobs] in-process run failed: ${(error as Error).message}\n`),
    )
  : undefined;
// Without QStash, a partition's recovery runs here too, in the background, beside its live stream.
const runRecoveryNow = inProcess
  ? inProcessRecoveries(
      () => getContext(),
      (error) => process.stderr.write(`[recovery] in-process run failed: ${(error as Error).message}\n`),
    )
  : undefined;
provideContext(await buildContext(config, { log: quietOnStop, ...(runJobsNow ? { runJobsNow } : {}), ...(runRecoveryNow ? { runRecoveryNow } : {}) }));
const ctx = await getContext();
ready = true;
const health = await routes.dispatch(new Request(`${base}/api/health`));
if (health.status !== 200) fail(`/api/health answered ${health.status}`);

say(qstashLine);
say(`[routes] ${routes.paths.join('  ')}`);
say(`[ready] http://localhost:${web.port}  (GET /api/health → 200)`);
for (const key of generated) say(`[secret] ${key}=${env[key]}   (generated for this run; set it in the environment to keep one)`);
// The CLI started in this folder reads what it lacks from here (see dev/local/runner/settings.ts).
const settingsFile = await writeLocalSettings(process.cwd(), env, base).then(
  () => LOCAL_SETTINGS_FILE,
  (error: unknown) => {
    process.stderr.write(`[ops] could not write ${LOCAL_SETTINGS_FILE}: ${(error as Error).message} (npm run ops then needs the variables in its environment)\n`);
    return null;
  },
);
if (settingsFile) onStop(0, () => removeLocalSettings(process.cwd()));
for (const line of accessLines({ port: web.port, adminToken: env.ADMIN_TOKEN!, tokenGenerated: generated.includes('ADMIN_TOKEN'), settingsFile })) say(line);

// 6. Crons.
const cronSpecs = await readVercelCrons(join(root, 'vercel.json'));
const crons = startCrons({
  baseUrl: base,
  cronSecret: env.CRON_SECRET!,
  crons: cronSpecs,
  ...(tickSeconds ? { tickSeconds } : {}),
  onResult: (path, result) => {
    if ('error' in result) process.stderr.write(`[cron] ${path} failed: ${(result.error as Error).message}\n`);
    else if (result.status >= 300) process.stderr.write(`[cron] ${path} → ${result.status}\n`);
  },
});
onStop(3, () => crons.stop());
for (const line of cronLines(cronSpecs, tickSeconds, new Date())) say(line);
// Job failures: one line per workflow per interval, instead of one JSON line per failed attempt.
const FAILURE_INTERVAL_MS = 30_000;
const failureTimer = setInterval(() => {
  const lines = failures.flush(Date.now());
  if (lines.length && !stopping) {
    if (process.stdout.isTTY) process.stdout.write('\r\x1b[2K');
    lines.forEach(say);
  }
}, FAILURE_INTERVAL_MS);
onStop(1, () => clearInterval(failureTimer));

// 6b. The continuous relay without QStash: one in-process runner per relayed stream (the partitions).
if (inProcess && relayMode(config) === 'continuous') {
  const relayed = (await listStreams(ctx)).filter(isContinuousStream);
  const runners = startRelayRunners(ctx, relayed);
  onStop(2.5, () => runners.stop().then(() => undefined));
  say(`[relay] in-process: ${relayed.map((s) => s.id).join(', ') || 'no relayed stream'}`);
} else {
  say(`[relay] ${relayMode(config)}${relayMode(config) === 'continuous' ? ' through QStash (the cron is the watchdog)' : ' (cron ticks)'}`);
}

// 7. Demo.
if (demoWanted) {
  await seedDemo(ctx.db, `${base}/__dev/sink`, new Date(ctx.clock.now()));
  demo = startDemo(ctx.db, { intervalMs: submitEveryMs, now: () => ctx.clock.now(), streamId: platformStreamOf(ctx.config, DEMO_ORG).id, onError: (e) => process.stderr.write(`[demo] insert failed: ${(e as Error).message}\n`) });
  const d = demo;
  onStop(2, () => d.stop());
  say(`[demo] organization "${DEMO_ORG}": one workflow posting to ${base}/__dev/sink, a submission every ${submitEveryMs} ms`);
  // A first fan-out now and a first job run as soon as jobs exist, so progress shows before the first scheduled minute.
  void (async () => {
    await crons.fire('/api/cron/fanout');
    while (!stopping && (await ctx.db.collection(COLLECTIONS.jobs).countDocuments({ organizationId: DEMO_ORG }, { limit: 1 })) === 0) {
      await ctx.clock.sleep(500);
    }
    if (!stopping) await crons.fire('/api/jobs/process');
  })().catch(() => undefined);
  const tty = process.stdout.isTTY;
  let last = 0;
  const progress = setInterval(() => {
    void d.progress(ctx.clock.now()).then((line) => {
      if (stopping) return;
      if (tty) process.stdout.write(`\r\x1b[2K${line}`);
      else if (Date.now() - last >= 10_000) {
        last = Date.now();
        say(line);
      }
    }, () => undefined);
  }, 1_000);
  onStop(1, () => clearInterval(progress));
} else {
  say('[demo] off');
}
