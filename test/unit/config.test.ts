import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../lib/platform/config.js';
import { rolloutModeFor } from '../../lib/streams/rollout.js';

const BASE = { MONGODB_URI: 'mongodb://user:hunter2@db.example:27017/?replicaSet=rs0' };

describe('loadConfig', () => {
  it('parses defaults', () => {
    const cfg = loadConfig(BASE);
    expect(cfg.MONGODB_DB).toBe('forms');
    expect(cfg.DRAIN_BATCH_SIZE).toBe(100);
    expect(cfg.CRON_SECRET).toBeUndefined();
  });

  it('never prints a secret, however it is logged', () => {
    const cfg = loadConfig({ ...BASE, CRON_SECRET: 'cron-SECRET-marker', ADMIN_TOKEN: 'admin-SECRET-marker', QSTASH_TOKEN: 'q-SECRET-marker', QSTASH_CURRENT_SIGNING_KEY: 'k-SECRET-marker', PUBLIC_BASE_URL: 'https://x.example' });
    for (const text of [JSON.stringify(cfg), inspect(cfg, { depth: 5 }), String(cfg.CRON_SECRET), `${cfg.ADMIN_TOKEN}`]) {
      expect(text).not.toContain('SECRET-marker');
      expect(text).not.toContain('hunter2');
    }
    expect(cfg.CRON_SECRET?.reveal()).toBe('cron-SECRET-marker');
  });

  it('lists every problem at once', () => {
    let message = '';
    try {
      loadConfig({ MONGODB_URI: 'http://nope', DRAIN_BATCH_SIZE: '0', TRIGGER_MODE: 'sometimes', USE_CHANGE_STREAMS: 'perhaps' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    for (const key of ['MONGODB_URI', 'DRAIN_BATCH_SIZE', 'TRIGGER_MODE', 'USE_CHANGE_STREAMS']) expect(message).toContain(key);
  });

  it('treats empty strings as unset, so a secret is never the empty string', () => {
    const cfg = loadConfig({ ...BASE, CRON_SECRET: '', ADMIN_TOKEN: '   ' });
    expect(cfg.CRON_SECRET).toBeUndefined();
    expect(cfg.ADMIN_TOKEN).toBeUndefined();
  });

  it('refuses a QStash token without the URL and key it needs', () => {
    expect(() => loadConfig({ ...BASE, QSTASH_TOKEN: 't' })).toThrow(/PUBLIC_BASE_URL[\s\S]*QSTASH_CURRENT_SIGNING_KEY/);
  });

  it('refuses a DATA_SOURCE_KEY that is not 32 bytes', () => {
    expect(() => loadConfig({ ...BASE, DATA_SOURCE_KEY: Buffer.alloc(16).toString('base64') })).toThrow(/DATA_SOURCE_KEY/);
  });
});

describe('rolloutModeFor', () => {
  it.each([
    ['streams off', {}, 'a', 'explicit'],
    ['streams on, org not allowed', { USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ORG_IDS: 'b' }, 'a', 'explicit'],
    ['streams on, org allowed, default mode', { USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ORG_IDS: 'a,b' }, 'a', 'dual'],
    ['all orgs, explicit flag', { USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ALL_ORGS: 'true', TRIGGER_MODE: 'change_streams' }, 'z', 'change_streams'],
    ['per-org override', { USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ORG_IDS: 'a', TRIGGER_MODE_BY_ORG: 'a:change_streams' }, 'a', 'change_streams'],
    ['per-org rollback to explicit', { USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ALL_ORGS: 'true', TRIGGER_MODE_BY_ORG: 'a:explicit' }, 'a', 'explicit'],
  ])('%s', (_name, env, org, mode) => {
    expect(rolloutModeFor(loadConfig({ ...BASE, ...env }), org)).toBe(mode);
  });

  it('refuses a malformed override list', () => {
    expect(() => loadConfig({ ...BASE, TRIGGER_MODE_BY_ORG: 'a:fast' })).toThrow(/a:fast/);
  });
});
