import { readFile } from 'node:fs/promises';
import { Cron } from 'croner';

/** One entry of vercel.json `crons`. */
export interface CronSpec {
  path: string;
  schedule: string;
}

export async function readVercelCrons(file: string): Promise<CronSpec[]> {
  const config = JSON.parse(await readFile(file, 'utf8')) as { crons?: CronSpec[] };
  return config.crons ?? [];
}

export interface CronRunner {
  /** Call one cron path now, the way Vercel would. */
  fire(path: string): Promise<{ status: number; ms: number }>;
  stop(): void;
}

export interface CronRunnerOptions {
  baseUrl: string;
  cronSecret: string;
  crons: CronSpec[];
  /** Fire every N seconds instead of the schedules (local cadence); default: the vercel.json schedules. */
  tickSeconds?: number;
  onResult?: (path: string, result: { status: number; ms: number } | { error: unknown }) => void;
}

/**
 * Fire vercel.json crons like Vercel Cron does: a GET to the path with `Authorization: Bearer
 * $CRON_SECRET` and the `vercel-cron/1.0` user agent, on the UTC schedule (croner parses it). A run
 * still going when the next is due is not doubled locally (`protect`), though Vercel may overlap.
 */
export function startCrons(opts: CronRunnerOptions): CronRunner {
  const fire = async (path: string) => {
    const started = performance.now();
    const spec = opts.crons.find((c) => c.path === path);
    const res = await fetch(new URL(path, opts.baseUrl), {
      headers: {
        authorization: `Bearer ${opts.cronSecret}`,
        'user-agent': 'vercel-cron/1.0',
        ...(spec ? { 'x-vercel-cron-schedule': spec.schedule } : {}),
      },
    });
    await res.arrayBuffer();
    return { status: res.status, ms: Math.round(performance.now() - started) };
  };
  const jobs = opts.crons.map((spec) => {
    const pattern = opts.tickSeconds ? `*/${opts.tickSeconds} * * * * *` : spec.schedule;
    return new Cron(pattern, { timezone: 'UTC', protect: true }, async () => {
      try {
        opts.onResult?.(spec.path, await fire(spec.path));
      } catch (error) {
        opts.onResult?.(spec.path, { error });
      }
    });
  });
  return {
    fire,
    stop: () => jobs.forEach((j) => j.stop()),
  };
}
