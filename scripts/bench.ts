/**
 * `npm run bench` — the performance figures of the product, side by side in one run, on the MongoDB
 * backend the tests would use (MONGODB_URI → real mongod → the project's emulator). Prints a table
 * and writes the same figures to bench-results/latest.json, with the backend and the machine.
 *
 *   npm run bench                       # full run (~2-4 minutes on 2 cores)
 *   npm run bench -- --quick            # smaller sizes, for a smoke check
 *   npm run bench -- --out path.json    # write elsewhere
 *   npm run bench -- --only processor,sustained   # some sections only (drain, latency, backlog,
 *                                                 # processor, sustained, scale)
 *   npm run bench -- --only scale       # the scale section alone (both stream layouts, many
 *                                       # organizations, ~12 minutes): bench-results/scale.json,
 *                                       # or bench-results/scale-quick.json with --quick
 *   npm run bench -- --only scale --orgs 10000 --layouts database --partitions 1
 *                                       # some rows of the scale section only (written to
 *                                       # bench-results/scale-rows.json)
 * The scale section writes its own record (bench-results/scale.json or scale-quick.json).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { MongoClient } from 'mongodb';
import { startBackend, machineInfo, describeBackend, describeMachine, type BackendInfo } from './bench/backend.js';
import { runThroughput } from './bench/throughput.js';
import { runLatency } from './bench/latency.js';
import { BACKLOG_ENV, runBacklog } from './bench/backlog.js';
import { runProcessor } from './bench/processor.js';
import { runSustained } from './bench/sustained.js';
import { percentile, round } from './bench/measure.js';
import { renderTable, type Cell } from './bench/table.js';
import { evaluateTargets, type TargetRow } from './bench/targets.js';
import { runScale, scaleTargets, type ScaleOptions } from './bench/scale.js';

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    only: { type: 'string' },
    orgs: { type: 'string' },
    layouts: { type: 'string' },
    partitions: { type: 'string' },
  },
});
const SECTIONS = ['drain', 'latency', 'backlog', 'processor', 'sustained', 'scale'] as const;
type Section = (typeof SECTIONS)[number];
const only = opt.only ? opt.only.split(',').map((s) => s.trim()) : [...SECTIONS];
const unknown = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
if (unknown.length) {
  process.stderr.write(`unknown section(s) ${unknown.join(', ')}: choose from ${SECTIONS.join(', ')}\n`);
  process.exit(2);
}
const runs = (section: Section) => only.includes(section);

// A smoke run never replaces the figures of the last full run.
const OUT = opt.out ?? (opt.quick || opt.only ? 'bench-results/quick.json' : 'bench-results/latest.json');
const scaleRows = Boolean(opt.orgs || opt.layouts || opt.partitions);
const SCALE_OUT = scaleRows ? 'bench-results/scale-rows.json' : opt.quick ? 'bench-results/scale-quick.json' : 'bench-results/scale.json';
/**
 * Scale section sizes. The collection layout's cron is simulated every SCALE.tickMs (real: 60 s);
 * --quick: 1,000 organizations only and a shorter, slower traffic period.
 */
const SCALE: Omit<ScaleOptions, 'uri' | 'client' | 'appClient' | 'dbPrefix' | 'log'> = opt.quick
  ? { orgCounts: [1_000], partitions: [1], ratePerSec: 20, trafficMs: 20_000, tickMs: 5_000, settleTicks: 4, settleMs: 15_000 }
  : { orgCounts: [1_000, 10_000], partitions: [1, 2], ratePerSec: 50, trafficMs: 60_000, tickMs: 8_000, settleTicks: 8, settleMs: 30_000 };
/** `--orgs`, `--layouts`, `--partitions`: comma lists narrowing the scale section to some rows. */
function listOption(name: string, value: string | undefined, parse: (v: string) => unknown, allowed: (v: unknown) => boolean): unknown[] | null {
  if (!value) return null;
  const items = value.split(',').map((v) => parse(v.trim()));
  const bad = items.filter((v) => !allowed(v));
  if (bad.length || items.length === 0) {
    process.stderr.write(`--${name} ${value}: expected a comma list (${name === 'layouts' ? 'collection, database' : 'positive integers'})\n`);
    process.exit(2);
  }
  return items;
}
const positive = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const orgCounts = listOption('orgs', opt.orgs, Number, positive);
const partitionCounts = listOption('partitions', opt.partitions, Number, positive);
const layoutList = listOption('layouts', opt.layouts, String, (v) => v === 'collection' || v === 'database');
if (orgCounts) SCALE.orgCounts = orgCounts as number[];
if (partitionCounts) SCALE.partitions = partitionCounts as number[];
if (layoutList) SCALE.layouts = layoutList as ('collection' | 'database')[];
const SIZES = opt.quick
  ? { events: 2_000, rounds: 1, explicit: 300, rate: 200, latencyMs: 2_000, backlog: 10_000, windowMs: 3_000, jobs: 300, sustainedRate: 1_000, sustainedMs: 3_000 }
  : { events: 10_000, rounds: 3, explicit: 2_000, rate: 200, latencyMs: 5_000, backlog: 100_000, windowMs: 5_000, jobs: 2_000, sustainedRate: 1_000, sustainedMs: 10_000 };
const PARALLELISM = 4;
const CONCURRENCY = 8;

const log = (line: string) => process.stderr.write(`${line}\n`);
const started = performance.now();
const machine = machineInfo();
const backend = await startBackend(log);
log(`[bench] backend: ${describeBackend(backend)}`);
log(`[bench] machine: ${describeMachine(machine)}`);

const dbName = `bench_${randomBytes(3).toString('hex')}`;
// The product's code runs on a monitored client (round trips are counted from its events); the
// "application" that saves submissions has its own client, as it would in production.
const client = new MongoClient(backend.uri, { monitorCommands: true, maxPoolSize: 10, serverSelectionTimeoutMS: 10_000 });
const appClient = new MongoClient(backend.uri, { maxPoolSize: 10, serverSelectionTimeoutMS: 10_000 });
let exitCode = 0;
try {
  await client.connect();
  await appClient.connect();
  const db = client.db(dbName);

  const onlyScale = only.length === 1 && runs('scale');
  if (!onlyScale) {
    log('[bench] backend round trip (ping)');
    const pings: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      await db.command({ ping: 1 });
      pings.push(performance.now() - t0);
    }
    pings.sort((a, b) => a - b);
    const pingP50Ms = round(percentile(pings, 50), 3);

    if (runs('drain')) log(`[bench] 1+2. drain vs bare read, change stream vs explicit (${SIZES.rounds} × ${SIZES.events} events)`);
    const throughput = !runs('drain') ? null : await runThroughput({ uri: backend.uri, client, db, events: SIZES.events, rounds: SIZES.rounds, explicitEvents: SIZES.explicit, explicitConcurrency: 16, backendCpuMs: backend.cpuMs, log });

    if (runs('latency')) log(`[bench] 3. insert → job latency at ${SIZES.rate}/s for ${SIZES.latencyMs} ms`);
    const latency = !runs('latency') ? null : await runLatency({ uri: backend.uri, client, appClient, dbName, ratePerSec: SIZES.rate, durationMs: SIZES.latencyMs });
    if (latency) log(`  p50 ${latency.p50Ms} ms, p95 ${latency.p95Ms} ms, p99 ${latency.p99Ms} ms over ${latency.submissions}`);

    if (runs('backlog')) log(`[bench] 4+5. backlog of ${SIZES.backlog} events, windows of ${SIZES.windowMs} ms, one process per window`);
    const backlog = !runs('backlog') ? null : await runBacklog({ uri: backend.uri, client, db, events: SIZES.backlog, windowMs: SIZES.windowMs, maxWindows: 60, backendCpuMs: backend.cpuMs, log });

    if (runs('processor')) log(`[bench] 6. job processor vs bare POST loop (${SIZES.jobs} jobs, concurrency ${CONCURRENCY})`);
    const processor = !runs('processor') ? null : await runProcessor({ uri: backend.uri, client, db: client.db(`${dbName}_jobs`), jobs: SIZES.jobs, concurrency: CONCURRENCY, backendCpuMs: backend.cpuMs, log });
    if (processor) {
      log(`  processor ${processor.processorJobsPerSec}/s, bare POST ${processor.barePostsPerSec}/s, ${processor.roundTripsPerJob} round trips/job`);
      log(`    processor waited on: ${Object.entries(processor.commandMs).map(([k, v]) => `${k} ${v} ms ×${processor.commands[k]}`).join(', ')} (of ${Math.round(processor.processorMs)} ms)`);
      log(`    CPU busy (1 = one core): processor ${processor.cpu.processor.self}, sink ${processor.cpu.processor.sink ?? '?'}, backend ${processor.backendBusy ?? '?'}; bare loop ${processor.cpu.bare.self}, sink ${processor.cpu.bare.sink ?? '?'}`);
    }

    if (runs('sustained')) log(`[bench] 7. sustained ${SIZES.sustainedRate} jobs/s for ${SIZES.sustainedMs} ms, JOB_PARALLELISM ${PARALLELISM} (lanes in process), concurrency ${CONCURRENCY}`);
    const sustained = !runs('sustained') ? null : await runSustained({ uri: backend.uri, client, appClient, dbName, ratePerSec: SIZES.sustainedRate, durationMs: SIZES.sustainedMs, concurrency: CONCURRENCY, parallelism: PARALLELISM, backendCpuMs: backend.cpuMs, log });
    if (sustained) {
      log(`  queued ${sustained.queued}, completed ${sustained.completedPerSec}/s, lag p50 ${sustained.lagMs.p50} ms p95 ${sustained.lagMs.p95} ms, max backlog ${sustained.maxBacklog}, ${sustained.runs} runs + ${sustained.lanes} lanes, ${sustained.roundTripsPerJob} round trips/job`);
      log(`    waited on: ${Object.entries(sustained.commandMs).map(([k, v]) => `${k} ${v} ms ×${sustained.commands[k]}`).join(', ')}; CPU busy: processor ${sustained.cpu.processor}, sink ${sustained.cpu.sink ?? '?'}, backend ${sustained.cpu.backend ?? '?'}`);
    }

    const targets = evaluateTargets({ throughput, latency, backlog, processor, sustained });
    const report = {
      generatedAt: new Date().toISOString(),
      command: `npm run bench${opt.quick ? ' -- --quick' : ''}`,
      durationS: round((performance.now() - started) / 1000, 1),
      backend: { kind: backend.kind, version: backend.version, describe: backend.describe },
      machine,
      settings: { ...SIZES, sections: only, concurrency: CONCURRENCY, parallelism: PARALLELISM, batchSize: throughput?.batchSize ?? null, backlogEnv: BACKLOG_ENV },
      backendBaseline: { pingP50Ms, insertManyPerSec: backlog?.insertPerSec ?? null, bareChangeStreamReadPerSec: throughput?.bareEventsPerSec ?? null },
      results: { throughput, latency, backlog, processor, sustained },
      targets,
    };
    print(report.backend, targets, { pingP50Ms, insertManyPerSec: backlog?.insertPerSec ?? Number.NaN, bareReadPerSec: throughput?.bareEventsPerSec ?? Number.NaN }, report.durationS);
    const out = resolve(OUT);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    log(`[bench] wrote ${OUT}`);
    if (targets.some((t) => t.met === false)) log('[bench] some targets were missed: see the table and the Benchmarks section of the README');
  }
  if (runs('scale')) await scaleSection();
} catch (error) {
  exitCode = 1;
  log(`[bench] failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await Promise.allSettled([client.db(dbName).dropDatabase(), client.db(`${dbName}_jobs`).dropDatabase()]);
  await Promise.allSettled([client.close(), appClient.close()]);
  await backend.stop();
}
process.exit(exitCode);

/** The scale section: both stream layouts side by side (scripts/bench/scale.ts); its own record. */
async function scaleSection(): Promise<void> {
  const opts = { ...SCALE, uri: backend.uri, client, appClient, dbPrefix: dbName, log };
  log(
    `[bench] scale: ${SCALE.orgCounts.join(' and ')} organizations, Poisson ${SCALE.ratePerSec}/s for ${SCALE.trafficMs / 1000} s` +
      `${opt.quick ? ' (--quick: 1,000 organizations only, shorter and slower traffic)' : ''}; collection layout ticks every ${SCALE.tickMs / 1000} s (real: 60 s); database layout P = ${SCALE.partitions.join(', ')}`,
  );
  const figures = await runScale(opts);
  const targets = scaleTargets(figures);
  const report = {
    generatedAt: new Date().toISOString(),
    command: `npm run bench${opt.only ? ` -- --only ${opt.only}` : ''}${opt.quick ? (opt.only ? ' --quick' : ' -- --quick') : ''}`,
    durationS: round((performance.now() - started) / 1000, 1),
    backend: { kind: backend.kind, version: backend.version, describe: backend.describe },
    machine,
    loadAverage: loadavg().map((x) => round(x, 1)),
    settings: SCALE,
    results: { scale: figures },
    targets,
  };
  const rows: Cell[][] = figures.map((f) => [
    f.layout === 'collection' ? 'collection (rotation)' : `database P=${f.partitions}`,
    f.organizations,
    f.submissions,
    f.insertToJob.p50Ms,
    f.insertToJob.p99Ms,
    f.insertToWebhook.p50Ms,
    f.insertToWebhook.p99Ms,
    f.invocationsPerMin,
    f.functionSecondsPerMin,
    f.maxOpenCursors,
    f.roundTripsPerEvent,
    f.withoutDelivery,
    f.duplicatedJobs + f.duplicatedDeliveries,
  ]);
  process.stdout.write(`\nMongoDB backend: ${describeBackend(report.backend)}\nMachine: ${describeMachine(machine)}; load average ${report.loadAverage.join(' ')}\n`);
  if (opt.quick) process.stdout.write('--quick: 1,000 organizations only, 20 submissions/s for 20 s (the full run: 1,000 and 10,000, 50/s for 60 s)\n');
  process.stdout.write(
    `\n${renderTable(['layout', 'orgs', 'subs', 'job p50 ms', 'job p99 ms', 'hook p50 ms', 'hook p99 ms', 'invoc/min', 'fn-s/min', 'cursors max', 'RT/event', 'lost', 'dup'], rows)}\n`,
  );
  for (const f of figures) {
    if (!f.ticks) continue;
    const t = f.ticks;
    process.stdout.write(
      `\ncollection layout, ${f.organizations} orgs: ticks simulated every ${t.tickMs / 1000} s (${t.ran} ran, ${t.organizationsReached} of ${f.organizations} organizations reached); ` +
        `insert→job p50 ${t.jobP50Ticks} / p99 ${t.jobP99Ticks} ticks = about ${t.projectedJobP50Min} / ${t.projectedJobP99Min} min at the real one-minute cadence, among the submissions served; ` +
        `${f.withoutJob} of ${f.submissions} had no job when the run was cut off. Projection (not measured): a full rotation takes ${t.projectedRotationTicks} ticks = ${t.projectedFullRotationMin} min, ` +
        `so at steady traffic an organization waits up to about ${t.projectedFullRotationMin} min for its job. Per-minute figures are per tick (one tick = one real minute).\n`,
    );
  }
  const tRows: Cell[][] = targets.map((t) => [t.name, t.value, t.target, t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED']);
  process.stdout.write(`\nTargets, database layout at ${Math.max(...figures.map((f) => f.organizations))} organizations:\n${renderTable(['figure', 'value', 'target', 'result'], tRows)}\n\n(${report.durationS} s)\n`);
  const out = resolve(SCALE_OUT);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`[bench] wrote ${SCALE_OUT}`);
}

function print(b: Omit<BackendInfo, 'uri'>, rows: TargetRow[], base: Record<string, number>, seconds: number): void {
  const table: Cell[][] = rows.map((t) => [t.name, t.value, t.unit, t.baseline ?? null, t.ratio ?? null, t.target, t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED']);
  process.stdout.write(`\nMongoDB backend: ${describeBackend(b)}\nMachine: ${describeMachine(machine)}\n`);
  process.stdout.write(`Backend baseline: ping p50 ${base.pingP50Ms} ms, insertMany ${Math.round(base.insertManyPerSec!)} docs/s, bare change-stream read ${Math.round(base.bareReadPerSec!)} events/s\n\n`);
  process.stdout.write(`${renderTable(['figure', 'value', 'unit', 'baseline', 'ratio', 'target', 'result'], table)}\n\n(${seconds} s)\n`);
}
