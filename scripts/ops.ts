/**
 * Operator CLI over the same lib functions the routes use. Reads the same environment (MONGODB_URI …).
 *
 *   npm run ops -- status [--json]
 *   npm run ops -- drain <orgId | streamId> | drain --all
 *   npm run ops -- reconcile <orgId | streamId> --since <ISO time>
 *   npm run ops -- redispatch <orgId> <submissionId>
 *   npm run ops -- retry-dead (--ids k1,k2 | [--org O] [--workflow W] [--from ISO] [--to ISO] | --all) [--dry-run]
 *   npm run ops -- pause <streamId> | resume <streamId>
 *   npm run ops -- restart <streamId> (--at <ISO time> | --now)
 *   npm run ops -- enable-post-images (--org <orgId> | --all)
 *   npm run ops -- fanout          (one cron tick now)
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { CheckpointStore } from '../lib/streams/checkpoint.js';
import { Deadline } from '../lib/platform/clock.js';
import { getContext } from '../lib/platform/context.js';
import { AppError } from '../lib/platform/errors.js';
import { drainAll } from '../lib/fanout/drains.js';
import { drainOne } from '../lib/drain/one.js';
import { fanOut } from '../lib/fanout/tick.js';
import { parseJsonText } from '../lib/http/body.js';
import { requeueDeadJobs } from '../lib/jobs/requeue.js';
import { maxWindowMs } from '../lib/platform/limits.js';
import { closeMongoClients } from '../lib/data/mongo.js';
import type { DrainSummary } from '../lib/data/documents.js';
import { reconcileSince } from '../lib/drain/reconcile.js';
import { readStatus, type StatusReport } from '../lib/status/report.js';
import { clockTime, duration } from '../lib/status/format.js';
import { resolveStream } from '../lib/streams/refs.js';
import { redispatchSubmission } from '../lib/dispatch/explicit.js';
import { restartStream } from '../lib/drain/restart.js';
import { enablePostImages } from '../lib/drain/images.js';
import { RetryBody } from '../api/jobs/retry.js';

const USAGE = `usage: npm run ops -- <command>
  status [--json]                         streams, jobs, dead letters, dual-run agreement
  drain <orgId|streamId> | drain --all    drain now, in this process
  reconcile <orgId|streamId> --since ISO  scan the source since a time and dispatch what is missing
        [--include-later-workflows]      (also apply workflows created after a submission was saved)
  redispatch <orgId> <submissionId>       dispatch one submission again (no duplicates)
  retry-dead --ids k1,k2 | [--org O] [--workflow W] [--from ISO] [--to ISO] | --all   [--dry-run]
  pause <streamId> | resume <streamId>    stop / restart draining one stream
  restart <streamId> --at ISO | --now     drop the token, open the stream at that time, scan the skipped window
  enable-post-images --org O | --all      keep post-images on submission collections (update triggers judge the state as of each update)
  fanout                                  run one fan-out tick now`;

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
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
    at: { type: 'string' },
    now: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

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

function printStatus(r: StatusReport): void {
  out(`status at ${r.generatedAt.toISOString()} · fan-out ${r.rollout.qstash ? 'QStash' : 'in-process'} · last tick ${clockTime(r.fanout.lastAt)}`);
  out();
  if (r.streams.length === 0) out('no streams (USE_CHANGE_STREAMS off, or no organization allowed with an active workflow)');
  else {
    out(table([
      ['STREAM', 'STATE', 'LAG', 'TOKEN AGE', 'LAST RUN', 'FAILS', 'GAPS', 'DLQ'],
      ...r.streams.map((s) => [
        s.id + (s.listed ? '' : ' (unlisted)'),
        s.state,
        duration(s.lagMs),
        duration(s.tokenAgeMs),
        s.lastRun ? `${s.lastRun.status}/${s.lastRun.stoppedBy} ${s.lastRun.events}ev ${clockTime(s.lastRun.startedAt)}` : 'never',
        String(s.consecutiveFailures),
        String(s.gaps.count),
        String(s.deadLetters),
      ]),
    ]));
  }
  const j = r.jobs.byStatus;
  out();
  out(`jobs: queued ${j.queued} · running ${j.running} · succeeded ${j.succeeded} · failed ${j.failed} · dead ${j.dead} · oldest queued ${duration(r.jobs.oldestQueuedAgeMs)}`);
  out(`dead letters: ${r.deadLetters.events} events · ${r.deadLetters.jobs} jobs`);
  out(`throughput: ${r.throughput.eventsPerSec} events/s (5 min) · insert→job latency avg ${duration(r.throughput.latencyMsAvg)} max ${duration(r.throughput.latencyMsMax)}`);
  for (const o of r.dualRun.orgs) out(`dual-run ${o.orgId}: both ${o.both} · explicit only ${o.explicitOnly} · change stream only ${o.changeStreamOnly} · other ${o.other}`);
}

async function main(): Promise<number> {
  const [command, ...rest] = positionals;
  if (opt.help || !command) {
    out(USAGE);
    return command || opt.help ? 0 : 2;
  }
  const ctx = await getContext();
  switch (command) {
    case 'status': {
      const report = await readStatus(ctx);
      if (opt.json) out(JSON.stringify(report, null, 2));
      else printStatus(report);
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
      if (!rest[0] || !opt.since) throw new UsageError('reconcile needs <orgId|streamId> --since <ISO time>');
      const since = z.iso.datetime({ offset: true }).safeParse(opt.since);
      if (!since.success) throw new UsageError(`--since must be an ISO time with a zone, got "${opt.since}"`);
      const stream = await resolveStream(ctx, target(rest[0]));
      const r = await reconcileSince(ctx, stream, new Date(since.data), Deadline.after(ctx.clock, maxWindowMs('operator')), 'manual', {
        includeLaterWorkflows: opt['include-later-workflows'],
      });
      out(`${r.streamId}: scanned ${r.scanned} documents from ${r.from.toISOString()} to ${r.to.toISOString()} · ${r.jobsCreated} jobs created · ${r.duplicates} already there${r.complete ? '' : ' · NOT complete (window ended; run again)'}`);
      return 0;
    }
    case 'redispatch': {
      if (!rest[0] || !rest[1]) throw new UsageError('redispatch needs <orgId> <submissionId>');
      out(JSON.stringify(await redispatchSubmission(ctx, rest[0], rest[1])));
      return 0;
    }
    case 'retry-dead': {
      const filter = { organizationId: opt.org, workflowId: opt.workflow, from: opt.from, to: opt.to };
      const request = opt.ids
        ? { ids: opt.ids.split(',').map((s) => s.trim()).filter(Boolean), dryRun: opt['dry-run'] }
        : { filter: JSON.parse(JSON.stringify(filter)) as typeof filter, ...(opt.all ? { all: true } : {}), dryRun: opt['dry-run'] };
      const body = parseJsonText(JSON.stringify(request), RetryBody);
      const r = await requeueDeadJobs(ctx, body);
      out(`${r.dryRun ? 'dry run: would requeue' : 'requeued'} ${r.dryRun ? r.matched : r.requeued} of ${r.matched} dead jobs${r.sample.length ? `; e.g. ${r.sample.slice(0, 5).join(', ')}` : ''}`);
      return 0;
    }
    case 'pause':
    case 'resume': {
      if (!rest[0]) throw new UsageError(`${command} needs a streamId (e.g. org:acme)`);
      await new CheckpointStore(ctx.db).setPaused(rest[0], command === 'pause', new Date(ctx.clock.now()));
      out(`${rest[0]} ${command === 'pause' ? 'paused' : 'resumed'}`);
      return 0;
    }
    case 'restart': {
      if (!rest[0] || (!opt.at && !opt.now) || (opt.at && opt.now)) throw new UsageError('restart needs <streamId> and one of --at <ISO time> or --now');
      let at: Date | 'now' = 'now';
      if (opt.at) {
        const parsed = z.iso.datetime({ offset: true }).safeParse(opt.at);
        if (!parsed.success) throw new UsageError(`--at must be an ISO time with a zone, got "${opt.at}"`);
        at = new Date(parsed.data);
      }
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

class UsageError extends Error {}

let code = 1;
try {
  code = await main();
} catch (error) {
  if (error instanceof UsageError) process.stderr.write(`${error.message}\n\n${USAGE}\n`);
  else if (error instanceof AppError) process.stderr.write(`${error.code}: ${error.message}\n`);
  else process.stderr.write(`${(error as Error).message}\n`);
  code = error instanceof UsageError ? 2 : 1;
} finally {
  await closeMongoClients();
}
process.exit(code);
