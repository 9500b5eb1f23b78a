import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIntake } from '../../../test/support/embedded-intake.js';
import { auth, ingestItem, startStatisticsIntake, type StatisticsIntake } from '../../../test/support/intake-with-statistics.js';

let intake: StatisticsIntake;
beforeAll(async () => {
  intake = await startStatisticsIntake();
  await ingestItem(intake, 'shop', 'order', { total: 1 });
  await ingestItem(intake, 'shop', 'order', { total: 2 });
  await intake.subscriptions.caughtUp();
  await intake.app.inject({ method: 'GET', url: '/no/such/route', headers: auth });
  await intake.app.inject({ method: 'GET', url: '/ingest/00000000-0000-7000-8000-000000000000', headers: auth });
});
afterAll(() => intake.dispose());

const scrape = async () => {
  const response = await intake.app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  return response;
};

describe('GET /metrics', () => {
  it('answers the Prometheus text format without a token', async () => {
    const response = await scrape();
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.body).toMatch(/^# HELP /m);
  });

  it('counts and times requests by route template, method and status; a request matching no route is "unmatched"', async () => {
    const body = (await scrape()).body;
    expect(body).toMatch(/intake_http_requests_total\{route="\/ingest",method="POST",status="201"\} 2/);
    expect(body).toMatch(/intake_http_requests_total\{route="\/ingest\/:id",method="GET",status="404"\} 1/);
    expect(body).toMatch(/intake_http_requests_total\{route="unmatched",method="GET",status="404"\} 1/);
    expect(body).toMatch(/intake_http_request_duration_seconds_count\{route="\/ingest",method="POST",status="201"\} 2/);
  });

  it('counts what is answered before routing: a malformed URL, a path parameter too long (they were left out)', async () => {
    const before = (await scrape()).body;
    const count = (body: string, status: string) =>
      Number(new RegExp(`intake_http_requests_total\\{route="unmatched",method="GET",status="${status}"\\} (\\d+)`).exec(body)?.[1] ?? 0);
    expect((await intake.app.inject({ method: 'GET', url: '/api/ingest/shop%ZZ', headers: auth })).statusCode).toBe(400);
    expect((await intake.app.inject({ method: 'GET', url: `/query/${'a'.repeat(5000)}`, headers: auth })).statusCode).toBe(414);
    const after = (await scrape()).body;
    expect([count(after, '400') - count(before, '400'), count(after, '414') - count(before, '414')]).toEqual([1, 1]);
  });

  it('reports appended events, group-commit batches, subscriber lag and the process', async () => {
    const head = await intake.store.headPosition();
    const body = (await scrape()).body;
    expect(body).toContain(`intake_events_appended_total ${head}`);
    expect(body).toMatch(/intake_group_commit_batch_size_count [1-9]/);
    for (const name of ['validation', 'processing', 'query', 'statistics']) {
      expect(body).toContain(`intake_subscriber_lag_events{subscriber="${name}"} 0`);
    }
    expect(body).toContain('# TYPE intake_deliveries_total counter');
    expect(body).toMatch(/^process_cpu_user_seconds_total /m);
    expect(body).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });

  it('is documented as public in the OpenAPI document', async () => {
    const doc = (await intake.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.paths['/metrics'].get).toMatchObject({ security: [], tags: ['operations'] });
    expect(doc.paths['/metrics'].get.description).toMatch(/No token needed/);
  });
});

describe('the documentation', () => {
  it.each([
    '/docs',
    '/docs/static/index.html',
    '/docs/static/swagger-initializer.js',
    '/redoc',
    '/redoc/redoc.standalone.js',
    '/openapi.json',
  ])('serves %s unsniffable and sends no referrer, as the dashboard does', async (url) => {
    const response = await intake.app.inject({ method: 'GET', url });
    expect(response.statusCode).toBeLessThan(400);
    expect([response.headers['x-content-type-options'], response.headers['referrer-policy']]).toEqual(['nosniff', 'no-referrer']);
  });
});

describe('the dashboard', () => {
  it('serves its page without a token, under a policy that allows only its own scripts', async () => {
    const response = await intake.app.inject({ method: 'GET', url: '/dashboard' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['content-security-policy']).toMatch(/script-src 'self';/);
    expect(response.body).toContain('<script src="/dashboard/dashboard.js" type="module"></script>');
  });

  it.each([
    ['/dashboard/', 'text/html'],
    ['/dashboard/dashboard.js', 'text/javascript'],
    ['/dashboard/dashboard.css', 'text/css'],
    ['/dashboard/vendor/uplot.js', 'text/javascript'],
    ['/dashboard/vendor/uplot.css', 'text/css'],
  ])('serves %s', async (url, type) => {
    const response = await intake.app.inject({ method: 'GET', url });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain(type);
    expect(response.body.length).toBeGreaterThan(100);
  });

  it('serves nothing else under /dashboard', async () => {
    expect((await intake.app.inject({ method: 'GET', url: '/dashboard/../package.json' })).statusCode).toBe(404);
    expect((await intake.app.inject({ method: 'GET', url: '/dashboard/vendor/uPlot.cjs.js' })).statusCode).toBe(404);
  });
});

describe('GET /metrics with METRICS_TOKEN set', () => {
  it('answers only a scraper that sends that token: not without one, not with the admin token', async () => {
    const guarded = await startTestIntake({ METRICS_TOKEN: 'scrape-me' });
    try {
      const bare = await guarded.app.inject({ method: 'GET', url: '/metrics' });
      expect(bare.statusCode).toBe(401);
      expect(bare.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect((await guarded.app.inject({ method: 'GET', url: '/metrics', headers: auth })).statusCode).toBe(401);
      const scraped = await guarded.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer scrape-me' } });
      expect(scraped.statusCode).toBe(200);
      expect(scraped.body).toMatch(/^# HELP /m);
    } finally {
      await guarded.dispose();
    }
  });
});
