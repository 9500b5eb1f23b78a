import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { createSource } from '../support/analytics-source.js';

let intake: TestIntake;
let baseUrl: string;

beforeAll(async () => {
  intake = await startTestIntake();
  baseUrl = await intake.app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => intake.dispose());

const request = async (method: string, path: string, token: string, body?: object) => {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};
const admin = (method: string, path: string, body?: object) => request(method, path, ADMIN_TOKEN, body);

/** Sends SDK messages as the application of the write key; answers their item ids. */
async function sdk(writeKey: string, batch: object[]): Promise<string[]> {
  const response = await request('POST', '/v1/batch', writeKey, { batch });
  expect(response.status).toBe(200);
  return (response.body.receipts as Array<{ event_id: string }>).map((receipt) => receipt.event_id);
}

const campaignPage = (userId: string, campaign: string, at: string) => ({
  type: 'page',
  userId,
  timestamp: at,
  context: { campaign: { name: campaign, source: 'newsletter' }, page: { url: 'https://shop.example/' } },
});
const order = (userId: string, revenue: number, at: string) => ({
  type: 'track',
  userId,
  event: 'Order Completed',
  properties: { revenue },
  timestamp: at,
});

type Credits = Record<string, Array<{ campaign_id: string; value: number }>>;
const creditedCampaigns = async (conversionId: string, model = 'last_touch') => {
  const conversion = await admin('GET', `/api/v1/attribution/conversions/${conversionId}`);
  expect(conversion.status).toBe(200);
  return (conversion.body.credits as Credits)[model]?.map((credit) => credit.campaign_id);
};

describe('attribution keeps every application and the partner tracking API apart', () => {
  it('never credits a conversion of one application to a touch of another, whatever ":" the ids hold', async () => {
    const ab = await createSource(intake, 'a:b');
    const a = await createSource(intake, 'a');
    // App "a:b", user "c" and app "a", user "b:c" once both read "a:b:c".
    await sdk(ab.writeKey, [campaignPage('c', 'colon-campaign', '2026-11-20T10:00:00.000Z')]);
    const [orderId] = await sdk(a.writeKey, [order('b:c', 40, '2026-11-21T10:00:00.000Z')]);
    await intake.subscriptions.caughtUp();

    expect(await creditedCampaigns(String(orderId))).toEqual([]);
    const conversion = await admin('GET', `/api/v1/attribution/conversions/${orderId}`);
    expect(conversion.body).toMatchObject({ app_id: 'a', visitor_id: 'b:c', value: 40 });

    // Each journey is read under its application; neither sees the other's.
    const touched = await admin('GET', `/api/v1/attribution/visitors/c?app_id=${encodeURIComponent('a:b')}`);
    expect(touched.status).toBe(200);
    expect(touched.body).toMatchObject({ app_id: 'a:b', visitor_id: 'c', conversions: 0 });
    expect((touched.body.touches as Array<{ campaign_id: string }>).map((t) => t.campaign_id)).toEqual(['colon-campaign']);
    const converted = await admin('GET', `/api/v1/attribution/visitors/${encodeURIComponent('b:c')}?app_id=a`);
    expect(converted.status).toBe(200);
    expect(converted.body).toMatchObject({ app_id: 'a', visitor_id: 'b:c', conversions: 1, first_touch: null, touches: [] });
    // Nor is either the tracking API's visitor "a:b:c".
    expect((await admin('GET', `/api/v1/attribution/visitors/${encodeURIComponent('a:b:c')}`)).status).toBe(404);
  });

  it("lets no tracking-API caller inject touches into an application's SDK visitors, nor the reverse", async () => {
    const shop = await createSource(intake, 'shop');
    const blog = await createSource(intake, 'blog');
    const [shopOrder] = await sdk(shop.writeKey, [order('u1', 90, '2026-11-21T10:00:00.000Z')]);
    // Blog's write key may record tracking events as partner "blog", for any visitor id it likes.
    const injected = await request('POST', '/api/v1/tracking/events', blog.writeKey, {
      partner_id: 'blog',
      campaign_id: 'injected',
      visitor_id: 'shop:u1',
      interaction_type: 'click',
      source_url: 'https://blog.example/',
      destination_url: 'https://shop.example/',
      occurred_at: '2026-11-20T10:00:00.000Z',
    });
    expect(injected.status).toBe(201);
    // And a partner conversion for visitor "shop:u1" takes nothing from shop's own touches.
    await sdk(shop.writeKey, [campaignPage('u2', 'shop-own', '2026-11-20T09:00:00.000Z')]);
    const partnerConversion = await admin('POST', '/api/v1/tracking/conversions', {
      visitor_id: 'shop:u2',
      value: 10,
      occurred_at: '2026-11-21T09:00:00.000Z',
    });
    expect(partnerConversion.status).toBe(201);
    await intake.subscriptions.caughtUp();

    expect(await creditedCampaigns(String(shopOrder))).toEqual([]);
    expect(await creditedCampaigns(String(partnerConversion.body.conversion_id))).toEqual([]);
    const campaign = await admin('GET', '/api/v1/attribution/campaigns/injected');
    expect(campaign.body).toMatchObject({ interactions: { click: 1 }, unique_visitors: 1, conversions: 0, attributed_value: 0 });

    // The tracking API's visitor "shop:u1" is read without app_id, and holds only what the partner sent.
    const partnerVisitor = await admin('GET', `/api/v1/attribution/visitors/${encodeURIComponent('shop:u1')}`);
    expect(partnerVisitor.status).toBe(200);
    expect(partnerVisitor.body).toMatchObject({ app_id: null, visitor_id: 'shop:u1', conversions: 0 });
    const sdkVisitor = await admin('GET', '/api/v1/attribution/visitors/u1?app_id=shop');
    expect(sdkVisitor.body).toMatchObject({ app_id: 'shop', visitor_id: 'u1', conversions: 1, first_touch: null });
  });
});
