/**
 * The status dashboard in real headless Chromium (Debian `chromium`, driven by playwright-core):
 * served by the local runner's adapter from the real route, authenticated like a person would
 * (admin token as a header, or as the Basic password), rendering the seeded streams, a chart and
 * nothing from outside. A screenshot must show data, not a blank page. Also: the jobs view, the
 * chart's bars at the rate events were read and its unfilled latency line, a 420 px wide screen
 * without horizontal overflow, and search and paging over 10,000 organizations.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serveWeb, type WebServer } from '../../dev/local/runner/adapter.js';
import { loadRoutes } from '../../dev/local/runner/routes.js';
import type { Clock } from '../../lib/platform/clock.js';
import { provideContext } from '../../lib/platform/context.js';
import { ObjectId } from 'mongodb';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { useTestDb } from '../support/mongo.js';
import { ADMIN, useRouteContext } from '../api/support.js';
import { checkpoint, job, run, seedStatus } from '../surface/seed.js';
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
/** Contexts of the current test: closed after it, so their pages stop refreshing (meta refresh every 10 s). */
const opened: BrowserContext[] = [];

/** A fresh, isolated browser context (cookies, cache, credentials) in the one Chromium of this file. */
async function browser(options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  // Playwright starts Chromium with a new temporary --user-data-dir and removes it on close.
  chrome ??= await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  const context = await chrome.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  opened.push(context);
  return context;
}

// Skipped (not failed) only outside CI when Debian's chromium is not installed; CI fails above instead.
describe.skipIf(!available)(`dashboard in headless Chromium${available ? '' : ' (skipped: /usr/bin/chromium not installed; apt-get install -y chromium)'}`, () => {
  beforeAll(async () => {
    await seedStatus(t.db(), NOW);
    await seedJobsAndSteadyRuns();
    await useRouteContext(t.db(), t.client(), { TRIGGER_MODE: 'dual' }, { clock: fixed });
    const routes = await loadRoutes(join(import.meta.dirname, '..', '..', 'api'));
    web = await serveWeb((r) => routes.dispatch(r), { port: 0 });
    base = `http://127.0.0.1:${web.port}`;
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
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

  it('shows the jobs view: dead jobs by workflow and error, retrying vs waiting for a first attempt', async () => {
    const page = await (await browser({ extraHTTPHeaders: { authorization: `Bearer ${ADMIN}` } })).newPage();
    await page.goto(`${base}/api/status`);
    const groups = page.locator('#jobs tr[data-dead-workflow]');
    expect(await groups.evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-dead-workflow'), r.getAttribute('data-code')]))).toEqual([
      ['wf-hooks', 'webhook_rejected'],
      ['wf', 'unknown'],
      ['wf-hooks', 'webhook_timeout'],
    ]);
    expect(await groups.first().textContent()).toContain('webhook answered 404');
    expect(await groups.first().locator('td.num').textContent()).toBe('3');
    const jobsText = (await page.locator('#jobs').textContent()) ?? '';
    // seedStatus: 2 queued never attempted; here 2 more queued after a failed attempt.
    expect(jobsText).toMatch(/2\s*waiting for a first attempt/);
    expect(jobsText).toMatch(/2\s*retrying/);
    expect(jobsText).toMatch(/insert→delivered p99/);
    expect(await page.locator('#summary').textContent()).toMatch(/5.0 s \/ 5.0 s\s*insert→delivered p50 \/ p99/);
  });

  it('draws bars at the rate events were read and the latency as a line, not a filled shape', async () => {
    const page = await (await browser({ extraHTTPHeaders: { authorization: `Bearer ${ADMIN}` } })).newPage();
    await page.goto(`${base}/api/status`);
    const titles = await page.locator('svg.chart rect.bar title').allTextContents();
    // The steady stream: one 45 s drain a minute, 60 events each, from 20 to 11 minutes ago.
    const minute = (ago: number) => new Date(Math.floor(NOW / 60_000) * 60_000 - ago * 60_000).toISOString().slice(11, 16);
    for (const ago of [18, 15, 12]) expect(titles.find((x) => x.startsWith(`${minute(ago)} UTC`))).toContain(': 60 events');
    const line = page.locator('svg.chart polyline.lat');
    expect(await line.count()).toBe(1);
    expect(await line.evaluate((el) => getComputedStyle(el).fill)).toBe('none');
    // No orange area: the latency colour (#d9822b) is a thin line and its dots, not a filled polygon.
    const chart = decodePng(await page.locator('svg.chart').screenshot());
    const orange = countColour(chart, [0xd9, 0x82, 0x2b], 20);
    expect(orange).toBeGreaterThan(20);
    expect(orange / (chart.width * chart.height)).toBeLessThan(0.03);
  });

  it('fits a 420 px wide screen: no horizontal overflow, and the chart still shows its bars', async () => {
    const page = await (await browser({ viewport: { width: 420, height: 900 }, extraHTTPHeaders: { authorization: `Bearer ${ADMIN}` } })).newPage();
    await page.goto(`${base}/api/status`);
    const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth, view: window.innerWidth }));
    expect(widths.view).toBe(420);
    expect(widths.doc).toBeLessThanOrEqual(420);
    expect(widths.body).toBeLessThanOrEqual(420);
    const overflowing = await page.evaluate(() => Array.from(document.querySelectorAll('main *')).filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5).map((el) => el.tagName + '.' + el.className));
    expect(overflowing).toEqual([]);
    const box = await page.locator('svg.chart').boundingBox();
    expect(box!.width).toBeLessThanOrEqual(420);
    const chart = decodePng(await page.locator('svg.chart').screenshot());
    expect(countColour(chart, [0x7a, 0xa7, 0xe8], 12)).toBeGreaterThan(50);
    // Each row reads as label: value pairs.
    expect(await page.locator('tr[data-stream="org:beta"] td[data-label="state"]').isVisible()).toBe(true);
    await mkdir(join(import.meta.dirname, '..', '..', 'test-artifacts'), { recursive: true });
    await writeFile(join(import.meta.dirname, '..', '..', 'test-artifacts', 'dashboard-420.png'), await page.screenshot({ fullPage: true }));
  });

  it('with 10,000 organizations: one page of the most lagging first, search by organization, paging', async () => {
    await seedOrganizations(10_000);
    const page = await (await browser({ extraHTTPHeaders: { authorization: `Bearer ${ADMIN}` } })).newPage();
    // Behaviour only: how fast the page is is measured by scripts/status-scale.ts, never asserted here;
    // on a loaded machine the shared test emulator takes seconds to return 10,000 checkpoints.
    page.setDefaultTimeout(240_000);
    page.setDefaultNavigationTimeout(240_000);
    // A page that takes longer to load than the 10 s refresh would reload itself in the middle of
    // the next navigation: this test turns the refresh off (the first test checks it is there).
    await page.route(`${base}/api/status**`, async (route) => {
      const response = await route.fetch({ timeout: 240_000 });
      await route.fulfill({ response, body: (await response.text()).replace(/<meta http-equiv="refresh"[^>]*>/, '') });
    });
    await page.goto(`${base}/api/status`);
    const rows = page.locator('tr[data-stream]');
    expect(await rows.count()).toBe(50);
    expect(await page.locator('#showing').textContent()).toContain('1–50 of 10,005');
    const ids = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-stream')));
    // failing first (org:beta), then the organizations whose last drain did not catch up, oldest resume point first.
    expect(ids.slice(0, 4)).toEqual(['org:beta', 'org:n09990', 'org:n09980', 'org:n09970']);
    // Search through the form (a GET to the page itself, allowed by the CSP's form-action 'self').
    await page.fill('form.search input[name=q]', 'N0123');
    await Promise.all([page.waitForURL(/q=N0123/), page.click('form.search button')]);
    expect(await page.locator('#showing').textContent()).toContain('1–10 of 10 matching “N0123”');
    expect((await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-stream')))).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `org:n0123${i}`));
    // Paging keeps the search.
    await page.goto(`${base}/api/status?q=n0`);
    expect(await page.locator('#showing').textContent()).toContain('of 10,000 matching “n0”');
    await Promise.all([page.waitForURL(/page=2/), page.click('nav.pager >> text=next ›')]);
    expect(page.url()).toContain('q=n0');
    expect(await page.locator('nav.pager').textContent()).toContain('page 2 of 200');
    expect(await rows.count()).toBe(50);
  }, 900_000);
});

/** Dead jobs of two workflows and errors, jobs retrying, succeeded ones with an end-to-end latency, and a steady stream's runs. */
async function seedJobsAndSteadyRuns(): Promise<void> {
  const db = t.db();
  const dead = (i: number, code: string, message: string) => ({
    ...job('acme', 100 + i, 'dead', 'change_stream', ['change_stream'], NOW),
    workflowId: 'wf-hooks',
    workflowName: 'CRM hook',
    attempts: 5,
    finishedAt: new Date(NOW - 10_000 + i),
    lastError: { code, message, retryable: false, at: new Date(NOW - 10_000) },
  });
  await db.collection(COLLECTIONS.jobs).insertMany([
    dead(1, 'webhook_rejected', 'webhook answered 404'),
    dead(2, 'webhook_rejected', 'webhook answered 404'),
    dead(3, 'webhook_rejected', 'webhook answered 404'),
    dead(4, 'webhook_timeout', 'no answer within 10000 ms'),
    { ...job('acme', 200, 'queued', 'change_stream', ['change_stream'], NOW), attempts: 1 },
    { ...job('acme', 201, 'queued', 'change_stream', ['change_stream'], NOW), attempts: 2 },
    { ...job('acme', 202, 'succeeded', 'change_stream', ['change_stream'], NOW), finishedAt: new Date(NOW - 20_000) },
  ]);
  // The seeded succeeded jobs have no finishedAt; give them the same 5 s insert→delivered latency.
  await db.collection(COLLECTIONS.jobs).updateMany({ status: 'succeeded', finishedAt: { $exists: false } }, { $set: { finishedAt: new Date(NOW - 20_000) } });
  const startOfMinute = Math.floor(NOW / 60_000) * 60_000;
  await db.collection(COLLECTIONS.runs).insertMany(
    Array.from({ length: 10 }, (_, k) => {
      const startedAt = new Date(startOfMinute - (20 - k) * 60_000 + 10_000);
      return { _id: new ObjectId(), ...run('org:steady', startedAt, { events: 60, latencyMsAvg: 50 + (k % 3) * 400, endedAt: new Date(startedAt.getTime() + 45_000), durationMs: 45_000 }) };
    }),
  );
}

/** `n` more organizations with an active workflow and a checkpoint; every tenth did not catch up in its last drain. */
async function seedOrganizations(n: number): Promise<void> {
  const db = t.db();
  const org = (i: number) => `n${String(i).padStart(5, '0')}`;
  for (let start = 0; start < n; start += 2_000) {
    const ids = Array.from({ length: Math.min(2_000, n - start) }, (_, k) => start + k);
    await db.collection(COLLECTIONS.workflows).insertMany(ids.map((i) => ({ _id: `wf-${org(i)}` as never, organizationId: org(i), formId: 'f', name: 'Notify', status: 'active', steps: [], updatedAt: new Date(NOW) })));
    await db.collection(COLLECTIONS.checkpoints).insertMany(
      ids.map((i) =>
        checkpoint(`org:${org(i)}`, NOW, {
          tokenTime: new Date(NOW - 1_000 - i * 10),
          lastRun: run(`org:${org(i)}`, new Date(NOW - 30_000), { stoppedBy: i % 10 === 0 ? 'deadline' : 'idle' }),
        }) as never,
      ),
    );
  }
}
