import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { backends, everyPage, expectCursorRefused, startIntakeOn } from '../../../../test/support/paging.js';

let intake: TestIntake;
beforeAll(async () => {
  intake = await startTestIntake();
  await intake.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { name: 'Shop', app_id: 'shop' } });
});
afterAll(() => intake.dispose());

describe('ids of new applications', () => {
  const post = (url: string, payload: object) => intake.app.inject({ method: 'POST', url, headers: auth, payload });

  it('refuses one no URL path can hold, or one a header would trim, whether created or first written as, storing nothing', async () => {
    const created = await post('/api/applications', { name: 'dots', app_id: '..' });
    expect(created.statusCode).toBe(400);
    expect(created.json()).toMatchObject({
      code: 'applications.invalid',
      errors: [{ path: 'app_id', message: expect.stringMatching(/"\."/) }],
    });
    const written = await post('/ingest', { partner_id: ' spaced', payload: { n: 1 } });
    expect(written.statusCode).toBe(400);
    expect(written.json().errors).toEqual([{ path: 'partner_id', message: 'must not begin or end with whitespace' }]);
    const apps = await intake.app.inject({ method: 'GET', url: '/api/applications', headers: auth });
    expect(apps.json().items.map((app: { app_id: string }) => app.app_id)).toEqual(['shop']);
    const items = await intake.app.inject({ method: 'GET', url: '/ingest/all', headers: auth });
    expect(items.json().items).toEqual([]);
  });

  it('pages past an id of 255 four-byte characters, whose cursor is longer than 1,024 characters', async () => {
    const longest = '\u{1F600}'.repeat(255);
    for (const app_id of [longest, '\u{1F601}']) expect((await post('/api/applications', { name: 'wide', app_id })).statusCode).toBe(201);
    const { items } = await everyPage<{ app_id: string }>(intake, '/api/applications', 1);
    expect(items.map((app) => app.app_id)).toEqual(expect.arrayContaining([longest, '\u{1F601}']));
  });

  it('keeps serving an application an earlier version created with such an id', async () => {
    await intake.store.append({
      streamId: 'application-\u0085old',
      events: [{ type: 'ApplicationCreated', data: { app_id: '\u0085old', name: 'old', created_at: '2026-01-01T00:00:00.000Z' } }],
      expectedVersion: 'no_stream',
    });
    const path = encodeURIComponent('\u0085old');
    expect((await post(`/api/ingest/${path}`, { event_type: 'kept', payload: {} })).statusCode).toBe(201);
    expect((await post(`/api/applications/${path}/keys`, {})).statusCode).toBe(201);
  });
});

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

describe('PATCH /api/applications/{app_id}', () => {
  it('renames an application made on the fly, keeps its keys working, and refuses unknown ids and empty names', async () => {
    const ingested = await intake.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: auth,
      payload: { partner_id: 'partner-7', event_type: 'signup', payload: {} },
    });
    expect(ingested.statusCode).toBe(201);
    const get = () => intake.app.inject({ method: 'GET', url: '/api/applications/partner-7', headers: auth });
    const before = (await get()).json();
    expect(before.name).toBe('partner-7');
    const key = (await intake.app.inject({ method: 'POST', url: '/api/applications/partner-7/keys', headers: auth })).json().key as string;

    const patch = (appId: string, payload: object) =>
      intake.app.inject({ method: 'PATCH', url: `/api/applications/${appId}`, headers: auth, payload });
    const renamed = await patch('partner-7', { name: '  Partner Seven ' });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json()).toEqual({ app_id: 'partner-7', name: 'Partner Seven', created_at: before.created_at });
    expect((await get()).json().name).toBe('Partner Seven');
    const written = await intake.app.inject({
      method: 'POST',
      url: '/api/ingest/partner-7',
      headers: { authorization: `Bearer ${key}` },
      payload: { event_type: 'signup', payload: {} },
    });
    expect(written.statusCode).toBe(201);

    expect((await patch('nobody', { name: 'X' })).statusCode).toBe(404);
    expect((await patch('partner-7', { name: '   ' })).statusCode).toBe(400);
    expect((await patch('partner-7', {})).statusCode).toBe(400);
    expect((await get()).json().name).toBe('Partner Seven');
  });
});

describe.each(backends)('changes to one application at once on %s', (backend) => {
  let on: TestIntake;
  beforeAll(async () => {
    on = await startIntakeOn(backend);
    await on.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { name: 'Busy', app_id: 'busy' } });
  }, 60_000);
  afterAll(() => on.dispose());
  const call = (method: 'POST' | 'DELETE' | 'PATCH', url: string, payload?: object) =>
    on.app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) });

  it('issue every key asked for, answer a repeated revoke as a sequential one would, and one of two creates of an id', async () => {
    // Enough at once that rounds of deciding again alone would give up on some (they did, with a 409).
    const issued = await Promise.all(Array.from({ length: 80 }, (_, i) => call('POST', '/api/applications/busy/keys', { name: `k${i}` })));
    expect(
      issued.map((r) => r.statusCode),
      issued.find((r) => r.statusCode !== 201)?.body,
    ).toEqual(Array(80).fill(201));
    const revokedAll = await Promise.all(issued.slice(1).map((r) => call('DELETE', `/api/applications/busy/keys/${r.json().key_id}`)));
    expect(
      revokedAll.map((r) => r.statusCode),
      revokedAll.find((r) => r.statusCode !== 204)?.body,
    ).toEqual(Array(79).fill(204));
    const keys = await on.app.inject({ method: 'GET', url: '/api/applications/busy/keys?limit=100', headers: auth });
    expect(keys.json().items.filter((k: { revoked_at: string | null }) => k.revoked_at !== null)).toHaveLength(79);
    const keyId = issued[0]?.json().key_id as string;
    const [revoked, again, renamed] = await Promise.all([
      call('DELETE', `/api/applications/busy/keys/${keyId}`),
      call('DELETE', `/api/applications/busy/keys/${keyId}`),
      call('PATCH', '/api/applications/busy', { name: 'Busier' }),
    ]);
    expect([revoked?.statusCode, again?.statusCode].sort()).toEqual([204, 404]);
    expect(renamed?.statusCode).toBe(200);
    const created = await Promise.all([1, 2].map(() => call('POST', '/api/applications', { name: 'Twin', app_id: 'twin' })));
    expect(created.map((r) => [r.statusCode, r.json().code]).sort()).toEqual([
      [201, undefined],
      [409, 'applications.already-exists'],
    ]);
  });
});
