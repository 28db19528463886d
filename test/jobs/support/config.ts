import { loadConfig, type Config } from '../../../lib/platform/config.js';

/** Config for job tests; the URI is never dialled by the unit tests. */
export function jobsConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    MONGODB_URI: 'mongodb://127.0.0.1:1/unused',
    WEBHOOK_SIGNING_SECRET: 'whsec_test_secret',
    JOB_MAX_ATTEMPTS: '3',
    JOB_BACKOFF_BASE_MS: '1000',
    JOB_BACKOFF_MAX_MS: '60000',
    JOB_LEASE_MS: '30000',
    WEBHOOK_TIMEOUT_MS: '5000',
    // The test receiver listens on loopback, which the processor refuses unless allowed.
    WEBHOOK_ALLOW_HOSTS: '127.0.0.0/8',
    LOG_LEVEL: 'silent',
    ...env,
  });
}
