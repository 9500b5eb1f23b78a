import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';

let intake: TestIntake;
beforeAll(async () => {
  intake = await startTestIntake();
  await intake.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { name: 'Shop', app_id: 'shop' } });
});
afterAll(() => intake.dispose());

describe('POST /api/applications/{app_id}/keys', () => {
  it('issues an unnamed key for a request with no body at all (curl -X POST)', async () => {
    const response = await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ app_id: 'shop', name: null, key: expect.stringMatching(/^wk_/) });
  });

  it('takes a name when given one, and still refuses a body of the wrong shape', async () => {
    const named = await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth, payload: { name: 'web' } });
    expect(named.statusCode).toBe(201);
    expect(named.json().name).toBe('web');
    const wrong = await intake.app.inject({ method: 'POST', url: '/api/applications/shop/keys', headers: auth, payload: { name: 42 } });
    expect(wrong.statusCode).toBe(400);
    const keys = await intake.app.inject({ method: 'GET', url: '/api/applications/shop/keys', headers: auth });
    expect(keys.json().items).toHaveLength(2);
  });
});
