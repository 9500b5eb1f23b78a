import { afterEach, expect, it } from 'vitest';
import { schemaStreamId } from '../../src/validation/domain/schema-registry.js';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

let intake: TestIntake | undefined;
afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

it('judges items invalid, with the reason, under a stored schema that today’s limits refuse, and parks nothing', async () => {
  const running = (intake = await startTestIntake());
  // Registered before schemas that refer back to themselves in place were refused: saved today, it gets a 400.
  const schema = { anyOf: [{ $ref: '#' }, { type: 'object' }] };
  const refused = await running.app.inject({ method: 'PUT', url: '/api/schemas/loop', headers: auth, payload: { schema } });
  expect(refused.statusCode).toBe(400);
  await running.store.append({
    streamId: schemaStreamId({ eventType: 'loop', partnerId: null }),
    events: [
      {
        type: 'SchemaRegistered',
        data: { event_type: 'loop', partner_id: null, version: 1, schema, registered_at: new Date().toISOString() },
      },
    ],
    expectedVersion: 'no_stream',
  });

  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const response = await running.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: auth,
      payload: { partner_id: 'p1', event_type: 'loop', payload: { n: i } },
    });
    expect(response.statusCode).toBe(201);
    ids.push(response.json().id);
  }
  await running.subscriptions.caughtUp();
  for (const id of ids) {
    const item = (await running.app.inject({ url: `/query/${id}`, headers: auth })).json();
    expect(item.status).toBe('invalid');
    expect(JSON.stringify(item.validation)).toContain('the schema in force cannot be used');
  }
  expect((await running.subscriptions.status()).every((s) => s.parked === 0)).toBe(true);
});
