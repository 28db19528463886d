/**
 * `npm run faults` — the fault matrix as numbers: for each scenario the trials, events, jobs
 * expected and found, lost, duplicated, and rejected-as-expected, on the MongoDB backend the tests
 * would use. Prints a table and writes bench-results/faults.json. Exit code 1 if any row fails.
 *
 *   npm run faults                          # full matrix (a few minutes)
 *   npm run faults -- --quick               # the sizes the npm test subset uses
 *   npm run faults -- --only "crash between" --seed 7   # one scenario, reproducible crash points
 *   npm run faults -- --only partitions     # the partition-stream rows (database layout)
 *
 * `--only` keeps every scenario whose name contains the text: `--only crash` runs both crash rows.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { closeMongoClients } from '../lib/data/mongo.js';
import { describeBackend, describeMachine, machineInfo, startBackend } from './bench/backend.js';
import { renderTable, type Cell } from './bench/table.js';
import { passed, SCENARIOS, seededRandom, type ScenarioResult } from './faults/index.js';

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seed: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});

const log = (line: string) => process.stderr.write(`${line}\n`);
const seed = opt.seed !== undefined ? Number(opt.seed) : randomInt(1, 2 ** 31 - 1);
if (!Number.isInteger(seed)) throw new Error('--seed must be an integer');
const started = performance.now();
const machine = machineInfo();
const backend = await startBackend(log);
log(`[faults] backend: ${describeBackend(backend)}; seed ${seed}`);

// A unique appName: fail points armed by the scenarios hit this client's commands only.
const name = `faults_${randomBytes(3).toString('hex')}`;
const client = new MongoClient(backend.uri, { appName: name, serverSelectionTimeoutMS: 10_000 });
const results: ScenarioResult[] = [];
let exitCode = 0;
try {
  await client.connect();
  const env = { uri: backend.uri, client, db: client.db(name), random: seededRandom(seed), log };
  const chosen = SCENARIOS.filter((s) => !opt.only || s.name.includes(opt.only));
  if (chosen.length === 0) throw new Error(`no scenario matches "${opt.only}"; scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  for (const scenario of chosen) {
    const sizes = opt.quick ? scenario.quick : scenario.full;
    log(`[faults] ${scenario.name}: ${sizes.trials} trials × ${sizes.events} events`);
    let result: ScenarioResult;
    try {
      result = await scenario.run(env, sizes);
    } catch (error) {
      result = { scenario: scenario.name, promises: scenario.promises, trials: 0, events: 0, jobsExpected: 0, jobsFound: 0, lost: 0, duplicated: 0, rejectionsExpected: 0, rejectedAsExpected: 0, failures: [`threw: ${(error as Error).stack ?? String(error)}`], notes: [], ms: 0 };
    }
    results.push(result);
    log(`  ${passed(result) ? 'held' : 'FAILED'} in ${(result.ms / 1000).toFixed(1)} s${result.failures.length ? `: ${result.failures.slice(0, 5).join(' | ')}` : ''}`);
  }
} catch (error) {
  exitCode = 1;
  log(`[faults] failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await client.db(name).dropDatabase().catch(() => undefined);
  await client.close();
  await closeMongoClients();
  await backend.stop();
}

if (results.length) {
  const rows: Cell[][] = results.map((r) => [
    r.scenario,
    r.promises,
    r.trials,
    r.events,
    r.jobsExpected,
    r.jobsFound,
    r.lost,
    r.duplicated,
    r.rejectionsExpected ? `${r.rejectedAsExpected}/${r.rejectionsExpected}` : '—',
    passed(r) ? 'held' : 'FAILED',
  ]);
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  process.stdout.write(`\nMongoDB backend: ${describeBackend(backend)}\nMachine: ${describeMachine(machine)}\nSeed: ${seed}\n\n`);
  process.stdout.write(`${renderTable(['scenario', 'promises', 'trials', 'events', 'jobs expected', 'jobs found', 'lost', 'duplicated', 'rejected as expected', 'result'], rows)}\n\n`);
  for (const r of results) for (const n of r.notes) process.stdout.write(`- ${r.scenario}: ${n}\n`);
  for (const r of results) for (const f of r.failures) process.stdout.write(`! ${r.scenario}: ${f}\n`);
  process.stdout.write(`\n(${seconds} s)\n`);
  const report = {
    generatedAt: new Date().toISOString(),
    command: `npm run faults${opt.quick ? ' -- --quick' : ''}${opt.only ? ` -- --only ${opt.only}` : ''} (seed ${seed})`,
    seed,
    durationS: seconds,
    backend: { kind: backend.kind, version: backend.version, describe: backend.describe },
    machine,
    scenarios: SCENARIOS.map((s) => ({ name: s.name, promises: s.promises, description: s.description })),
    results: results.map((r) => ({ ...r, held: passed(r) })),
  };
  // A quick or partial run never replaces the figures of the last full matrix.
  const outPath = opt.out ?? (opt.quick || opt.only ? 'bench-results/faults-partial.json' : 'bench-results/faults.json');
  const out = resolve(outPath);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`[faults] wrote ${outPath}`);
  if (results.some((r) => !passed(r))) exitCode = 1;
}
process.exit(exitCode);
