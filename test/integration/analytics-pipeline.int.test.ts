import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { basic, createSource } from '../support/analytics-source.js';

let intake: TestIntake;
let writeKey: string;
const admin = { ...auth, 'content-type': 'application/json' };

beforeAll(async () => {
  intake = await startTestIntake();
  writeKey = (await createSource(intake, 'shop')).writeKey;
});
afterAll(async () => intake.dispose());

describe('tracking-API messages flow through the whole pipeline', () => {
  it('are validated by the event type schema, routed by conditions on properties, and counted in statistics', async () => {
    const schema = await intake.app.inject({
      method: 'PUT',
      url: `/api/schemas/${encodeURIComponent('Order Completed')}`,
      headers: admin,
      payload: {
        schema: {
          type: 'object',
          required: ['properties'],
          properties: { properties: { type: 'object', required: ['revenue'], properties: { revenue: { type: 'number' } } } },
        },
      },
    });
    expect(schema.statusCode).toBe(200);
    const rule = await intake.app.inject({
      method: 'POST',
      url: '/api/routing-rules',
      headers: admin,
      payload: {
        app_id: 'shop',
        rule_name: 'big orders',
        event_type_filter: 'Order Completed',
        condition: { 'properties.revenue': { $gte: 100 } },
        destination_type: 'database',
        destination_config: { table: 'big_orders' },
      },
    });
    expect(rule.statusCode).toBe(201);

    const sent = await intake.app.inject({
      method: 'POST',
      url: '/v1/batch',
      headers: { ...basic(writeKey), 'content-type': 'application/json' },
      payload: {
        batch: [
          { type: 'track', event: 'Order Completed', userId: 'u1', properties: { revenue: 150 } },
          { type: 'track', event: 'Order Completed', userId: 'u1', properties: { revenue: 20 } },
          { type: 'track', event: 'Order Completed', userId: 'u1', properties: { revenue: 'lots' } },
        ],
      },
    });
    expect(sent.statusCode).toBe(200);
    const [big, small, invalid] = (sent.json().receipts as Array<{ event_id: string }>).map((r) => r.event_id);
    await intake.subscriptions.caughtUp();

    const statusOf = async (id: string | undefined) =>
      (await intake.app.inject({ method: 'GET', url: `/query/${id}`, headers: auth })).json();
    expect((await statusOf(big)).status).toBe('processed');
    expect((await statusOf(small)).status).toBe('processed');
    expect((await statusOf(invalid)).status).toBe('invalid');
    expect((await statusOf(big)).routing.deliveries).toHaveLength(1);
    expect((await statusOf(small)).routing.deliveries).toHaveLength(0);

    // Deliveries run after the answer: wait for the row.
    const archived = () =>
      intake.store.transaction(async (tx) =>
        (await sql<{ event_id: string }>`SELECT event_id FROM big_orders`.execute(tx.db).catch(() => ({ rows: [] }))).rows.map(
          (r) => r.event_id,
        ),
      );
    await expect.poll(archived, { timeout: 10_000 }).toEqual([big]);

    const stats = await intake.app.inject({
      method: 'GET',
      url: `/api/statistics/shop?time_period=daily&event_type=${encodeURIComponent('Order Completed')}`,
      headers: auth,
    });
    expect(stats.statusCode).toBe(200);
    expect(JSON.stringify(stats.json())).toMatch(/"total_events":3/);
  });
});
