/**
 * vercel.json and lib/platform/limits.ts are one source of truth: every function's maxDuration, the crons,
 * and the windows the code derives from them must agree (promise 4: every invocation ends before
 * its deadline with its progress saved).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { Cron } from 'croner';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/platform/config.js';
import { FUNCTION_MAX_DURATION_S, SAFETY_MARGIN_MS, maxWindowMs, type FunctionRole } from '../../lib/platform/limits.js';

/** The route file that plays each function role (vercel.json names files; the code names roles). */
const ROUTE_OF: Record<FunctionRole, string> = {
  drain: 'api/drain.ts',
  fanout: 'api/cron/fanout.ts',
  operator: 'api/trigger.ts',
  jobs: 'api/jobs/process.ts',
  requeue: 'api/jobs/retry.ts',
  status: 'api/status.ts',
  health: 'api/health.ts',
};

const root = join(import.meta.dirname, '..', '..');
const vercel = JSON.parse(readFileSync(join(root, 'vercel.json'), 'utf8')) as {
  functions: Record<string, { maxDuration: number }>;
  crons: { path: string; schedule: string }[];
};

function apiFiles(dir = join(root, 'api')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name.startsWith('_') || e.name.startsWith('.')) return [];
    const full = join(dir, e.name);
    return e.isDirectory() ? apiFiles(full) : e.name.endsWith('.ts') ? [relative(root, full).split(sep).join('/')] : [];
  });
}

describe('vercel.json functions', () => {
  it('lists exactly the route files in api/', () => {
    expect(Object.keys(vercel.functions).sort()).toEqual(apiFiles().sort());
  });

  it('has the maxDuration of lib/platform/limits.ts for every function', () => {
    expect((Object.keys(FUNCTION_MAX_DURATION_S) as FunctionRole[]).map((r) => ROUTE_OF[r]).sort()).toEqual(Object.keys(vercel.functions).sort());
    for (const [role, seconds] of Object.entries(FUNCTION_MAX_DURATION_S) as [FunctionRole, number][]) {
      expect(vercel.functions[ROUTE_OF[role]]?.maxDuration, role).toBe(seconds);
    }
  });

  it('keeps every maxDuration within what Vercel accepts and above the safety margin', () => {
    for (const [file, { maxDuration }] of Object.entries(vercel.functions)) {
      expect(Number.isInteger(maxDuration), file).toBe(true);
      expect(maxDuration, file).toBeGreaterThanOrEqual(1);
      expect(maxDuration, file).toBeLessThanOrEqual(800);
      expect(maxDuration * 1000, file).toBeGreaterThan(SAFETY_MARGIN_MS);
    }
  });

  it('derives default and maximum windows that end before the function does', () => {
    const cfg = loadConfig({ MONGODB_URI: 'mongodb://127.0.0.1:1' });
    const drainS = vercel.functions['api/drain.ts']!.maxDuration;
    const jobsS = vercel.functions['api/jobs/process.ts']!.maxDuration;
    expect(cfg.DRAIN_WINDOW_MS + SAFETY_MARGIN_MS).toBeLessThanOrEqual(drainS * 1000);
    expect(cfg.JOB_WINDOW_MS + SAFETY_MARGIN_MS).toBeLessThanOrEqual(jobsS * 1000);
    // A window longer than the function allows is refused at start, not discovered at the timeout.
    expect(() => loadConfig({ MONGODB_URI: 'mongodb://127.0.0.1:1', DRAIN_WINDOW_MS: String(drainS * 1000) })).toThrow(/DRAIN_WINDOW_MS/);
    for (const role of Object.keys(FUNCTION_MAX_DURATION_S) as FunctionRole[]) {
      expect(maxWindowMs(role)).toBe(vercel.functions[ROUTE_OF[role]]!.maxDuration * 1000 - SAFETY_MARGIN_MS);
    }
  });
});

describe('vercel.json crons', () => {
  it('fires the fan-out and the job processor', () => {
    expect(vercel.crons.map((c) => c.path).sort()).toEqual(['/api/cron/fanout', '/api/jobs/process']);
  });

  it('points every cron at a route file that exports GET (Vercel Cron sends GET)', async () => {
    for (const { path } of vercel.crons) {
      const file = `${path.slice(1)}.ts`;
      expect(apiFiles(), path).toContain(file);
      const mod = (await import(join(root, file))) as Record<string, unknown>;
      expect(typeof mod.GET, path).toBe('function');
    }
  });

  it('uses schedules Vercel accepts: 5 numeric fields, no names or macros, not both day fields', () => {
    const field = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;
    for (const { path, schedule } of vercel.crons) {
      expect(path.startsWith('/') && path.length <= 512, path).toBe(true);
      expect(schedule.length).toBeGreaterThanOrEqual(9);
      const parts = schedule.split(' ');
      expect(parts, schedule).toHaveLength(5);
      for (const p of parts) expect(p, schedule).toMatch(field);
      expect(parts[2] !== '*' && parts[4] !== '*', `${schedule}: day-of-month and day-of-week both set`).toBe(false);
      // And the cron library the local runner uses parses it to a next run within a day.
      const next = new Cron(schedule, { timezone: 'UTC', paused: true }).nextRun();
      expect(next, schedule).not.toBeNull();
    }
  });

  it('ticks often enough that a drain window never overlaps the next tick of the same stream', () => {
    const fanout = vercel.crons.find((c) => c.path === '/api/cron/fanout')!;
    const runs = new Cron(fanout.schedule, { timezone: 'UTC', paused: true }).nextRuns(3, new Date('2025-01-01T00:00:30Z'));
    const interval = runs[1]!.getTime() - runs[0]!.getTime();
    expect(interval).toBe(60_000);
    expect(maxWindowMs('drain') + SAFETY_MARGIN_MS).toBeLessThanOrEqual(interval);
  });
});
