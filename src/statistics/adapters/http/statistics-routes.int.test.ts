import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedClock } from '../../../shared/clock.js';
import { MAX_DASHBOARD_EVENT_TYPES } from '../../application/queries.js';
import {
  auth,
  ingestItem,
  requireTotal,
  startStatisticsIntake,
  type StatisticsIntake,
} from '../../../../test/support/intake-with-statistics.js';

let intake: StatisticsIntake;
const clock = fixedClock('2026-11-24T10:15:00.000Z');

beforeAll(async () => {
  intake = await startStatisticsIntake({ clock });
  await requireTotal(intake, 'order');
  // 10:xx and 13:xx on Tuesday 24 November: nothing in the hours between.
  await ingestItem(intake, 'shop', 'order', { total: 1 });
  await ingestItem(intake, 'shop', 'signup', {});
  clock.set('2026-11-24T13:40:00.000Z');
  await ingestItem(intake, 'shop', 'order', {});
  await ingestItem(intake, 'shop', 'order', { total: 2 });
  clock.set('2026-11-26T09:00:00.000Z');
  await ingestItem(intake, 'shop', 'signup', {});
  await ingestItem(intake, 'blog', 'post', {});
  await intake.subscriptions.caughtUp();
});
afterAll(() => intake.dispose());

const get = (url: string, headers: Record<string, string> = auth) => intake.app.inject({ method: 'GET', url, headers });
const counters = (total: number, processed: number, failed: number, pending = 0) => ({
  total_events: total,
  processed_events: processed,
  failed_events: failed,
  pending_events: pending,
});

describe('GET /api/statistics/{app_id}', () => {
  it('lists the buckets in order, one per event type, and omits empty buckets', async () => {
    const response = await get('/api/statistics/shop?time_period=hourly');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      app_id: 'shop',
      time_period: 'hourly',
      buckets: [
        { bucket_start: '2026-11-24T10:00:00.000Z', event_type: 'order', ...counters(1, 1, 0) },
        { bucket_start: '2026-11-24T10:00:00.000Z', event_type: 'signup', ...counters(1, 1, 0) },
        { bucket_start: '2026-11-24T13:00:00.000Z', event_type: 'order', ...counters(2, 1, 1) },
        { bucket_start: '2026-11-26T09:00:00.000Z', event_type: 'signup', ...counters(1, 1, 0) },
      ],
      next_cursor: null,
    });
  });

  it('defaults to daily buckets and filters by event type', async () => {
    const daily = (await get('/api/statistics/shop')).json();
    expect(daily.time_period).toBe('daily');
    expect(daily.buckets.map((b: { bucket_start: string }) => b.bucket_start)).toEqual([
      '2026-11-24T00:00:00.000Z',
      '2026-11-24T00:00:00.000Z',
      '2026-11-26T00:00:00.000Z',
    ]);
    const orders = (await get('/api/statistics/shop?time_period=weekly&event_type=order')).json();
    expect(orders.buckets).toEqual([{ bucket_start: '2026-11-23T00:00:00.000Z', event_type: 'order', ...counters(3, 2, 1) }]);
  });

  it('takes the buckets from the one holding `from` to those starting before `to`', async () => {
    const range = (await get('/api/statistics/shop?time_period=hourly&from=2026-11-24T10:30:00Z&to=2026-11-26T09:00:00Z')).json();
    expect(range.buckets.map((b: { bucket_start: string; event_type: string }) => `${b.bucket_start} ${b.event_type}`)).toEqual([
      '2026-11-24T10:00:00.000Z order',
      '2026-11-24T10:00:00.000Z signup',
      '2026-11-24T13:00:00.000Z order',
    ]);
  });

  it('pages with a keyset cursor', async () => {
    const first = (await get('/api/statistics/shop?time_period=hourly&limit=3')).json();
    expect(first.buckets).toHaveLength(3);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = (await get(`/api/statistics/shop?time_period=hourly&limit=3&cursor=${first.next_cursor}`)).json();
    expect(second.buckets.map((b: { bucket_start: string }) => b.bucket_start)).toEqual(['2026-11-26T09:00:00.000Z']);
    expect(second.next_cursor).toBeNull();
  });

  it('names the periods it takes when given another', async () => {
    const response = await get('/api/statistics/shop?time_period=monthly');
    expect(response.statusCode).toBe(400);
    expect(response.json().detail).toBe('querystring.time_period must be one of "hourly", "daily", "weekly"');
  });

  it('answers an empty list for an application without items', async () => {
    expect((await get('/api/statistics/nobody')).json()).toEqual({
      app_id: 'nobody',
      time_period: 'daily',
      buckets: [],
      next_cursor: null,
    });
  });

  it.each([
    ['an unknown period', '/api/statistics/shop?time_period=monthly', 'request.invalid'],
    ['a `from` that is not a date-time', '/api/statistics/shop?from=yesterday', 'request.invalid'],
    ['a `from` after `to`', '/api/statistics/shop?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z', 'statistics.invalid-range'],
    ['a cursor it never gave', '/api/statistics/shop?cursor=WyJ4Il0', 'pagination.invalid-cursor'],
  ])('refuses %s with a 400 problem', async (_case, url, code) => {
    const response = await get(url);
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({ status: 400, code });
  });
});

describe('GET /api/statistics/dashboard/{app_id}', () => {
  const hour = (iso: string) => new Date(iso).toISOString();
  it('gives totals across event types, per type, and a window of 48 hours up to now, empty hours as zeros', async () => {
    const response = await get('/api/statistics/dashboard/shop?time_period=hourly');
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({
      app_id: 'shop',
      time_period: 'hourly',
      totals: counters(5, 4, 1),
      event_types: 2,
      by_event_type: [
        { event_type: 'order', ...counters(3, 2, 1) },
        { event_type: 'signup', ...counters(2, 2, 0) },
      ],
      other_event_types: counters(0, 0, 0),
    });
    // The clock stands at 2026-11-26T09:00: the window is the 48 hours ending with that one.
    expect(body.buckets).toHaveLength(48);
    expect(body.buckets[0].bucket_start).toBe(hour('2026-11-24T10:00:00Z'));
    expect(body.buckets.at(-1).bucket_start).toBe(hour('2026-11-26T09:00:00Z'));
    const nonEmpty = body.buckets.filter((b: { total_events: number }) => b.total_events > 0);
    expect(nonEmpty).toEqual([
      { bucket_start: hour('2026-11-24T10:00:00Z'), ...counters(2, 2, 0), by_event_type: { order: 1, signup: 1 } },
      { bucket_start: hour('2026-11-24T13:00:00Z'), ...counters(2, 1, 1), by_event_type: { order: 2 } },
      { bucket_start: hour('2026-11-26T09:00:00Z'), ...counters(1, 1, 0), by_event_type: { signup: 1 } },
    ]);
    expect(body.buckets[1]).toEqual({ bucket_start: hour('2026-11-24T11:00:00Z'), ...counters(0, 0, 0), by_event_type: {} });
  });

  it('spans 30 days daily and 12 weeks weekly, ending with the current bucket', async () => {
    const daily = (await get('/api/statistics/dashboard/shop?time_period=daily')).json().buckets;
    expect(daily).toHaveLength(30);
    expect([daily[0].bucket_start, daily.at(-1).bucket_start]).toEqual([hour('2026-10-28T00:00:00Z'), hour('2026-11-26T00:00:00Z')]);
    expect(daily.at(-3)).toMatchObject({ bucket_start: hour('2026-11-24T00:00:00Z'), total_events: 4 });
    const weekly = (await get('/api/statistics/dashboard/shop?time_period=weekly')).json().buckets;
    expect(weekly).toHaveLength(12);
    // Weeks start on Monday: 2026-11-23 holds every item.
    expect(weekly.at(-1)).toMatchObject({ bucket_start: hour('2026-11-23T00:00:00Z'), total_events: 5 });
    expect(weekly[0].bucket_start).toBe(hour('2026-09-07T00:00:00Z'));
  });

  it('takes another window length when asked', async () => {
    const body = (await get('/api/statistics/dashboard/shop?time_period=hourly&buckets=2')).json();
    expect(body.buckets.map((b: { bucket_start: string; total_events: number }) => [b.bucket_start, b.total_events])).toEqual([
      [hour('2026-11-26T08:00:00Z'), 0],
      [hour('2026-11-26T09:00:00Z'), 1],
    ]);
    expect(body.totals.total_events).toBe(5);
    expect((await get('/api/statistics/dashboard/shop?buckets=0')).statusCode).toBe(400);
  });
});

describe('GET /api/statistics/apps', () => {
  it('lists the applications that have statistics with their totals, paginated', async () => {
    expect((await get('/api/statistics/apps')).json()).toEqual({
      items: [
        { app_id: 'blog', ...counters(1, 1, 0) },
        { app_id: 'shop', ...counters(5, 4, 1) },
      ],
      next_cursor: null,
    });
    const first = (await get('/api/statistics/apps?limit=1')).json();
    expect(first.items.map((a: { app_id: string }) => a.app_id)).toEqual(['blog']);
    const second = (await get(`/api/statistics/apps?limit=1&cursor=${first.next_cursor}`)).json();
    expect(second.items.map((a: { app_id: string }) => a.app_id)).toEqual(['shop']);
  });
});

describe('the statistics API', () => {
  it.each([
    ['GET', '/api/statistics/shop'],
    ['GET', '/api/statistics/dashboard/shop'],
    ['GET', '/api/statistics/apps'],
    ['POST', '/api/statistics/refresh/shop'],
  ] as const)('needs the admin token: %s %s', async (method, url) => {
    const response = await intake.app.inject({ method, url });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toMatchObject({ code: 'auth.unauthorized' });
  });

  it('is documented in the OpenAPI document, saying that empty buckets are omitted', async () => {
    const doc = (await intake.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/statistics/{app_id}',
        '/api/statistics/dashboard/{app_id}',
        '/api/statistics/refresh/{app_id}',
        '/api/statistics/apps',
      ]),
    );
    expect(doc.paths['/api/statistics/{app_id}'].get.description).toMatch(/omitted/);
  });
});

describe('GET /api/statistics/dashboard/{app_id} of an application with many event types', () => {
  // Last: the applications list above knows only shop and blog.
  it(`breaks down the ${MAX_DASHBOARD_EVENT_TYPES} busiest types and sums the others`, async () => {
    // One more type than the dashboard names, each once, and two more items of the type sorting last.
    const types = Array.from({ length: MAX_DASHBOARD_EVENT_TYPES + 1 }, (_, i) => `type-${String(i).padStart(3, '0')}`);
    const busiest = types.at(-1) ?? '';
    for (const type of [...types, busiest, busiest]) await ingestItem(intake, 'many', type, {});
    await intake.subscriptions.caughtUp();
    const body = (await get('/api/statistics/dashboard/many?time_period=hourly')).json();
    expect(body.totals.total_events).toBe(types.length + 2);
    expect(body.event_types).toBe(types.length);
    const listed = body.by_event_type.map((t: { event_type: string; total_events: number }) => [t.event_type, t.total_events]);
    // Named: the busiest type (the last by name), then the first by name of those with one item, in order of name.
    expect(listed).toEqual([...types.slice(0, MAX_DASHBOARD_EVENT_TYPES - 1).map((type) => [type, 1]), [busiest, 3]]);
    // Left out: the one type of one item that sorts after the others.
    expect(body.other_event_types).toEqual(counters(1, 1, 0));
    const now = body.buckets.at(-1);
    expect(now.total_events).toBe(types.length + 2);
    expect(Object.keys(now.by_event_type).sort()).toEqual(listed.map(([type]: [string]) => type));
    expect(now.by_event_type[busiest]).toBe(3);
  });
});

describe('GET /api/statistics/dashboard/{app_id} with any event type', () => {
  it('counts event types named like what every object has, as any other', async () => {
    await ingestItem(intake, 'names', 'constructor', {});
    await ingestItem(intake, 'names', 'toString', {});
    await ingestItem(intake, 'names', 'toString', {});
    await intake.subscriptions.caughtUp();
    const response = await get('/api/statistics/dashboard/names?time_period=hourly&buckets=1');
    expect(response.statusCode).toBe(200);
    expect(response.json().buckets[0].by_event_type).toEqual({ constructor: 1, toString: 2 });
  });
});
