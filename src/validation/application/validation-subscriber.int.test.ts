import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminCall, startTestIntake, type TestIntake } from '../../../test/support/embedded-intake.js';

describe('validation verdicts', () => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startTestIntake();
  });
  afterAll(() => intake.dispose());

  const verdictOf = async (partnerId: string, payload: object) => {
    const ingested = await adminCall(intake, 'POST', '/ingest', { partner_id: partnerId, event_type: 'judged', payload });
    expect(ingested.statusCode, ingested.body).toBe(201);
    const id = (ingested.json() as { id: string }).id;
    return vi.waitFor(async () => {
      const events = await intake.store.readStream(`data-${id}`);
      const verdict = events.find((event) => event.type === 'DataValidated' || event.type === 'DataInvalid');
      if (!verdict) throw new Error('no verdict yet');
      return { type: verdict.type, data: verdict.data as Record<string, unknown> };
    });
  };

  it('say which schema judged: a source’s own (its partner id) or the one for every source (null), each numbered apart', async () => {
    const everySource = { schema: { type: 'object', required: ['total'] } };
    expect((await adminCall(intake, 'PUT', '/api/schemas/judged', everySource)).statusCode).toBe(200);
    const ownSchema = { schema: { type: 'object', required: ['currency'] } };
    expect((await adminCall(intake, 'PUT', '/api/schemas/judged?partner_id=p2', ownSchema)).statusCode).toBe(200);

    expect(await verdictOf('p1', { total: 1 })).toMatchObject({
      type: 'DataValidated',
      data: { schema_version: 1, schema_partner_id: null },
    });
    expect(await verdictOf('p2', { currency: 'EUR' })).toMatchObject({
      type: 'DataValidated',
      data: { schema_version: 1, schema_partner_id: 'p2' },
    });
    expect(await verdictOf('p2', { total: 1 })).toMatchObject({
      type: 'DataInvalid',
      data: { schema_version: 1, schema_partner_id: 'p2', errors: [{ path: 'payload.currency' }] },
    });
  });
});
