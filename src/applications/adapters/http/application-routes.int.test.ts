import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { backends, everyPage, expectCursorRefused, startIntakeOn } from '../../../../test/support/paging.js';

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

describe.each(backends)('GET /api/applications/{app_id}/keys on %s', (backend) => {
  let paged: TestIntake;
  beforeAll(async () => {
    paged = await startIntakeOn(backend);
  });
  afterAll(() => paged.dispose());

  it('walks the keys oldest first, each once, and refuses a cursor it never gave', async () => {
    const post = (url: string, payload: object) => paged.app.inject({ method: 'POST', url, headers: auth, payload });
    for (const app_id of ['shop', 'other']) expect((await post('/api/applications', { name: app_id, app_id })).statusCode).toBe(201);
    const issued: Array<{ key_id: string; created_at: string }> = [];
    for (let i = 0; i < 11; i++) issued.push((await post('/api/applications/shop/keys', { name: `k${i}` })).json());
    await post('/api/applications/other/keys', {});
    // Keys issued in the same millisecond come by id.
    const expected = [...issued].sort((a, b) => a.created_at.localeCompare(b.created_at) || (a.key_id < b.key_id ? -1 : 1));

    const { items, pages } = await everyPage<{ key_id: string }>(paged, '/api/applications/shop/keys', 4);
    expect(items.map((k) => k.key_id)).toEqual(expected.map((k) => k.key_id));
    expect(pages).toBe(3);
    await expectCursorRefused(paged, '/api/applications/shop/keys');
    expect((await paged.app.inject({ method: 'GET', url: '/api/applications/nobody/keys', headers: auth })).statusCode).toBe(404);
  });
});
