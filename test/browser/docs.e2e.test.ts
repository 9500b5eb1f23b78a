import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIntake, type TestIntake } from '../support/embedded-intake.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`docs browser test skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);

let intake: TestIntake;
let baseUrl: string;
let browser: Browser;

/** A page whose every request to anything but this machine is refused and remembered. */
async function offlinePage(): Promise<{ page: Page; outside: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const outside: string[] = [];
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || url.hostname === '127.0.0.1') return route.continue();
    outside.push(url.href);
    return route.abort('internetdisconnected');
  });
  return { page, outside };
}

describe.skipIf(!hasChromium)('the API documentation in headless Chromium, offline', () => {
  beforeAll(async () => {
    intake = await startTestIntake();
    baseUrl = await intake.app.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    mkdirSync('test-artifacts', { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await intake?.dispose();
  });

  it('renders Swagger UI at /docs from this server alone', async () => {
    const { page, outside } = await offlinePage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    const answer = await page.goto(`${baseUrl}/docs`);
    const policy = (await answer?.allHeaders())?.['content-security-policy'] ?? '';
    expect(policy).toMatch(/script-src 'self'/);
    // Served over plain http as often as not: an upgrade would send every asset to https.
    expect(policy).not.toContain('upgrade-insecure-requests');
    await expect.poll(() => page.textContent('.swagger-ui .info .title').catch(() => null), { timeout: 20_000 }).toContain('Intake');
    expect(await page.locator('.opblock').count()).toBeGreaterThan(20);
    await page.screenshot({ path: 'test-artifacts/docs-swagger-ui.png' });
    expect(outside).toEqual([]);
    // Nothing the policy blocked: the page runs as it did without one.
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('renders ReDoc at /redoc from this server alone', async () => {
    const { page, outside } = await offlinePage();
    const scripts: string[] = [];
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('request', (request) => {
      if (request.resourceType() === 'script') scripts.push(request.url());
    });
    await page.goto(`${baseUrl}/redoc`);
    await expect.poll(() => page.textContent('.api-info h1').catch(() => null), { timeout: 30_000 }).toContain('Intake');
    // The operations are listed in the side menu, so the whole document was read and rendered.
    await expect.poll(() => page.locator('[role=menuitem]').count()).toBeGreaterThan(20);
    expect(scripts).toEqual([`${baseUrl}/redoc/redoc.standalone.js`]);
    await page.screenshot({ path: 'test-artifacts/docs-redoc.png' });
    expect(outside).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
