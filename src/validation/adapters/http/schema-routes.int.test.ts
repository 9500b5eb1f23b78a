import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, type TestIntake } from '../../../../test/support/embedded-intake.js';
import { backends, everyPage, expectCursorRefused, startIntakeOn } from '../../../../test/support/paging.js';
import { MAX_PAGE_BYTES } from '../../../shared/pagination.js';

type Listed = { event_type: string; partner_id: string | null; version: number; schema: { title?: string } };

describe.each(backends)('GET /api/schemas on %s', (backend) => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn(backend);
  });
  afterAll(() => intake.dispose());

  const put = (eventType: string, title: string, partnerId?: string) =>
    intake.app.inject({
      method: 'PUT',
      url: `/api/schemas/${eventType}`,
      headers: auth,
      payload: { schema: { type: 'object', title }, ...(partnerId ? { partner_id: partnerId } : {}) },
    });

  it('walks the schemas in force by event type then source, each once at its newest version', async () => {
    // Registered out of order, some in several versions, some for one source only, one removed.
    for (const [eventType, partnerId] of [['e4'], ['e1'], ['e3', 'p2'], ['e3'], ['e0'], ['e3', 'p1'], ['e2'], ['e5', 'p1']]) {
      expect((await put(eventType as string, 'v1', partnerId)).statusCode).toBe(200);
    }
    expect((await put('e1', 'v2')).statusCode).toBe(200);
    expect((await put('e3', 'v2', 'p1')).statusCode).toBe(200);
    expect((await intake.app.inject({ method: 'DELETE', url: '/api/schemas/e2', headers: auth })).statusCode).toBe(204);

    const { items, pages } = await everyPage<Listed>(intake, '/api/schemas', 2);
    expect(items.map((s) => [s.event_type, s.partner_id, s.schema.title])).toEqual([
      ['e0', null, 'v1'],
      ['e1', null, 'v2'],
      ['e3', null, 'v1'],
      ['e3', 'p1', 'v2'],
      ['e3', 'p2', 'v1'],
      ['e4', null, 'v1'],
      ['e5', 'p1', 'v1'],
    ]);
    expect(pages).toBe(4);
    expect((await intake.app.inject({ method: 'GET', url: '/api/schemas', headers: auth })).json()).toMatchObject({ next_cursor: null });
    await expectCursorRefused(intake, '/api/schemas');
  });

  it('takes changes to one schema sent at once one after the other: every PUT a version, one DELETE and 404s', async () => {
    const puts = await Promise.all(Array.from({ length: 20 }, (_, i) => put('race', `v${i}`)));
    expect(puts.map((r) => r.statusCode)).toEqual(Array(20).fill(200));
    expect(puts.map((r) => r.json<{ version: number }>().version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const removals = await Promise.all(
      Array.from({ length: 10 }, () => intake.app.inject({ method: 'DELETE', url: '/api/schemas/race', headers: auth })),
    );
    expect(removals.map((r) => r.statusCode).sort()).toEqual([204, ...Array(9).fill(404)]);
  });

  it(`stops a page before the schema that would take it past ${MAX_PAGE_BYTES / (1024 * 1024)} MB, whatever the limit`, async () => {
    // Schemas of about 63 KB (the most is 64 KB): 70 of them weigh more than a page may.
    const description = 'd'.repeat(63 * 1024);
    const types = Array.from({ length: 70 }, (_, i) => `big${String(i).padStart(2, '0')}`);
    for (const eventType of types) {
      const response = await intake.app.inject({
        method: 'PUT',
        url: `/api/schemas/${eventType}`,
        headers: auth,
        payload: { schema: { type: 'object', description } },
      });
      expect(response.statusCode, response.body).toBe(200);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/api/schemas?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const response = await intake.app.inject({ method: 'GET', url, headers: auth });
      expect(response.statusCode).toBe(200);
      expect(response.body.length).toBeLessThan(MAX_PAGE_BYTES + 64 * 1024);
      const page = response.json() as { items: Listed[]; next_cursor: string | null };
      seen.push(...page.items.map((schema) => schema.event_type));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(seen.filter((type) => type.startsWith('big'))).toEqual(types);
    expect(pages).toBe(2);
  });
});

describe.each(backends)('PUT /api/schemas/{event_type} on %s', (backend) => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn(backend);
  });
  afterAll(() => intake.dispose());

  const put = (eventType: string, schema: object) =>
    intake.app.inject({ method: 'PUT', url: `/api/schemas/${eventType}`, headers: auth, payload: { schema } });

  it('answers 400 invalid-schema naming draft 2020-12 for a $schema of another draft or none known, and stores nothing (it answered 500)', async () => {
    for (const [eventType, uri] of [
      ['draft04', 'http://json-schema.org/draft-04/schema#'],
      ['draft201909', 'https://json-schema.org/draft/2019-09/schema'],
      ['bogus', 'bogus'],
    ] as const) {
      const response = await put(eventType, { $schema: uri, type: 'object' });
      expect(response.statusCode, response.body).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json()).toMatchObject({
        status: 400,
        code: 'validation.invalid-schema',
        detail: expect.stringContaining('only JSON Schema draft 2020-12'),
        errors: [{ path: 'schema.$schema' }],
      });
      expect((await intake.app.inject({ method: 'GET', url: `/api/schemas/${eventType}`, headers: auth })).statusCode).toBe(404);
    }
    const accepted = await put('draft202012', { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object' });
    expect(accepted.statusCode, accepted.body).toBe(200);
  });

  it('answers 400 invalid-schema naming the unknown keywords of a schema (a misspelt `required` let every item through)', async () => {
    const response = await put('ev1', { type: 'object', requird: ['x'], 'x-owner': 'team-a', title: 'Event' });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json()).toMatchObject({
      code: 'validation.invalid-schema',
      detail: expect.stringContaining('unknown keywords "requird"'),
      errors: [{ path: 'schema', message: expect.stringContaining('"requird"') }],
    });
    expect((await intake.app.inject({ method: 'GET', url: '/api/schemas/ev1', headers: auth })).statusCode).toBe(404);
  });
});

describe('PUT /api/schemas/{event_type} with the source in the query', () => {
  let intake: TestIntake;
  beforeAll(async () => {
    intake = await startIntakeOn('SQLite');
  });
  afterAll(() => intake.dispose());

  it('registers the schema for that source, as GET and DELETE read it (it went to every source), and refuses two sources', async () => {
    const put = (url: string, payload: object) => intake.app.inject({ method: 'PUT', url, headers: auth, payload });
    const registered = await put('/api/schemas/qs?partner_id=shop', { schema: { type: 'object', required: ['only_shop'] } });
    expect(registered.statusCode, registered.body).toBe(200);
    expect(registered.json()).toMatchObject({ event_type: 'qs', partner_id: 'shop', version: 1 });
    expect((await intake.app.inject({ url: '/api/schemas/qs?partner_id=shop', headers: auth })).statusCode).toBe(200);
    expect((await intake.app.inject({ url: '/api/schemas/qs', headers: auth })).statusCode).toBe(404);
    const twice = await put('/api/schemas/qs?partner_id=shop', { partner_id: 'blog', schema: { type: 'object' } });
    expect([twice.statusCode, twice.json().code]).toEqual([400, 'request.invalid']);
    expect((await intake.app.inject({ url: '/api/schemas/qs?partner_id=blog', headers: auth })).statusCode).toBe(404);
  });

  it('keeps type `a@b` for every source apart from type `a` of source `b`', async () => {
    const put = (url: string) => intake.app.inject({ method: 'PUT', url, headers: auth, payload: { schema: { type: 'object' } } });
    expect((await put('/api/schemas/at?partner_id=b')).json()).toMatchObject({ event_type: 'at', partner_id: 'b', version: 1 });
    const remove = (url: string) => intake.app.inject({ method: 'DELETE', url, headers: auth });
    expect((await remove('/api/schemas/at%40b')).statusCode).toBe(404);
    expect((await put('/api/schemas/at%40b')).json()).toMatchObject({ event_type: 'at@b', partner_id: null, version: 1 });
    expect((await remove('/api/schemas/at%40b')).statusCode).toBe(204);
    expect((await intake.app.inject({ url: '/api/schemas/at?partner_id=b', headers: auth })).json()).toMatchObject({ version: 1 });
    expect((await remove('/api/schemas/at%40b')).statusCode).toBe(404);
  });
});
