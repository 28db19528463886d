/**
 * Operator CLI over the same lib functions the routes use. Reads the same environment (MONGODB_URI …);
 * what the environment lacks it takes from `.local/settings.json` in the current folder, which a
 * running `npm start` leaves there, so right after `npm start` the CLI acts on the local stack.
 *
 *   npm run ops -- status [--json]
 *   npm run ops -- drain <orgId | streamId> | drain --all
 *   npm run ops -- reconcile <orgId | streamId> --since <ISO time>
 *   npm run ops -- redispatch <orgId> <submissionId>
 *   npm run ops -- retry-dead (--ids k1,k2 | [--org O] [--workflow W] [--from ISO] [--to ISO] | --all)
                             [--use-current-workflow] [--redeliver] [--dry-run]
 *   npm run ops -- pause <streamId> | resume <streamId>
 *   npm run ops -- restart <streamId> (--at <ISO time> | --now)
 *   npm run ops -- enable-post-images (--org <orgId> | --all)
 *   npm run ops -- fanout          (one cron tick now)
 */
import { parseArgs } from 'node:util';
import { redact } from '../lib/platform/redact.js';
import { stringifyJson } from '../lib/data/bson-json.js';
import { z } from 'zod';
import { applyLocalSettings, type LoadedSettings } from '../dev/local/runner/settings.js';
import { Deadline } from '../lib/platform/clock.js';
import { getContext } from '../lib/platform/context.js';
import { ConfigError } from '../lib/platform/config.js';
import { AppError } from '../lib/platform/errors.js';
import { drainAll } from '../lib/fanout/drains.js';
import { drainOne } from '../lib/drain/one.js';
import { fanOut } from '../lib/fanout/tick.js';
import { parseJsonText } from '../lib/http/body.js';
import { RequeueRequestSchema, requeueDeadJobs } from '../lib/jobs/requeue.js';
import { maxWindowMs } from '../lib/platform/limits.js';
import { closeMongoClients } from '../lib/data/mongo.js';
import type { DrainSummary } from '../lib/data/documents.js';
import { LIST_STREAMS_HINT, setStreamPaused } from '../lib/streams/pause.js';
import { reconcileSince } from '../lib/drain/reconcile.js';
import { readStatus, type StatusReport } from '../lib/status/report.js';
import { clockTime, duration } from '../lib/status/format.js';
import { streamQuery, type StreamQuery } from '../lib/status/streams.js';
import { resolveStream } from '../lib/streams/refs.js';
import { relayMode, startChain } from '../lib/fanout/relay.js';
import { redispatchSubmission } from '../lib/dispatch/explicit.js';
import { restartStream } from '../lib/drain/restart.js';
import { enablePostImages } from '../lib/drain/images.js';

const USAGE = `usage: npm run ops -- <command>
  status [--json] [--org PREFIX]          streams (most lagging first), jobs, dead letters, dual-run
  drain <orgId|streamId> | drain --all    drain now, in this process
  reconcile <orgId|streamId> --since ISO  scan the source since a time and dispatch what is missing
        [--include-later-workflows]      (also apply workflows created after a submission was saved)
  redispatch <orgId> <submissionId>       dispatch one submission again (no duplicates)
  retry-dead --ids k1,k2 | [--org O] [--workflow W] [--from ISO] [--to ISO] | --all
             [--use-current-workflow] [--redeliver] [--dry-run]
                                          requeue dead jobs (with the workflow's current steps;
                                          --redeliver: succeeded ones too, delivered again)
  pause <streamId> | resume <streamId>    stop / restart draining one stream
  restart <streamId> --at ISO | --now     drop the token, open the stream at that time, scan the skipped window
  enable-post-images --org O | --all      keep post-images on submission collections (update triggers judge the state as of each update)
  fanout                                  run one fan-out tick now
Settings: the environment, else .local/settings.json written by a running \`npm start\` in this folder.`;

const COMMANDS = ['status', 'drain', 'reconcile', 'redispatch', 'retry-dead', 'pause', 'resume', 'restart', 'enable-post-images', 'fanout'];

const OPTIONS = {
  json: { type: 'boolean', default: false },
  'include-later-workflows': { type: 'boolean', default: false },
  all: { type: 'boolean', default: false },
  since: { type: 'string' },
  ids: { type: 'string' },
  org: { type: 'string' },
  workflow: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  'dry-run': { type: 'boolean', default: false },
  'use-current-workflow': { type: 'boolean', default: false },
  redeliver: { type: 'boolean', default: false },
  at: { type: 'string' },
  now: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** The options each command takes (`--help` goes with any). */
const COMMAND_OPTIONS: Record<string, readonly (keyof typeof OPTIONS)[]> = {
  status: ['json', 'org'],
  drain: ['all'],
  reconcile: ['since', 'include-later-workflows'],
  redispatch: [],
  'retry-dead': ['ids', 'org', 'workflow', 'from', 'to', 'all', 'use-current-workflow', 'redeliver', 'dry-run'],
  pause: [],
  resume: [],
  restart: ['at', 'now'],
  'enable-post-images': ['org', 'all'],
  fanout: [],
};

/** A mistake in the command line: printed with the usage, exit code 2, never a stack trace. */
class UsageError extends Error {}

function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (error) {
    // node:util parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown options and missing values.
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message);
  }
}

const isoTime = z.iso.datetime({ offset: true });
function time(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!isoTime.safeParse(value).success) throw new UsageError(`${name} must be an ISO time with a zone (e.g. 2030-01-31T12:00:00Z), got "${value}"`);
  return value;
}

let opt: ReturnType<typeof parseCommandLine>['values'];
let positionals: string[];
let settings: LoadedSettings | null = null;

const out = (line = '') => process.stdout.write(`${line}\n`);
const target = (arg: string) => (arg.includes(':') ? { streamId: arg } : { orgId: arg });

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function printRun(run: DrainSummary): void {
  out(`${run.streamId}: ${run.status} (stopped by ${run.stoppedBy}) · ${run.events} events · ${run.jobsCreated} jobs created · ${run.duplicates} duplicates · ${run.deadLettered} dead-lettered · ${duration(run.durationMs)}${run.busy ? ' · busy' : ''}`);
  if (run.error) out(`  error ${run.error.code}: ${run.error.message}`);
}

function printStatus(r: StatusReport, q: string, layout: string): void {
  out(`status at ${r.generatedAt.toISOString()} · fan-out ${r.rollout.qstash ? 'QStash' : 'in-process'} · last tick ${clockTime(r.fanout.lastAt)}`);
  out();
  // The dashboard's order and search (read by the query): failing first, then most lagging; --org narrows it.
  const shown = { rows: r.streams, matched: r.streamsPage.matched };
  if (r.totals.streams === 0) out('no streams (USE_CHANGE_STREAMS off, or no organization allowed with an active workflow)');
  else if (shown.matched === 0) {
    out(`no stream matches "${q}"`);
    // Partition streams carry no organization id: which partition serves an organization is in the streams view.
    if (layout === 'database') {
      out(`(in the database layout organizations are served by partition streams; GET /api/status?view=streams&org=${encodeURIComponent(q)} shows which partition serves "${q}")`);
    }
  }
  else {
    out(table([
      ['STREAM', 'STATE', 'LAG', 'TOKEN AGE', 'LAST RUN', 'FAILS', 'GAPS', 'RECONCILES', 'DLQ'],
      ...shown.rows.map((s) => [
        s.id + (s.listed ? '' : ' (unlisted)'),
        s.state,
        duration(s.lagMs),
        duration(s.tokenAgeMs),
        s.lastRun ? `${s.lastRun.status}/${s.lastRun.stoppedBy} ${s.lastRun.events}ev ${clockTime(s.lastRun.startedAt)}` : 'never',
        String(s.consecutiveFailures),
        String(s.gaps.count),
        String(s.reconciles.count),
        String(s.deadLetters),
      ]),
    ]));
    if (shown.matched > shown.rows.length) out(`… ${shown.matched - shown.rows.length} more streams (failing and most lagging are listed first; narrow with --org <organization id prefix>)`);
  }
  out(`streams: ${r.totals.streams} · ${Object.entries(r.totals.byState).filter(([, n]) => n > 0).map(([st, n]) => `${n} ${st}`).join(' · ')} · max lag ${duration(r.totals.maxLagMs)}${r.totals.neverDrained ? ` · ${r.totals.neverDrained} never drained` : ''}${r.totals.unlisted ? ` · ${r.totals.unlisted} unlisted` : ''}`);
  const j = r.jobs.byStatus;
  const v = r.jobsView;
  const e2e = r.jobs.metrics.recent.latencyMs;
  out();
  out(`jobs: waiting for a first attempt ${v.queued.waitingFirstAttempt} · retrying ${v.queued.retrying} · running ${j.running} · succeeded ${j.succeeded} · failed ${j.failed} · dead ${j.dead} · oldest queued ${duration(r.jobs.oldestQueuedAgeMs)}`);
  for (const g of v.dead) out(`  dead: ${g.jobs} × workflow ${g.workflowId}${g.workflowName ? ` (${g.workflowName})` : ''} · ${g.code}${g.message ? `: ${g.message}` : ''}`);
  out(`insert→delivered (jobs succeeded in the last hour): p50 ${duration(e2e.p50)} · p99 ${duration(e2e.p99)}`);
  out(`dead letters: ${r.deadLetters.events} events · ${r.deadLetters.jobs} jobs · gaps (history lost) ${r.totals.gaps} · reconciles ${r.totals.reconciles}`);
  out(`throughput: ${r.throughput.eventsPerSec} events/s (5 min) · insert→job latency avg ${duration(r.throughput.latencyMsAvg)} max ${duration(r.throughput.latencyMsMax)}`);
  if (r.dualRun.organizations) out(`dual-run (${r.dualRun.organizations} organizations, 24 h): both ${r.dualRun.total.both} · explicit only ${r.dualRun.total.explicitOnly} · change stream only ${r.dualRun.total.changeStreamOnly} · other ${r.dualRun.total.other}`);
  for (const o of r.dualRun.orgs) out(`dual-run ${o.orgId}: both ${o.both} · explicit only ${o.explicitOnly} · change stream only ${o.changeStreamOnly} · other ${o.other}`);
}

async function main(): Promise<number> {
  ({ values: opt, positionals } = parseCommandLine(process.argv.slice(2)));
  const [command, ...rest] = positionals;
  if (opt.help || !command) {
    out(USAGE);
    return command || opt.help ? 0 : 2;
  }
  if (!COMMANDS.includes(command)) throw new UsageError(`unknown command "${command}"`);
  // One option table parses every command; an option of another command (say `--dry-run` on
  // reconcile) would otherwise be accepted and ignored, and the command would really run.
  const given = (Object.keys(opt) as (keyof typeof OPTIONS)[]).filter((name) => name !== 'help' && process.argv.slice(2).some((a) => a === `--${name}` || a.startsWith(`--${name}=`)));
  const foreign = given.filter((name) => !COMMAND_OPTIONS[command]!.includes(name));
  if (foreign.length) throw new UsageError(`${command} does not take ${foreign.map((n) => `--${n}`).join(', ')}${COMMAND_OPTIONS[command]!.length ? ` (its options: ${COMMAND_OPTIONS[command]!.map((n) => `--${n}`).join(', ')})` : ' (it takes no option)'}`);
  // Check the arguments before connecting to anything.
  const since = time('--since', opt.since);
  const from = time('--from', opt.from);
  const to = time('--to', opt.to);
  let statusQuery: StreamQuery | null = null;
  if (command === 'status') {
    try {
      statusQuery = streamQuery({ name: '--org', q: opt.org ?? '' });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  settings = applyLocalSettings(process.cwd());
  if (settings.status === 'stale') err(`note: ${settings.file} was left by an npm start (pid ${settings.pid}) that is no longer running; not used`);
  if (settings.status === 'invalid') err(`note: ${settings.file} is not readable (${settings.problem}); not used`);
  const ctx = await getContext();
  switch (command) {
    case 'status': {
      const report = await readStatus(ctx, statusQuery!);
      if (opt.json) out(stringifyJson(report, 2));
      else printStatus(report, opt.org ?? '', ctx.config.STREAM_LAYOUT);
      return 0;
    }
    case 'drain': {
      if (opt.all) {
        const { runs, notReached } = await drainAll(ctx, maxWindowMs('operator'), 'manual');
        runs.forEach(printRun);
        if (notReached.length) out(`not reached in the window: ${notReached.join(', ')}`);
        return 0;
      }
      if (!rest[0]) throw new UsageError('drain needs an orgId or streamId, or --all');
      const { run } = await drainOne(ctx, target(rest[0]), 'manual');
      printRun(run);
      return run.status === 'failed' ? 1 : 0;
    }
    case 'reconcile': {
      if (!rest[0] || !since) throw new UsageError('reconcile needs <orgId|streamId> --since <ISO time>');
      const stream = await resolveStream(ctx, target(rest[0]));
      const r = await reconcileSince(ctx, stream, new Date(since), Deadline.after(ctx.clock, maxWindowMs('operator')), 'manual', {
        includeLaterWorkflows: opt['include-later-workflows'],
      });
      out(`${r.streamId}: scanned ${r.scanned} documents from ${r.from.toISOString()} to ${r.to.toISOString()} · ${r.jobsCreated} jobs created · ${r.duplicates} already there${r.complete ? '' : ' · NOT complete (window ended; run again)'}`);
      return 0;
    }
    case 'redispatch': {
      if (!rest[0] || !rest[1]) throw new UsageError('redispatch needs <orgId> <submissionId>');
      out(stringifyJson(await redispatchSubmission(ctx, rest[0], rest[1])));
      return 0;
    }
    case 'retry-dead': {
      const filter = { organizationId: opt.org, workflowId: opt.workflow, from, to };
      const flags = {
        dryRun: opt['dry-run'],
        ...(opt['use-current-workflow'] ? { useCurrentWorkflow: true } : {}),
        ...(opt.redeliver ? { redeliver: true } : {}),
      };
      const request = opt.ids
        ? { ids: opt.ids.split(',').map((s) => s.trim()).filter(Boolean), ...flags }
        : { filter: JSON.parse(JSON.stringify(filter)) as typeof filter, ...(opt.all ? { all: true } : {}), ...flags };
      let body: z.output<typeof RequeueRequestSchema>;
      try {
        body = parseJsonText(JSON.stringify(request), RequeueRequestSchema);
      } catch (error) {
        throw new UsageError(`retry-dead: ${(error as Error).message}`);
      }
      const r = await requeueDeadJobs(ctx, body);
      const what = r.redelivered ? `jobs (${r.redelivered} succeeded, delivered again)` : 'dead jobs';
      out(`${r.dryRun ? 'dry run: would requeue' : 'requeued'} ${r.dryRun ? r.matched : r.requeued} of ${r.matched} ${what}${r.sample.length ? `; e.g. ${r.sample.slice(0, 5).join(', ')}` : ''}`);
      for (const c of r.changes ?? []) out(`  workflow ${c.workflowId}: ${c.jobs} jobs take the current steps: ${c.from.join(' → ') || '(none)'}  ⇒  ${c.to.join(' → ') || '(none)'}`);
      if (r.unchanged) out(`  ${r.unchanged} jobs already have the workflow's current steps`);
      for (const n of (r.notRequeued ?? []).slice(0, 10)) out(`  not requeued: ${n.id} (${n.status}): ${n.reason}`);
      if (r.message) out(r.message);
      return 0;
    }
    case 'pause':
    case 'resume': {
      if (!rest[0]) throw new UsageError(`${command} needs a streamId (e.g. org:acme); ${LIST_STREAMS_HINT}`);
      const r = await setStreamPaused(ctx, target(rest[0]), command === 'pause');
      out(`${r.streamId} ${r.paused ? 'paused' : 'resumed'}`);
      const stream = await resolveStream(ctx, { streamId: r.streamId });
      if (!rest[0].includes(':') && stream.kind === 'partition') {
        out(`  ${r.streamId} serves every organization whose collection hashes to it, not only ${rest[0]}: all of them are ${r.paused ? 'paused' : 'resumed'}`);
      }
      if (!r.paused && stream.kind === 'partition' && relayMode(ctx.config) === 'continuous' && ctx.publisher) {
        // A paused partition's chain ended; start a new one now instead of waiting for the watchdog minute.
        const chain = await startChain(ctx, stream);
        out(chain.published ? `  relay chain started again (generation ${chain.generation})` : `  the relay chain was not started here (${chain.error ?? 'not published'}); the minute watchdog starts it`);
      }
      return 0;
    }
    case 'restart': {
      if (!rest[0] || (!opt.at && !opt.now) || (opt.at && opt.now)) throw new UsageError('restart needs <streamId> and one of --at <ISO time> or --now');
      let at: Date | 'now' = 'now';
      if (opt.at) at = new Date(time('--at', opt.at)!);
      const r = await restartStream(ctx, rest[0], at);
      out(`${r.streamId} restarted at ${r.at.toISOString()}; the next drain scans ${r.scan.from.toISOString()} → ${r.scan.to.toISOString()} and records it as a gap (restart)`);
      return 0;
    }
    case 'enable-post-images': {
      if (!opt.org === !opt.all) throw new UsageError('enable-post-images needs one of --org <orgId> or --all');
      const changed = await enablePostImages(ctx, opt.org ? { orgId: opt.org } : { all: true });
      out(`changeStreamPreAndPostImages enabled on ${changed.length} collections${changed.length ? `: ${changed.join(', ')}` : ''}`);
      return 0;
    }
    case 'fanout': {
      const s = await fanOut(ctx);
      out(`tick ${s.tick} (${s.mode}): ${s.streams} streams · ${s.published.length} published · ${s.runs.length} drained here · ${s.leased.length} already draining · ${s.paused.length} paused · ${s.deferred.length} deferred by MAX_CONCURRENT_DRAINS`);
      s.runs.forEach(printRun);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** The usage lines of one command (and a pointer to the rest), or the whole usage. */
function usageFor(command: string | undefined): string {
  if (!command) return USAGE;
  const lines = USAGE.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`  ${command}`) || (command === 'resume' && l.startsWith('  pause')));
  const own = [lines[start]!];
  for (const l of lines.slice(start + 1)) if (/^ {3,}/.test(l)) own.push(l); else break;
  return `usage: npm run ops -- ${own.map((l) => l.trim()).join('\n         ')}\n(npm run ops -- --help lists every command)`;
}

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

let code = 1;
try {
  code = await main();
} catch (error) {
  code = 1;
  if (error instanceof UsageError) {
    err(`${redact(error.message)}\n${usageFor(process.argv.slice(2).find((a) => COMMANDS.includes(a)))}`);
    code = 2;
  } else if (error instanceof ConfigError) {
    err(`configuration problems:\n${(error.problems.length ? error.problems : [error.message]).map((p) => `  - ${p}`).join('\n')}`);
    const loaded = settings as LoadedSettings | null; // assigned inside main()
    if (loaded?.status === 'none') err(`(no ${loaded.file}: start the local stack with \`npm start\` in this folder, or set the variables in the environment)`);
    code = 2;
  } else if (error instanceof AppError) err(`${error.code}: ${redact(error.message)}`);
  else err(redact((error as Error).message));
} finally {
  await closeMongoClients();
}
process.exit(code);
