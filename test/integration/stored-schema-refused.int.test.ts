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

it('parks nothing under a stored schema that never ends on a value, judging each item by its own schema', async () => {
  const running = (intake = await startTestIntake());
  const ingest = async (partnerId: string, eventType: string, payload: object) => {
    const response = await running.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: auth,
      payload: { partner_id: partnerId, event_type: eventType, payload },
    });
    expect(response.statusCode).toBe(201);
    return response.json().id as string;
  };
  const put = (url: string, payload: object) => running.app.inject({ method: 'PUT', url, headers: auth, payload });
  // Saved before such references were refused: `#/` sends ajv back to the root (a stack overflow parked every item).
  expect((await put('/api/schemas/endless', { schema: { anyOf: [{ $ref: '#/' }] } })).statusCode).toBe(400);
  await running.store.append({
    streamId: schemaStreamId({ eventType: 'endless', partnerId: null }),
    events: [
      {
        type: 'SchemaRegistered',
        data: {
          event_type: 'endless',
          partner_id: null,
          version: 1,
          schema: { anyOf: [{ $ref: '#/' }] },
          registered_at: new Date().toISOString(),
        },
      },
    ],
    expectedVersion: 'no_stream',
  });
  // Two schemas whose compiled checks were cached under one key: `a|b` of every source, `a` of source `b|`.
  expect((await put('/api/schemas/a%7Cb', { schema: { type: 'object', required: ['x'] } })).statusCode).toBe(200);
  expect((await put('/api/schemas/a', { partner_id: 'b|', schema: { type: 'object', required: ['y'] } })).statusCode).toBe(200);
  const endless = await ingest('p1', 'endless', { n: 1 });
  const first = await ingest('zz', 'a|b', { x: 1 });
  const second = await ingest('b|', 'a', { y: 1 });
  await running.subscriptions.caughtUp();
  const status = async (id: string) => (await running.app.inject({ url: `/query/${id}`, headers: auth })).json().status as string;
  expect([await status(endless), await status(first), await status(second)]).toEqual(['invalid', 'processed', 'processed']);
  expect((await running.subscriptions.status()).every((s) => s.parked === 0)).toBe(true);
});
