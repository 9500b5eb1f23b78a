import { sql } from 'kysely';
import { UNKNOWN_KIND_FINGERPRINT } from '../sql/idempotency-table.js';
import { fingerprintOf } from '../../../shared/fingerprint.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auth, startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';

let intake: TestIntake;
beforeAll(async () => {
  intake = await startTestIntake({ BODY_LIMIT: '4096' });
});
afterAll(() => intake.dispose());

const post = (body: unknown, headers: Record<string, string> = auth) =>
  intake.app.inject({
    method: 'POST',
    url: '/ingest',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
const get = (url: string, headers: Record<string, string> = auth) => intake.app.inject({ method: 'GET', url, headers });

/** What ingestion stored: items and their receipts (the pipeline's own events keep arriving meanwhile). */
async function storedCount(): Promise<number> {
  const events = await intake.store.readAll({ after: 0, limit: 100_000 });
  return events.filter((e) => e.type === 'DataReceived' || e.type === 'DataIngested').length;
}

describe('POST /ingest', () => {
  it('stores the item and answers 201 with it; a GET right after finds it', async () => {
    const response = await post({
      partner_id: 'partner123',
      event_type: 'order_created',
      payload: { total: 99.99, items: [{ sku: 'a' }] },
    });
    expect(response.statusCode).toBe(201);
    const item = response.json();
    expect(item).toMatchObject({
      partner_id: 'partner123',
      event_type: 'order_created',
      payload: { total: 99.99, items: [{ sku: 'a' }] },
      status: 'ingested',
    });
    expect(item.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(new Date(item.received_at).toISOString()).toBe(item.received_at);
    expect(response.headers.location).toBe(`/ingest/${item.id}`);

    const fetched = await get(`/ingest/${item.id}`);
    expect(fetched.statusCode).toBe(200);
    // The pipeline runs meanwhile: the item may have moved on already.
    expect(fetched.json()).toEqual({ ...item, status: expect.stringMatching(/^(ingested|validated|processed)$/) });

    const stream = await intake.store.readStream(`data-${item.id}`);
    expect(stream.slice(0, 2).map((e) => e.type)).toEqual(['DataReceived', 'DataIngested']);
  });

  it('takes an Idempotency-Key as /api/ingest does: a retry answers the first item and stores nothing, another item is refused', async () => {
    const before = await storedCount();
    const body = { partner_id: 'keyed', event_type: 'order', payload: { total: 1 } };
    const first = await post(body, { ...auth, 'idempotency-key': 'ING-1' });
    expect(first.statusCode).toBe(201);
    const retry = await post(body, { ...auth, 'idempotency-key': 'ING-1' });
    expect([retry.statusCode, retry.headers['idempotent-replayed'], retry.json().id]).toEqual([201, 'true', first.json().id]);
    expect(retry.json()).toMatchObject({ partner_id: 'keyed', event_type: 'order', payload: { total: 1 } });
    const other = await post({ ...body, payload: { total: 2 } }, { ...auth, 'idempotency-key': 'ING-1' });
    expect([other.statusCode, other.json().code]).toEqual([422, 'ingestion.idempotency-key-reused']);
    expect((await get('/ingest/partner/keyed')).json().items).toHaveLength(1);
    expect((await storedCount()) - before).toBe(2);
  });

  it('takes event_type left out and "data", its default, as one request under a key, also against a record of a release before', async () => {
    const omitted = { partner_id: 'defaulted', payload: { a: 1 } };
    const spelled = { ...omitted, event_type: 'data' };
    for (const [key, first, second] of [
      ['DEF-1', omitted, spelled],
      ['DEF-2', spelled, omitted],
    ] as const) {
      const stored = await post(first, { ...auth, 'idempotency-key': key });
      expect(stored.statusCode).toBe(201);
      const retry = await post(second, { ...auth, 'idempotency-key': key });
      expect([retry.statusCode, retry.headers['idempotent-replayed'], retry.json().id]).toEqual([201, 'true', stored.json().id]);
    }
    // A release before fingerprinted the type as sent: null when it was left out.
    const old = await post(omitted, { ...auth, 'idempotency-key': 'DEF-3' });
    await intake.store.transaction((tx) =>
      sql`UPDATE ingest_idempotency SET fingerprint = ${fingerprintOf([null, omitted.payload])} WHERE idem_key = 'r:DEF-3'`.execute(tx.db),
    );
    const retry = await post(spelled, { ...auth, 'idempotency-key': 'DEF-3' });
    expect([retry.statusCode, retry.json().id]).toEqual([201, old.json().id]);
    const other = await post({ ...spelled, event_type: 'other' }, { ...auth, 'idempotency-key': 'DEF-3' });
    expect([other.statusCode, other.json().code]).toEqual([422, 'ingestion.idempotency-key-reused']);
    expect((await get('/ingest/partner/defaulted')).json().items).toHaveLength(3);
  });

  it('answers a retry of a request a release before key prefixes and fingerprints stored (it was stored again after the upgrade)', async () => {
    const body = { partner_id: 'upgraded', event_type: 'order', payload: { total: 1 } };
    const first = await post(body, { ...auth, 'idempotency-key': 'OLD-1' });
    expect(first.statusCode).toBe(201);
    // As that release wrote it, the key as sent, marked by the migration that added fingerprints.
    await intake.store.transaction(async (tx) => {
      await sql`UPDATE ingest_idempotency SET idem_key = 'OLD-1', fingerprint = ${UNKNOWN_KIND_FINGERPRINT} WHERE idem_key = 'r:OLD-1'`.execute(
        tx.db,
      );
    });
    const retry = await post(body, { ...auth, 'idempotency-key': 'OLD-1' });
    expect([retry.statusCode, retry.headers['idempotent-replayed'], retry.json().id]).toEqual([201, 'true', first.json().id]);
    expect((await get('/ingest/partner/upgraded')).json().items).toHaveLength(1);
  });

  it('answers a retry only once the first request’s commit is on disk', async () => {
    const durable = vi.spyOn(intake.store, 'durable');
    const body = { partner_id: 'synced', event_type: 'order', payload: { total: 1 } };
    expect((await post(body, { ...auth, 'idempotency-key': 'SYNC-1' })).statusCode).toBe(201);
    expect(durable).not.toHaveBeenCalled();
    const retry = await post(body, { ...auth, 'idempotency-key': 'SYNC-1' });
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(durable).toHaveBeenCalledTimes(1);
    durable.mockRestore();
  });

  it('names partner_id when a new partner id cannot become an application', async () => {
    const refused = await post({ partner_id: '..', payload: {} });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().errors.map((e: { path: string }) => e.path)).toEqual(['partner_id']);
  });

  it('holds a batch to BODY_LIMIT when that is lower than the batch’s own 1 MB', async () => {
    await intake.app.inject({ method: 'POST', url: '/api/applications', headers: auth, payload: { app_id: 'limits', name: 'limits' } });
    const batch = await intake.app.inject({
      method: 'POST',
      url: '/api/ingest/limits/batch',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: JSON.stringify({ events: [{ event_type: 'big', payload: { pad: 'x'.repeat(8000) } }] }),
    });
    expect(batch.statusCode).toBe(413);
  });

  it('defaults the event type to "data" and echoes a correlation id', async () => {
    const response = await post({ partner_id: 'p', payload: {} }, { ...auth, 'x-correlation-id': 'corr-42' });
    expect(response.json().event_type).toBe('data');
    expect(response.headers['x-correlation-id']).toBe('corr-42');
    const [, ingested] = await intake.store.readStream(`data-${response.json().id}`);
    expect((ingested?.data as { metadata: { correlation_id: string } }).metadata.correlation_id).toBe('corr-42');
  });

  it('keeps SQL-looking strings as plain data', async () => {
    const evil = "x'); DROP TABLE events; --";
    const response = await post({ partner_id: evil, payload: { q: "' OR 1=1 --" } });
    expect(response.statusCode).toBe(201);
    const listed = await get(`/ingest/partner/${encodeURIComponent(evil)}`);
    expect(listed.json().items).toHaveLength(1);
    expect(listed.json().items[0].payload).toEqual({ q: "' OR 1=1 --" });
  });
});

describe('bad input is rejected whole and stores nothing', () => {
  const cases: Array<[string, () => ReturnType<typeof post>, number, string]> = [
    ['malformed JSON', () => post('{"partner_id": "p",'), 400, 'request.malformed-json'],
    ['a missing partner_id', () => post({ payload: {} }), 400, 'request.invalid'],
    ['a numeric partner_id', () => post({ partner_id: 7, payload: {} }), 400, 'request.invalid'],
    ['an array payload', () => post({ partner_id: 'p', payload: [1] }), 400, 'request.invalid'],
    ['a string payload', () => post({ partner_id: 'p', payload: 'x' }), 400, 'request.invalid'],
    ['an invalid event type', () => post({ partner_id: 'p', event_type: 'tab\there', payload: {} }), 400, 'ingestion.invalid-item'],
    ['a __proto__ key', () => post('{"partner_id":"p","payload":{"__proto__":{"polluted":true}}}'), 400, 'request.forbidden-key'],
    [
      'a constructor.prototype key',
      () => post('{"partner_id":"p","payload":{"constructor":{"prototype":{"polluted":true}}}}'),
      400,
      'request.forbidden-key',
    ],
    ['a body over the limit', () => post({ partner_id: 'p', payload: { blob: 'x'.repeat(5000) } }), 413, 'request.body-too-large'],
    [
      'a non-JSON content type',
      () => intake.app.inject({ method: 'POST', url: '/ingest', headers: { ...auth, 'content-type': 'text/plain' }, payload: 'hi' }),
      415,
      'request.unsupported-media-type',
    ],
    ['no credentials', () => post({ partner_id: 'p', payload: {} }, {}), 401, 'auth.unauthorized'],
    ['a wrong token', () => post({ partner_id: 'p', payload: {} }, { authorization: 'Bearer nope' }), 401, 'auth.unauthorized'],
    [
      'a non-bearer scheme',
      () => post({ partner_id: 'p', payload: {} }, { authorization: 'Basic dXNlcjpwYXNz' }),
      401,
      'auth.unauthorized',
    ],
  ];

  it.each(cases)('%s', async (_name, send, status, code) => {
    const before = await storedCount();
    const response = await send();
    expect(response.statusCode).toBe(status);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = response.json();
    expect(problem).toMatchObject({ status, code, type: `urn:intake:problem:${code}` });
    expect(problem.detail.length).toBeGreaterThan(5);
    expect(await storedCount()).toBe(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('names the offending field in the problem', async () => {
    const problem = (await post({ payload: {} })).json();
    expect(problem.errors).toEqual([expect.objectContaining({ path: 'partner_id' })]);
  });

  it('asks for a bearer token with WWW-Authenticate', async () => {
    expect((await get('/ingest/all', {})).headers['www-authenticate']).toBe('Bearer');
  });
});

describe('GET /ingest/*', () => {
  it('answers 404 problem for an unknown item and for an unknown route', async () => {
    const missing = await get('/ingest/01a20f8a-0000-7000-8000-000000000000');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('ingestion.item-not-found');
    const route = await get('/nowhere');
    expect(route.statusCode).toBe(404);
    expect(route.json().code).toBe('route.not-found');
  });

  it('pages through a partner’s items with a keyset cursor, in arrival order', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await post({ partner_id: 'pager', payload: { i } })).json().id);
    await post({ partner_id: 'someone-else', payload: {} });
    const seen: string[] = [];
    let url = '/ingest/partner/pager?limit=3';
    for (;;) {
      const page = (await get(url)).json();
      seen.push(...page.items.map((item: { id: string }) => item.id));
      if (!page.next_cursor) break;
      url = `/ingest/partner/pager?limit=3&cursor=${page.next_cursor}`;
    }
    expect(seen).toEqual(ids);
  });

  it('lists all items across partners and bounds the page size', async () => {
    const all = (await get('/ingest/all?limit=1000')).json();
    expect(new Set(all.items.map((i: { partner_id: string }) => i.partner_id))).toContain('someone-else');
    expect((await get('/ingest/all?limit=1001')).statusCode).toBe(400);
    expect((await get('/ingest/all?limit=0')).statusCode).toBe(400);
    expect((await get('/ingest/all?cursor=not-a-cursor!')).json().code).toBe('pagination.invalid-cursor');
  });
});

describe('operations endpoints', () => {
  it('serves health without a token, and readiness with the database state', async () => {
    expect((await get('/health', {})).json()).toEqual({ status: 'ok' });
    const ready = await get('/health/ready', {});
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks.database.status).toBe('ok');
  });

  it('publishes an OpenAPI 3.1 document with the ingestion routes, Swagger UI and ReDoc', async () => {
    const doc = (await get('/openapi.json', {})).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/ingest', '/ingest/{id}', '/ingest/partner/{partner_id}', '/ingest/all']),
    );
    expect(doc.paths['/ingest'].post.requestBody.content['application/json'].schema.required).toEqual(['partner_id', 'payload']);
    // Errors are problem details, and the document says so.
    expect(Object.keys(doc.paths['/ingest'].post.responses['400'].content)).toEqual(['application/problem+json']);
    expect(Object.keys(doc.paths['/ingest'].post.responses['201'].content)).toEqual(['application/json']);
    expect((await get('/docs/', {})).statusCode).toBe(200);
    expect((await get('/redoc', {})).body).toContain('/openapi.json');
  });
});
