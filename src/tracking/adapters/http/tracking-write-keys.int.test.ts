import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';

let intake: TestIntake;
let shopKey: string;

const event = (partnerId: unknown) => ({
  partner_id: partnerId,
  campaign_id: 'spring',
  visitor_id: 'v-1',
  interaction_type: 'click',
  source_url: 'https://blog.example.com/',
  destination_url: 'https://shop.example.com/',
});
const post = (url: string, token: string, body: object) =>
  intake.app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: body,
  });

beforeAll(async () => {
  intake = await startTestIntake();
  for (const app_id of ['shop', 'blog']) {
    await intake.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { name: app_id, app_id } });
  }
  shopKey = (await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth })).json().key;
});
afterAll(() => intake.dispose());

describe('tracking events sent with a write key', () => {
  it("records events whose partner_id is the key's application", async () => {
    const response = await post('/api/v1/tracking/events', shopKey, event('shop'));
    expect(response.statusCode).toBe(201);
    expect(response.json().message).toBe('Tracking event recorded successfully');
  });

  it('refuses an event for another application with 403, and a batch holding one, storing nothing', async () => {
    const single = await post('/api/v1/tracking/events', shopKey, event('blog'));
    expect(single.statusCode).toBe(403);
    expect(single.json().detail).toMatch(/belongs to application shop and cannot write as blog/);
    const batch = await post('/api/v1/tracking/events/batch', shopKey, { events: [event('shop'), event('blog')] });
    expect(batch.statusCode).toBe(403);
    const stored = await intake.app.inject({ method: 'GET', url: '/api/v1/tracking/health' });
    expect(stored.statusCode).toBe(200);
  });

  it('leaves a missing partner_id to validation (400), and reads nothing', async () => {
    const response = await post('/api/v1/tracking/events', shopKey, event(undefined));
    expect(response.statusCode).toBe(400);
    expect(response.json().errors).toContainEqual({ path: 'partner_id', message: 'is required' });
    const id = (await post('/api/v1/tracking/events', shopKey, event('shop'))).json().tracking_event_id;
    const read = await intake.app.inject({
      method: 'GET',
      url: `/api/v1/tracking/events/${id}`,
      headers: { authorization: `Bearer ${shopKey}` },
    });
    expect(read.statusCode).toBe(403);
  });

  it('serves the tracking health without any token', async () => {
    const response = await intake.app.inject({ method: 'GET', url: '/api/v1/tracking/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json().status).toBe('ok');
  });
});
