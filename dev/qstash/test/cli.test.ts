import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY, DEV_TOKEN } from '../keys.js';
import { until } from './support/sink.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('dev/qstash/main.ts', () => {
  it('prints its URL, token and keys, serves /v2/keys, and exits cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'dev/qstash/main.ts', '--port', '0', '--quiet'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = (await until(() => out.match(/QSTASH_URL=(http:\/\/127\.0\.0\.1:\d+)/)?.[1], 'the CLI to print its URL', 10_000))!;
      expect(out).toContain(`QSTASH_TOKEN=${DEV_TOKEN}`);
      expect(out).toContain(`QSTASH_CURRENT_SIGNING_KEY=${DEV_CURRENT_SIGNING_KEY}`);
      expect(out).toContain(`QSTASH_NEXT_SIGNING_KEY=${DEV_NEXT_SIGNING_KEY}`);
      const res = await fetch(`${url}/v2/keys`, { headers: { Authorization: `Bearer ${DEV_TOKEN}` } });
      expect(await res.json()).toEqual({ current: DEV_CURRENT_SIGNING_KEY, next: DEV_NEXT_SIGNING_KEY });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await expect(fetch(`${url}/v2/keys`)).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses a bad --port', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'dev/qstash/main.ts', '--port', 'eighty'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(err).toMatch(/--port/);
  });
});
