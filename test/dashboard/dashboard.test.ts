/**
 * The status dashboard in real headless Chromium (Debian `chromium`, driven by playwright-core):
 * served by the local runner's adapter from the real route, authenticated like a person would
 * (admin token as a header, or as the Basic password), rendering the seeded streams, a chart and
 * nothing from outside. A screenshot must show data, not a blank page.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveWeb, type WebServer } from '../../dev/local/runner/adapter.js';
import { loadRoutes } from '../../dev/local/runner/routes.js';
import type { Clock } from '../../lib/platform/clock.js';
import { provideContext } from '../../lib/platform/context.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, useRouteContext } from '../api/support.js';
import { seedStatus } from '../surface/seed.js';
import { colourStats, countColour, decodePng } from './png.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const available = existsSync(CHROMIUM);
if (!available && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium) for the dashboard test`);
}

const t = useTestDb('dashboard');
const NOW = Date.now();
const fixed: Clock = { now: () => NOW, sleep: async () => undefined };
let web: WebServer;
let base = '';
let chrome: Browser | undefined;

/** A fresh, isolated browser context (cookies, cache, credentials) in the one Chromium of this file. */
async function browser(options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  // Playwright starts Chromium with a new temporary --user-data-dir and removes it on close.
  chrome ??= await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  return chrome.newContext({ viewport: { width: 1280, height: 900 }, ...options });
}

// Skipped (not failed) only outside CI when Debian's chromium is not installed; CI fails above instead.
describe.skipIf(!available)(`dashboard in headless Chromium${available ? '' : ' (skipped: /usr/bin/chromium not installed; apt-get install -y chromium)'}`, () => {
  beforeAll(async () => {
    await seedStatus(t.db(), NOW);
    await useRouteContext(t.db(), t.client(), { TRIGGER_MODE: 'dual' }, { clock: fixed });
    const routes = await loadRoutes(join(import.meta.dirname, '..', '..', 'api'));
    web = await serveWeb((r) => routes.dispatch(r), { port: 0 });
    base = `http://127.0.0.1:${web.port}`;
  });

  afterAll(async () => {
    await chrome?.close();
    await web?.close();
    provideContext(null);
  });

  it('renders the seeded streams, the chart and the tiles, loads nothing from outside, and is not blank', async () => {
    const ctx = await browser({ extraHTTPHeaders: { authorization: `Bearer ${ADMIN}` } });
    const page = await ctx.newPage();
    const requested: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    const res = await page.goto(`${base}/api/status`);
    expect(res?.status()).toBe(200);
    expect(await page.title()).toContain('status');

    const rows = page.locator('tr[data-stream]');
    expect(await rows.count()).toBe(5);
    const ids = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-stream')));
    // Failing first, then by lag (acme and gone caught up: 0; the shared streams have no token yet).
    expect(ids).toEqual(['org:beta', 'org:acme', 'org:gone', 'shared:form_submissions', 'shared:global_submissions']);
    await expect.poll(() => page.locator('tr[data-stream="org:beta"] .badge').textContent()).toBe('failing');
    expect(await page.locator('tr[data-stream="org:beta"]').textContent()).toContain('connection reset');
    expect(await page.locator('#summary').textContent()).toContain('jobs dead');
    expect(await page.locator('#dual').textContent()).toContain('acme');
    expect(await page.locator('svg.chart rect.bar').count()).toBe(30);
    expect(await page.locator('meta[http-equiv="refresh"]').getAttribute('content')).toBe('10');
    expect(requested.every((u) => u.startsWith(base))).toBe(true);

    const png = await page.screenshot({ fullPage: true });
    await mkdir(join(import.meta.dirname, '..', '..', 'test-artifacts'), { recursive: true });
    await writeFile(join(import.meta.dirname, '..', '..', 'test-artifacts', 'dashboard.png'), png);
    const img = decodePng(png);
    const stats = colourStats(img);
    expect(stats.distinct).toBeGreaterThan(20);
    expect(stats.nonBackground).toBeGreaterThan(0.05);
    // The failing badge (#fde2e1 background) and the chart's bars (#7aa7e8) are visibly painted.
    expect(countColour(img, [0xfd, 0xe2, 0xe1], 6)).toBeGreaterThan(50);
    const chart = decodePng(await page.locator('svg.chart').screenshot());
    expect(countColour(chart, [0x7a, 0xa7, 0xe8], 12)).toBeGreaterThan(200);
  });

  it('opens with the admin token as the Basic password, and asks for it otherwise', async () => {
    // Without credentials the browser is challenged (a navigation would stop at the browser's own
    // credentials prompt, so the browser context's request API reads the answer itself).
    const anonymous = await browser();
    const denied = await anonymous.request.get(`${base}/api/status`, { headers: { accept: 'text/html' } });
    expect(denied.status()).toBe(401);
    expect(denied.headers()['www-authenticate']).toMatch(/^Basic/);
    expect(await denied.text()).not.toContain('data-stream');
    const wrong = await anonymous.request.get(`${base}/api/status`, { headers: { authorization: `Basic ${Buffer.from('ops:guess').toString('base64')}` } });
    expect(wrong.status()).toBe(401);

    const person = await (await browser({ httpCredentials: { username: 'ops', password: ADMIN } })).newPage();
    const ok = await person.goto(`${base}/api/status`);
    expect(ok?.status()).toBe(200);
    expect(await person.locator('tr[data-stream]').count()).toBe(5);
  });
});
