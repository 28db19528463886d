import { z } from 'zod';
import { parseAllowList } from './destination.js';
import { Secret } from './secret.js';
import { maxWindowMs } from './limits.js';

/**
 * Every environment variable the product reads, named once. `loadConfig` parses them all,
 * lists every problem at once, and returns a Config that is safe to log (secrets are `Secret`s).
 */
const secret = z
  .string()
  .min(1, 'must not be empty')
  .transform((v) => new Secret(v))
  .optional();

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const ROLLOUT_MODES = ['explicit', 'dual', 'change_streams'] as const;

export type RolloutMode = (typeof ROLLOUT_MODES)[number];

const idList = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

const modeOverrides = z.string().transform((v, ctx) => {
  const out: Record<string, RolloutMode> = {};
  for (const part of v.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [org, mode] = part.split(':').map((s) => s.trim());
    if (!org || !mode || !(ROLLOUT_MODES as readonly string[]).includes(mode)) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not orgId:${ROLLOUT_MODES.join('|')}` });
      return z.NEVER;
    }
    out[org] = mode as RolloutMode;
  }
  return out;
});

/** `WEBHOOK_ALLOW_HOSTS`: host names, addresses and CIDR ranges (lib/platform/destination.ts); every bad entry listed. */
const allowHosts = z.string().transform((v, ctx) => {
  const { list, problems } = parseAllowList(v);
  for (const message of problems) ctx.addIssue({ code: 'custom', message });
  return problems.length ? z.NEVER : list;
});

const base64Key32 = z.string().transform((v, ctx) => {
  const key = Buffer.from(v, 'base64');
  if (key.length !== 32) {
    ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, base64-encoded (openssl rand -base64 32)' });
    return z.NEVER;
  }
  return key;
});

const EnvSchema = z.object({
  MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, 'must be a mongodb:// or mongodb+srv:// URI').transform((v) => new Secret(v)),
  MONGODB_DB: z.string().min(1).default('forms'),

  CRON_SECRET: secret,
  ADMIN_TOKEN: secret,

  PUBLIC_BASE_URL: z.url().optional(),
  QSTASH_URL: z.url().optional(),
  QSTASH_TOKEN: secret,
  QSTASH_CURRENT_SIGNING_KEY: secret,
  QSTASH_NEXT_SIGNING_KEY: secret,

  USE_CHANGE_STREAMS: bool.default(false),
  CHANGE_STREAMS_ORG_IDS: idList.optional(),
  CHANGE_STREAMS_ALL_ORGS: bool.default(false),
  TRIGGER_MODE: z.enum(ROLLOUT_MODES).default('dual'),
  TRIGGER_MODE_BY_ORG: modeOverrides.optional(),

  DRAIN_WINDOW_MS: int(500, maxWindowMs('drain')).default(Math.min(45_000, maxWindowMs('drain'))),
  DRAIN_BATCH_SIZE: int(1, 10_000).default(100),
  DRAIN_IDLE_MS: int(50, 600_000).default(3_000),
  DRAIN_MAX_EVENTS: int(1, 10_000_000).default(50_000),
  DRAIN_FLUSH_INTERVAL_MS: int(5, 60_000).default(200),
  DRAIN_MAX_AWAIT_MS: int(10, 10_000).default(1_000),
  STREAM_FAILING_AFTER: int(1, 1000).default(3),
  MAX_CONCURRENT_DRAINS: int(1, 10_000).default(80),
  DATA_SOURCE_KEY: base64Key32.optional(),

  JOB_MAX_ATTEMPTS: int(1, 100).default(5),
  JOB_BACKOFF_BASE_MS: int(1, 86_400_000).default(2_000),
  JOB_BACKOFF_MAX_MS: int(1, 86_400_000).default(600_000),
  JOB_LEASE_MS: int(1_000, 3_600_000).default(90_000),
  JOB_CONCURRENCY: int(1, 256).default(8),
  /** Processor runs at once when the queue is deeper than one run can clear (lib/jobs/scale.ts). */
  JOB_PARALLELISM: int(1, 64).default(4),
  JOB_WINDOW_MS: int(500, maxWindowMs('jobs')).default(Math.min(45_000, maxWindowMs('jobs'))),
  WEBHOOK_SIGNING_SECRET: secret,
  WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(10_000),
  /** Destinations allowed although not public (loopback, private, …); unset = only public addresses. */
  WEBHOOK_ALLOW_HOSTS: allowHosts.optional(),

  /** A Slack-style webhook URL carries its credential in the path, so it is a Secret. */
  ALERT_WEBHOOK_URL: z.url().transform((v) => new Secret(v)).optional(),
  /** The cluster's oplog window; token ages nearing it alert. Atlas shows it under "Oplog Window". */
  ALERT_OPLOG_WINDOW_HOURS: z.coerce.number().positive().max(24 * 365).default(24),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});

export type Env = z.input<typeof EnvSchema>;

export type Config = z.output<typeof EnvSchema>;

export const ENV_KEYS = Object.keys(EnvSchema.shape) as (keyof Config)[];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** One line per problem, `VARIABLE: what is wrong` — names and rules, never values. */
  readonly problems: string[];
  constructor(message: string, problems: string[] = []) {
    super(message);
    this.problems = problems;
  }
}

/** Parse the environment once. Empty strings count as unset, so `FOO=` never becomes a secret `''`. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of ENV_KEYS) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') input[key] = value.trim();
  }
  const parsed = EnvSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.map(String).join('.') || 'environment'}: ${/received undefined$/.test(i.message) ? 'required, not set' : i.message}`,
    );
    throw new ConfigError(`invalid environment:\n${z.prettifyError(parsed.error)}`, problems);
  }
  const cfg = parsed.data;
  const problems: string[] = [];
  if (cfg.QSTASH_TOKEN && !cfg.PUBLIC_BASE_URL) problems.push('PUBLIC_BASE_URL is required when QSTASH_TOKEN is set (drain messages are addressed to it)');
  if (cfg.QSTASH_TOKEN && !cfg.QSTASH_CURRENT_SIGNING_KEY) problems.push('QSTASH_CURRENT_SIGNING_KEY is required when QSTASH_TOKEN is set (deliveries are verified with it)');
  if (cfg.JOB_BACKOFF_MAX_MS < cfg.JOB_BACKOFF_BASE_MS) problems.push('JOB_BACKOFF_MAX_MS must be >= JOB_BACKOFF_BASE_MS');
  // The processor claims nothing when less than min(WEBHOOK_TIMEOUT_MS, 2 s) of its window remains.
  if (cfg.JOB_WINDOW_MS < Math.min(cfg.WEBHOOK_TIMEOUT_MS, 2_000)) problems.push('JOB_WINDOW_MS must be >= min(WEBHOOK_TIMEOUT_MS, 2000), or the processor can never claim a job');
  if (problems.length) throw new ConfigError(`invalid environment:\n${problems.map((p) => `✖ ${p}`).join('\n')}`, problems);
  return cfg;
}
