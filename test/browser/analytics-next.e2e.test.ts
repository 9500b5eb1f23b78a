import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { createSource, eventsOf } from '../support/analytics-source.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`analytics.js browser test skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);

// The npm package's own UMD build and its lazily loaded bundles, served unchanged.
const UMD = fileURLToPath(new URL('../../node_modules/@segment/analytics-next/dist/umd/', import.meta.url));

/** A page of a shop that loads analytics.js; `_cdn` keeps its lazy bundles on this server instead of Segment's CDN. */
const PAGE = `<!doctype html><html><head><title>shop</title>
<script>window.analytics = { _cdn: location.origin };</script>
<script src="/analytics-next/bundles/index.js"></script></head><body>shop</body></html>`;

let intake: TestIntake;
let intakeUrl: string;
let site: Server;
let siteUrl: string;
let browser: Browser;

describe.skipIf(!hasChromium)('@segment/analytics-next in headless Chromium, pointed at Intake', () => {
  beforeAll(async () => {
    intake = await startTestIntake();
    intakeUrl = await intake.app.listen({ host: '127.0.0.1', port: 0 });
    site = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0] ?? '/';
      if (path === '/') {
        response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
        return;
      }
      const file = join(UMD, basename(path));
      if (path.startsWith('/analytics-next/bundles/') && existsSync(file)) {
        response.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file));
        return;
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => site?.close(resolve));
    await intake?.dispose();
  });

  it('loads its settings from Intake and delivers page, identify and track once each, across origins', async () => {
    const { writeKey } = await createSource(intake, 'web');
    const page = await browser.newPage();
    const outside: string[] = [];
    const failed: string[] = [];
    // Nothing may leave the machine: a request to Segment's CDN or API would be a failure of the setup.
    await page.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.hostname !== '127.0.0.1') {
        outside.push(url.href);
        return route.abort();
      }
      return route.continue();
    });
    page.on('requestfailed', (request) => failed.push(request.url()));
    const toIntake: string[] = [];
    page.on('request', (request) => {
      if (request.url().startsWith(intakeUrl)) toIntake.push(`${request.method()} ${new URL(request.url()).pathname}`);
    });
    page.on('pageerror', (error) => failed.push(error.message));
    await page.goto(`${siteUrl}/?utm_source=newsletter&utm_campaign=winter`);

    const sent = await page.evaluate(
      async ({ key, cdn }) => {
        type Ctx = { event: { messageId: string } };
        type Browser = {
          page(): Promise<Ctx>;
          identify(id: string, traits: object): Promise<Ctx>;
          track(name: string, props: object): Promise<Ctx>;
        };
        const next = (globalThis as unknown as { AnalyticsNext: { AnalyticsBrowser: { load(settings: object): Promise<[Browser]> } } })
          .AnalyticsNext;
        const [analytics] = await next.AnalyticsBrowser.load({ writeKey: key, cdnURL: cdn });
        const ids = [(await analytics.page()).event.messageId, (await analytics.identify('shopper-1', { plan: 'pro' })).event.messageId];
        for (let n = 0; n < 3; n++) ids.push((await analytics.track('Order Completed', { revenue: 10 + n })).event.messageId);
        return ids;
      },
      { key: writeKey, cdn: intakeUrl },
    );

    expect(outside).toEqual([]);
    expect(failed).toEqual([]);
    // The settings from Intake, then the short paths, cross-origin (Chromium sends the CORS preflights unseen).
    expect(new Set(toIntake)).toEqual(new Set([`GET /v1/projects/${writeKey}/settings`, 'POST /v1/p', 'POST /v1/i', 'POST /v1/t']));
    await expect.poll(async () => (await eventsOf(intake, 'web')).length).toBe(5);
    const stored = await eventsOf(intake, 'web');
    expect(stored.map((e) => e.payload.messageId).sort()).toEqual([...sent].sort());
    expect(stored.map((e) => e.event_type)).toEqual(['page', 'identify', 'Order Completed', 'Order Completed', 'Order Completed']);
    const context = stored[0]?.payload.context as { campaign?: object; ip?: string; page?: { url?: string } };
    expect(context.campaign).toMatchObject({ source: 'newsletter', name: 'winter' });
    expect(context.ip).toBe('127.0.0.1');
    expect(stored[2]?.payload.userId).toBe('shopper-1');
    // The campaign visit was the anonymous visitor's and the orders the signed-in user's: the anonymousId the
    // SDK sends beside the userId after identify makes them one person, so the campaign earns the orders.
    await intake.subscriptions.caughtUp();
    const campaign = await intake.app.inject({ method: 'GET', url: '/api/v1/attribution/campaigns/winter', headers: auth });
    expect(campaign.json()).toMatchObject({ campaign_id: 'winter', conversions: 3, attributed_value: 10 + 11 + 12 });
    await page.close();
  });
});
