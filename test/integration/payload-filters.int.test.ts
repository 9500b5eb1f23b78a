import { afterEach, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

let intake: TestIntake | undefined;
afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

const json = { ...auth, 'content-type': 'application/json' };

describe('payload filters over HTTP (embedded, SQLite)', () => {
  it('filter /api/events/app/{app_id} and /query/partner/{partner_id} by payload fields, and refuse a bad path', async () => {
    const app = await startTestIntake();
    intake = app;
    const send = (url: string, body: object) => app.app.inject({ method: 'POST', url, headers: json, payload: JSON.stringify(body) });
    expect((await send('/api/applications', { name: 'Shop', app_id: 'shop' })).statusCode).toBe(201);
    for (const [orderId, total] of [
      ['A17', 99],
      ['A18', 5],
      ['A17', 7],
    ] as const) {
      expect((await send('/api/ingest/shop', { event_type: 'order_created', payload: { order_id: orderId, total } })).statusCode).toBe(201);
      expect((await send('/ingest', { partner_id: 'p1', event_type: 'order', payload: { order_id: orderId, total } })).statusCode).toBe(
        201,
      );
    }
    await app.subscriptions.caughtUp();
    const get = (url: string) => app.app.inject({ method: 'GET', url, headers: auth });

    const events = (await get('/api/events/app/shop?payload.order_id=A17')).json<{ items: Array<{ payload: { total: number } }> }>();
    expect(events.items.map((e) => e.payload.total).sort()).toEqual([7, 99]);
    const items = (await get('/query/partner/p1?payload.order_id=A17&payload.total=7')).json<{ items: Array<{ payload: object }> }>();
    expect(items.items.map((i) => i.payload)).toEqual([{ order_id: 'A17', total: 7 }]);
    expect((await get('/query/partner/p1')).json<{ items: unknown[] }>().items).toHaveLength(3);

    const refused = await get('/query/partner/p1?payload.a..b=1');
    expect(refused.statusCode).toBe(400);
    expect(refused.headers['content-type']).toMatch(/problem\+json/);
    expect(refused.json()).toMatchObject({ code: 'query.invalid-payload-filter', errors: [{ path: 'payload.a..b' }] });

    // A misspelled parameter ignored would answer every item to a caller who believes them filtered.
    for (const url of [
      '/api/events/app/shop?Payload.order_id=A17',
      '/api/events/app/shop?payload_order_id=A17',
      '/api/events/app/shop?evnet_type=order_created',
      '/api/events/app/shop?event_type=',
      '/query/partner/p1?form=2030-01-01T00:00:00Z',
      '/api/statistics/shop?time_periode=hourly',
      '/api/applications?limt=1',
    ]) {
      const misspelled = await get(url);
      expect([misspelled.statusCode, misspelled.json().code], url).toEqual([400, 'request.invalid']);
    }
    expect((await get('/api/events/app/shop?payload_order_id=A17')).json().errors).toEqual([
      { path: 'querystring.payload_order_id', message: 'is not a parameter of this route (misspelled?)' },
    ]);
  });
});
