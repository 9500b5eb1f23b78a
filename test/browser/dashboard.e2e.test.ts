import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedClock } from '../../src/shared/clock.js';
import { MAX_DASHBOARD_EVENT_TYPES } from '../../src/statistics/application/queries.js';
import {
  ADMIN_TOKEN,
  explodeOnBoom,
  explodingProcessors,
  ingestItem,
  requireTotal,
  startStatisticsIntake,
  type StatisticsIntake,
} from '../support/intake-with-statistics.js';
import { startTestIntake } from '../support/embedded-intake.js';

// Debian's chromium package; CHROMIUM_PATH points elsewhere (or at nothing, to check that the test skips).
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const SCREENSHOT = 'test-artifacts/dashboard.png';
if (!hasChromium) console.warn(`dashboard browser test skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);

/** The little of a canvas the test reads (the project compiles without the DOM library). */
interface CanvasLike {
  readonly width: number;
  readonly height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}

const expected = { total: 0, processed: 0, failed: 0, pending: 0 };
let intake: StatisticsIntake;
let baseUrl: string;
let browser: Browser;

/** A day of a shop's items: valid and invalid orders, signups, and risky items some of which fail. */
async function seed(app: StatisticsIntake, clock: ReturnType<typeof fixedClock>) {
  await requireTotal(app, 'order');
  await explodeOnBoom(app, 'risky');
  for (let hour = 0; hour < 12; hour++) {
    clock.set(new Date(Date.UTC(2026, 10, 24, 8 + hour, 5)));
    for (let i = 0; i <= hour % 4; i++) {
      const invalid = (hour + i) % 5 === 0;
      await ingestItem(app, 'shop', 'order', invalid ? { note: 'no total' } : { total: hour * 10 + i });
      expected.total += 1;
      expected[invalid ? 'failed' : 'processed'] += 1;
    }
    if (hour % 2 === 0) {
      await ingestItem(app, 'shop', 'signup', { email: `user${hour}@example.com` });
      expected.total += 1;
      expected.processed += 1;
    }
    if (hour % 3 === 1) {
      const boom = hour % 2 === 1;
      await ingestItem(app, 'shop', 'risky', { boom });
      expected.total += 1;
      expected[boom ? 'failed' : 'processed'] += 1;
    }
  }
  await ingestItem(app, 'blog', 'post', { title: 'hello' });
}

/** Items the processing stage has not reached yet. */
async function ingestPending(app: StatisticsIntake, clock: ReturnType<typeof fixedClock>, count: number) {
  clock.set('2026-11-24T19:40:00.000Z');
  for (let i = 0; i < count; i++) await ingestItem(app, 'shop', 'order', { total: i });
  expected.total += count;
  expected.pending += count;
}

describe.skipIf(!hasChromium)('the dashboard in headless Chromium', () => {
  beforeAll(async () => {
    const clock = fixedClock('2026-11-24T08:00:00.000Z');
    // Processing runs in stages below; the others run all along.
    intake = await startStatisticsIntake({ clock, processors: explodingProcessors, running: ['validation', 'query', 'statistics'] });
    await seed(intake, clock);
    await intake.subscriptions.caughtUp();
    await intake.runOnce(['processing']);
    await ingestPending(intake, clock, 3);
    await intake.subscriptions.caughtUp();
    baseUrl = await intake.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await intake?.dispose();
  });

  /** Pixels of a chart's canvas close to a series colour: proof that the series was drawn, not just the axes. */
  const pixelsOfColour = (page: Page, chartId: string, rgb: readonly [number, number, number]) =>
    page.locator(`#${chartId} canvas`).evaluate((canvas: CanvasLike, [r, g, b]) => {
      const context = canvas.getContext('2d');
      if (!context) return 0;
      const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs((data[i] ?? 0) - r) < 24 && Math.abs((data[i + 1] ?? 0) - g) < 24 && Math.abs((data[i + 2] ?? 0) - b) < 24) count += 1;
      }
      return count;
    }, rgb);

  it('asks for the token, then charts the chosen application live', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1050 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      // Until the routing context exists its dead-letter endpoint answers 404, which Chromium logs.
      const url = message.location().url;
      if (message.type() === 'error' && !url.includes('/api/routing/dead-letters')) problems.push(`${message.text()} (${url})`);
    });

    await page.goto(`${baseUrl}/dashboard`);
    await expect.poll(() => page.isVisible('#login')).toBe(true);

    await page.fill('#token', 'not-the-token');
    await page.click('#token-form button[type=submit]');
    await expect.poll(() => page.textContent('#login-error')).toBe('That token was refused.');

    // The refused token's 401 was expected; from here on, no error is.
    problems.length = 0;
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#dashboard:not([hidden])');
    expect(await page.$$eval('#app option', (options) => options.map((o) => o.textContent))).toEqual(['blog', 'shop']);

    await page.selectOption('#app', 'shop');
    await page.selectOption('#period', 'hourly');
    await expect.poll(() => page.textContent('#total-events')).toBe(String(expected.total));
    expect(await page.textContent('#processed-events')).toBe(String(expected.processed));
    expect(await page.textContent('#failed-events')).toBe(String(expected.failed));
    expect(await page.textContent('#pending-events')).toBe(String(expected.pending));

    await page.waitForSelector('#chart-types canvas');
    await page.waitForSelector('#chart-status canvas');
    await expect.poll(() => pixelsOfColour(page, 'chart-status', [0x1f, 0x9d, 0x55])).toBeGreaterThan(100);
    expect(await pixelsOfColour(page, 'chart-status', [0xd6, 0x45, 0x45])).toBeGreaterThan(100);
    expect(await pixelsOfColour(page, 'chart-types', [0x2f, 0x6f, 0xde])).toBeGreaterThan(100);
    expect(await page.$$eval('#types tbody tr td:first-child', (cells) => cells.map((c) => c.textContent))).toEqual([
      'order',
      'risky',
      'signup',
    ]);
    expect(await page.$$eval('#subscribers tbody tr td:first-child', (cells) => cells.map((c) => c.textContent))).toEqual([
      'validation',
      'query',
      'statistics',
    ]);
    expect((await page.textContent('#dead-letters'))?.trim()).toBe('none');
    expect(page.url()).toMatch(/#app=shop&period=hourly$/);

    // Live: an item ingested now shows within a poll, without touching the page.
    await ingestItem(intake, 'shop', 'signup', {});
    await expect.poll(() => page.textContent('#total-events'), { timeout: 15_000 }).toBe(String(expected.total + 1));
    expect(await page.textContent('#pending-events')).toBe(String(expected.pending + 1));

    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // The token stays for the tab: a reload goes straight to the same view.
    await page.reload();
    await page.waitForSelector('#dashboard:not([hidden])');
    await expect.poll(() => page.textContent('#total-events')).toBe(String(expected.total + 1));
    expect(await page.inputValue('#app')).toBe('shop');
    expect(await page.isVisible('#login')).toBe(false);

    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);

  it('shows each destination’s circuit, backlog, success rate and latency in the deliveries panel', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1050 } });
    const destination = (name: string, circuit: object, extra: object) => ({
      rule_id: name,
      app_id: 'shop',
      rule_name: name,
      destination_type: 'webhook',
      is_active: true,
      circuit,
      attempts: 10,
      delivered: 9,
      failed: 1,
      ...extra,
    });
    await page.route('**/api/routing/destinations?limit=1000', (route) =>
      route.fulfill({
        contentType: 'application/json',
        body: JSON.stringify({
          items: [
            destination(
              'billing',
              { state: 'open', failures: 5, next_probe_at: '2026-12-02T10:00:30.000Z', opened_at: '2026-12-02T10:00:00.000Z' },
              { pending: 42, success_rate: 0.5, mean_latency_ms: 120.4 },
            ),
            destination(
              'crm',
              { state: 'closed', failures: 0, next_probe_at: null, opened_at: null },
              { pending: 0, success_rate: null, mean_latency_ms: null, condition_error: 'condition: makes 150 comparisons, more than 100' },
            ),
          ],
        }),
      }),
    );
    await page.goto(`${baseUrl}/dashboard`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await expect.poll(() => page.$$eval('#destinations tbody tr', (rows) => rows.length)).toBe(2);
    const texts = await page.$$eval('#destinations tbody td', (tds) => tds.map((td) => td.textContent));
    const cells = [texts.slice(0, 5), texts.slice(5)];
    expect(cells).toEqual([
      ['billing · webhook', 'open · 5 failures · probe 10:00:30', '42', '50.0 %', '120 ms'],
      ['crm · webhook (condition cannot run)', 'closed', '0', '–', '–'],
    ]);
    expect(await page.getAttribute('#destinations tbody tr:nth-child(2) td:first-child', 'title')).toBe(
      'condition: makes 150 comparisons, more than 100',
    );
    expect(await page.getAttribute('#destinations tbody tr:first-child td:nth-child(2)', 'class')).toBe('circuit-open');
    await page.close();
  }, 30_000);

  it('lists recent dead-lettered deliveries once the routing context answers them', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1050 } });
    await page.route('**/api/routing/dead-letters?limit=10', (route) =>
      route.fulfill({
        contentType: 'application/json',
        body: JSON.stringify({
          items: [
            {
              delivery_id: 'dlv-1',
              app_id: 'shop',
              event_type: 'order',
              destination_type: 'webhook',
              attempts: 5,
              last_error: '<img src=x onerror=alert(1)> 503 Service Unavailable',
              updated_at: '2026-11-24T19:45:00.000Z',
            },
          ],
        }),
      }),
    );
    await page.goto(`${baseUrl}/dashboard`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await expect.poll(() => page.textContent('#dead-letters')).toContain('shop · order → webhook');
    const text = await page.textContent('#dead-letters');
    expect(text).toContain('5 attempts');
    // Text from the API is shown as text, never parsed as markup.
    expect(text).toContain('<img src=x onerror=alert(1)> 503 Service Unavailable');
    expect(await page.$$('#dead-letters img')).toHaveLength(0);
    await page.locator('#dead-letters').locator('..').screenshot({ path: 'test-artifacts/dashboard-dead-letters.png' });
    await page.close();
  }, 30_000);
});

describe.skipIf(!hasChromium)('the dashboard’s window', () => {
  const NOW = '2026-11-24T10:30:00.000Z';
  const HOURS = 48;
  let windowIntake: StatisticsIntake;
  let windowUrl: string;
  let windowBrowser: Browser;
  const clock = fixedClock(NOW);

  beforeAll(async () => {
    windowIntake = await startStatisticsIntake({ clock });
    await ingestItem(windowIntake, 'shop', 'order', { total: 1 });
    await windowIntake.subscriptions.caughtUp();
    windowUrl = await windowIntake.app.listen({ host: '127.0.0.1', port: 0 });
    windowBrowser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  }, 60_000);

  afterAll(async () => {
    await windowBrowser?.close();
    await windowIntake?.dispose();
  });

  /** The x range the chart draws, in hours, and its legend's values. */
  const chartState = async (page: Page) => ({
    hours: await page
      .locator('#chart-status')
      .evaluate((el: { dataset: Record<string, string | undefined> }) => (Number(el.dataset.xMax) - Number(el.dataset.xMin)) / 3600),
    legend: await page.$$eval('#chart-status .u-legend .u-value', (cells) => cells.map((c) => c.textContent)),
  });

  it('spans 48 hours around a single bucket, with readable legend values, and still when many hours have items', async () => {
    const page = await windowBrowser.newPage({ viewport: { width: 1400, height: 1050 } });
    await page.goto(`${windowUrl}/dashboard#app=shop&period=hourly`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#chart-status canvas');
    // The window plus half a bucket either side, whatever the data: not 2.5 years around one point.
    await expect.poll(async () => (await chartState(page)).hours).toBe(HOURS);
    const one = await chartState(page);
    expect(one.legend).toEqual(['last 48 hours', '1', '0', '0']);
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/dashboard-one-bucket.png', fullPage: true });

    // Later items land in earlier hours of the window: the clock moves back, then returns to NOW.
    for (let hoursAgo = 1; hoursAgo < HOURS; hoursAgo += 1) {
      clock.set(new Date(Date.parse(NOW) - hoursAgo * 3600_000));
      for (let i = 0; i <= hoursAgo % 5; i++) await ingestItem(windowIntake, 'shop', hoursAgo % 7 === 0 ? 'signup' : 'order', { total: i });
    }
    clock.set(NOW);
    await windowIntake.subscriptions.caughtUp();
    await expect.poll(async () => (await chartState(page)).legend[1], { timeout: 15_000 }).not.toBe('1');
    const many = await chartState(page);
    expect(many.hours).toBe(HOURS);
    expect(many.legend[0]).toBe('last 48 hours');
    expect(many.legend.slice(1).every((value) => value !== '--' && /^[\d,]+$/.test(value ?? ''))).toBe(true);
    await page.screenshot({ path: 'test-artifacts/dashboard-many-buckets.png', fullPage: true });
    await page.close();
  }, 90_000);

  it('shows the application the address names though it sorts past the first 1,000 listed, and says the list is cut', async () => {
    for (let i = 0; i < 1000; i++) await ingestItem(windowIntake, `a${String(i).padStart(4, '0')}`, 'order', { total: i });
    await ingestItem(windowIntake, 'zz-target', 'order', { total: 1 });
    await windowIntake.subscriptions.caughtUp();
    const page = await windowBrowser.newPage({ viewport: { width: 1400, height: 1050 } });
    await page.goto(`${windowUrl}/dashboard#app=zz-target&period=hourly`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#dashboard:not([hidden])');
    await expect.poll(() => page.textContent('#total-events')).toBe('1');
    expect(await page.inputValue('#app')).toBe('zz-target');
    expect(page.url()).toMatch(/#app=zz-target&period=hourly$/);
    expect(await page.isVisible('#apps-cut')).toBe(true);

    // Another application named by editing the address, as the note says to: the fragment alone changes.
    await page.evaluate("location.hash = 'app=a0005&period=daily'");
    await expect.poll(() => page.inputValue('#app')).toBe('a0005');
    expect(await page.inputValue('#period')).toBe('daily');
    await expect.poll(() => page.textContent('#total-events')).toBe('1');
    // The next poll keeps what the address names rather than writing the old choice back.
    const polled = await page.textContent('#updated');
    await expect.poll(() => page.textContent('#updated'), { timeout: 15_000 }).not.toBe(polled);
    expect(page.url()).toMatch(/#app=a0005&period=daily$/);
    expect(await page.inputValue('#app')).toBe('a0005');
    await page.close();
  }, 120_000);

  it('charts event types named like members of every object (constructor, toString) beside the others', async () => {
    // Two hours, each with a type the other lacks: a missing type reads as 0, not as Object.prototype's member.
    clock.set(new Date(Date.parse(NOW) - 3600_000));
    await ingestItem(windowIntake, 'proto', 'constructor', {});
    clock.set(NOW);
    await ingestItem(windowIntake, 'proto', 'order', {});
    await ingestItem(windowIntake, 'proto', 'toString', {});
    await windowIntake.subscriptions.caughtUp();
    const page = await windowBrowser.newPage({ viewport: { width: 1400, height: 1050 } });
    // A period named like a member of every object is no period: the default stands.
    await page.goto(`${windowUrl}/dashboard#app=proto&period=constructor`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#chart-types canvas');
    const legend = () => page.$$eval('#chart-types .u-legend .u-value', (cells) => cells.map((c) => c.textContent));
    await expect.poll(async () => (await legend()).length).toBe(4);
    expect((await legend()).slice(1)).toEqual(['1', '1', '1']);
    expect(await page.inputValue('#period')).toBe('hourly');
    expect(await page.textContent('#status')).toBe('');
    await page.close();
  }, 60_000);

  it('keeps the figures of a long event type, and the page, within their width', async () => {
    const longType = 'checkout_payment_method_selected_by_returning_customer_v2_' + 'x'.repeat(60);
    await ingestItem(windowIntake, 'snake', longType, {});
    await ingestItem(windowIntake, 'a'.repeat(255), 'order', {});
    await windowIntake.subscriptions.caughtUp();
    const page = await windowBrowser.newPage({ viewport: { width: 1400, height: 1050 } });
    await page.goto(`${windowUrl}/dashboard#app=snake&period=hourly`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    await expect.poll(() => page.$$eval('#types tbody td', (tds) => tds.map((td) => td.textContent))).toContain(longType);
    const widths = await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return { page: doc.documentElement.scrollWidth, viewport: doc.documentElement.clientWidth };
    });
    expect(widths.page).toBeLessThanOrEqual(widths.viewport);
    const table = await page.locator('#types').boundingBox();
    const card = await page.locator('#types').locator('xpath=..').boundingBox();
    expect(table && card && table.x + table.width <= card.x + card.width + 1).toBe(true);
    await page.close();
  }, 60_000);

  it('names the busiest event types the API gives and sums the others in one row', async () => {
    // Two more types than the dashboard names, one item each: the two last by name are left out.
    for (let i = 0; i < MAX_DASHBOARD_EVENT_TYPES + 2; i++)
      await ingestItem(windowIntake, 'many', `type-${String(i).padStart(3, '0')}`, {});
    await windowIntake.subscriptions.caughtUp();
    const page = await windowBrowser.newPage({ viewport: { width: 1400, height: 1050 } });
    await page.goto(`${windowUrl}/dashboard#app=many&period=hourly`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type=submit]');
    const rows = () => page.$$eval('#types tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    await expect.poll(async () => (await rows()).length).toBe(MAX_DASHBOARD_EVENT_TYPES + 1);
    const shown = await rows();
    expect(shown[0]).toEqual(['type-000', '1', '1', '0', '0']);
    expect(shown.at(-1)).toEqual(['2 other types', '2', '2', '0', '0']);
    await page.close();
  }, 90_000);
});

describe.skipIf(!hasChromium)('the dashboard of an Intake without statistics', () => {
  it('signs in and shows the subscribers, saying the statistics are not deployed', async () => {
    const plain = await startTestIntake({ INTAKE_DISABLE: 'statistics' });
    const url = await plain.app.listen({ host: '127.0.0.1', port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1050 } });
      await page.goto(`${url}/dashboard`);
      await page.fill('#token', ADMIN_TOKEN);
      await page.click('#token-form button[type=submit]');
      await expect.poll(() => page.isVisible('#dashboard')).toBe(true);
      await expect.poll(() => page.textContent('#types tbody')).toBe('Statistics are not deployed');
      await expect.poll(() => page.$$eval('#subscribers tbody tr', (trs) => trs.length)).toBeGreaterThan(1);
    } finally {
      await browser.close();
      await plain.dispose();
    }
  }, 60_000);
});
