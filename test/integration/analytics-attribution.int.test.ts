import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { basic, createSource } from '../support/analytics-source.js';

let intake: TestIntake;
let writeKey: string;

const send = async (batch: object[]) => {
  const response = await intake.app.inject({
    method: 'POST',
    url: '/v1/batch',
    headers: { ...basic(writeKey), 'content-type': 'application/json' },
    payload: { batch },
  });
  expect(response.statusCode).toBe(200);
  return (response.json().receipts as Array<{ event_id: string }>).map((r) => r.event_id);
};
const get = async (url: string) => {
  const response = await intake.app.inject({ method: 'GET', url, headers: auth });
  return { status: response.statusCode, body: response.json() };
};

beforeAll(async () => {
  intake = await startTestIntake();
  writeKey = (await createSource(intake, 'shop')).writeKey;
});
afterAll(async () => intake.dispose());

describe('attribution of standard SDK traffic', () => {
  it('turns utm campaigns and outside referrers into touches, and Order Completed into a conversion under the four models', async () => {
    const page = (at: string, context: object) => ({ type: 'page', anonymousId: 'anon-7', userId: 'u7', timestamp: at, context });
    const [, , , orderId] = await send([
      page('2026-11-20T10:00:00.000Z', {
        campaign: { name: 'black-friday', source: 'newsletter', medium: 'email' },
        page: { url: 'https://shop.example/' },
      }),
      page('2026-11-21T10:00:00.000Z', { page: { url: 'https://shop.example/item', referrer: 'https://blog.example/review' } }),
      // An internal navigation is no touch.
      page('2026-11-21T10:05:00.000Z', { page: { url: 'https://shop.example/cart', referrer: 'https://shop.example/item' } }),
      {
        type: 'track',
        userId: 'u7',
        event: 'Order Completed',
        properties: { revenue: 90, currency: 'EUR' },
        timestamp: '2026-11-21T10:10:00.000Z',
      },
      // Not configured as a conversion, and carrying no value: neither touch nor conversion.
      { type: 'track', userId: 'u7', event: 'Cart Viewed', timestamp: '2026-11-21T10:06:00.000Z' },
    ]);
    await intake.subscriptions.caughtUp();

    const conversion = await get(`/api/v1/attribution/conversions/${orderId}`);
    expect(conversion.status).toBe(200);
    expect(conversion.body).toMatchObject({ app_id: 'shop', visitor_id: 'u7', value: 90 });
    const credited = (model: string) =>
      Object.fromEntries(
        (conversion.body.credits[model] as Array<{ campaign_id: string; value: number }>).map((c) => [c.campaign_id, c.value]),
      );
    expect(credited('first_touch')).toEqual({ 'black-friday': 90 });
    expect(credited('last_touch')).toEqual({ referral: 90 });
    expect(credited('linear')).toEqual({ 'black-friday': 45, referral: 45 });
    expect(Object.keys(credited('position_based')).sort()).toEqual(['black-friday', 'referral']);

    const journey = await get('/api/v1/attribution/visitors/u7?app_id=shop');
    expect(journey.status).toBe(200);
    expect(journey.body).toMatchObject({ app_id: 'shop', visitor_id: 'u7', conversions: 1 });
    // The user of the application is not the tracking API's visitor of the same id.
    expect((await get('/api/v1/attribution/visitors/u7')).status).toBe(404);
    const partner = await get('/api/v1/attribution/partners/newsletter');
    expect(partner.status).toBe(200);
    expect((await get('/api/v1/attribution/partners/blog.example')).status).toBe(200);
    expect((await get('/api/v1/attribution/partners/shop.example')).status).toBe(404);
  });

  it("credits an order of the last user of a chain of aliases from the first one's campaign visit, the later alias sent first", async () => {
    await send([
      {
        type: 'page',
        userId: 'chain-1',
        timestamp: '2026-11-10T10:00:00.000Z',
        context: { campaign: { name: 'spring-sale', source: 'newsletter' } },
      },
    ]);
    await send([{ type: 'alias', userId: 'chain-3', previousId: 'chain-2', timestamp: '2026-11-12T10:00:00.000Z' }]);
    const [orderId] = await send([
      { type: 'track', userId: 'chain-3', event: 'Order Completed', properties: { revenue: 50 }, timestamp: '2026-11-13T10:00:00.000Z' },
    ]);
    await intake.subscriptions.caughtUp();
    expect((await get(`/api/v1/attribution/conversions/${orderId}`)).body.credits.first_touch).toEqual([]);
    // chain-2's own tie comes last: it brings chain-1's visit to chain-3's order.
    await send([{ type: 'alias', userId: 'chain-2', previousId: 'chain-1', timestamp: '2026-11-11T10:00:00.000Z' }]);
    await intake.subscriptions.caughtUp();

    const conversion = await get(`/api/v1/attribution/conversions/${orderId}`);
    expect(conversion.body.credits.first_touch).toEqual([{ partner_id: 'newsletter', campaign_id: 'spring-sale', share: 1, value: 50 }]);
    const journey = await get('/api/v1/attribution/visitors/chain-3?app_id=shop');
    expect(journey.body).toMatchObject({ anonymous_ids: ['chain-1', 'chain-2'], conversions: 1 });
    expect(journey.body.first_touch).toMatchObject({ visitor_id: 'chain-1', campaign_id: 'spring-sale' });
  });
});
