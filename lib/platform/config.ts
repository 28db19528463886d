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

  /**
   * `database`: the platform database is watched by STREAM_PARTITIONS database-level streams
   * (`partition:{p}/{P}`); `collection`: one stream per organization (`org:`) and per legacy shared
   * collection (`shared:`), kept for migration. External sources (`source:`) have a stream each in both.
   */
  STREAM_LAYOUT: z.enum(['database', 'collection']).default('database'),
  /** Partition streams in the `database` layout; more than 1 needs MongoDB 7.0+ ($toHashedIndexKey). */
  STREAM_PARTITIONS: int(1, 256).default(1),
  /**
   * An idle stream (no event read since its last save) saves its advancing post-batch resume token
   * at most this often, so an idle stream's saved position stays at most this much plus one window old.
   */
  DRAIN_IDLE_SAVE_MS: int(1_000, 3_600_000).default(60_000),
  DRAIN_WINDOW_MS: int(500, maxWindowMs('drain')).default(Math.min(45_000, maxWindowMs('drain'))),
  DRAIN_BATCH_SIZE: int(1, 10_000).default(100),
  DRAIN_IDLE_MS: int(50, 600_000).default(3_000),
  DRAIN_MAX_EVENTS: int(1, 10_000_000).default(50_000),
  DRAIN_FLUSH_INTERVAL_MS: int(5, 60_000).default(200),
  DRAIN_MAX_AWAIT_MS: int(10, 10_000).default(1_000),
  STREAM_FAILING_AFTER: int(1, 1000).default(3),
  /**
   * Clock skew allowed between a writer's `submittedAt` and the cluster's time in recovery scans:
   * the scan reaches this far before the last saved position and after its end. 5 minutes is the
   * bound widely used for unsynchronised clocks (Kerberos' default maximum skew); documents whose
   * `_id` is an ObjectId are also found by their creation time, so a larger skew only widens the scan.
   */
  RECOVERY_SKEW_MS: int(0, 86_400_000).default(300_000),
  /**
   * `auto`: read change events through `$changeStreamSplitLargeEvent` when the server has it
   * (MongoDB 7.0+, 6.0.9+) and reassemble the fragments; `off`: never (events over 16 MiB are then
   * stepped over with a dead letter).
   */
  DRAIN_SPLIT_LARGE_EVENTS: z.enum(['auto', 'off']).default('auto'),
  MAX_CONCURRENT_DRAINS: int(1, 10_000).default(80),
  /**
   * `continuous`: partition streams (and busy external sources) are drained by a relay chain, each
   * window publishing its successor; the cron is a watchdog. `tick`: every stream waits for the cron
   * fan-out. Default: `continuous` in the `database` layout, `tick` in the `collection` layout.
   */
  RELAY: z.enum(['continuous', 'tick']).optional(),
  /**
   * How long before its deadline a relay window publishes its successor: room for QStash to accept
   * and deliver the message (usually well under a second) plus a cold start of the function (one to
   * a few seconds), so the successor is already waiting on the lease when the window releases it. A window shorter
   * than twice the lead uses half its length instead.
   */
  RELAY_HANDOVER_LEAD_MS: int(100, 30_000).default(5_000),
  /** The watchdog restarts a chain whose lease is free and whose last publish is older than this. */
  RELAY_WATCHDOG_AFTER_MS: int(1_000, 3_600_000).default(20_000),
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
