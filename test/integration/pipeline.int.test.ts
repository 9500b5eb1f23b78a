import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { fixedClock } from '../../src/shared/clock.js';
import type { ProcessorRegistry } from '../../src/processing/domain/pipeline.js';
import { BUILT_IN_PROCESSORS } from '../../src/processing/domain/pipeline.js';
import { validationSubscriber } from '../../src/validation/application/validation-subscriber.js';
import { ajvSchemaCompiler } from '../../src/validation/adapters/ajv/ajv-schema-compiler.js';
import { sqlSchemaCatalog, sqlVerdictLog } from '../../src/validation/adapters/sql/sql-schema-catalog.js';
import { queryProjection } from '../../src/query/application/query-projection.js';
import { sqlItemViews } from '../../src/query/adapters/sql/sql-item-views.js';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';

let intake: TestIntake | undefined;
afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

const json = { ...auth, 'content-type': 'application/json' };

async function start(options: Parameters<typeof startTestIntake>[1] = {}) {
  intake = await startTestIntake({}, options);
  return intake;
}

async function ingest(app: TestIntake, body: object): Promise<string> {
  const response = await app.app.inject({ method: 'POST', url: '/ingest', headers: json, payload: body });
  expect(response.statusCode).toBe(201);
  return response.json().id;
}

const query = async (app: TestIntake, id: string, asOf?: string) =>
  (await app.app.inject({ method: 'GET', url: `/query/${id}${asOf ? `?as_of=${encodeURIComponent(asOf)}` : ''}`, headers: auth })).json();

const putSchema = (app: TestIntake, eventType: string, schema: unknown, partnerId?: string) =>
  app.app.inject({
    method: 'PUT',
    url: `/api/schemas/${eventType}`,
    headers: json,
    payload: { schema, ...(partnerId ? { partner_id: partnerId } : {}) },
  });

const ingestStatus = async (app: TestIntake, id: string) =>
  (await app.app.inject({ method: 'GET', url: `/ingest/${id}`, headers: auth })).json().status as string;

describe('the pipeline, end to end in one process', () => {
  it('moves the status GET /ingest/{id} answers along with the pipeline, and rebuilds it by replay', async () => {
    const app = await start({ startSubscribers: false });
    await putSchema(app, 'order', { type: 'object', required: ['total'] });
    const fine = await ingest(app, { partner_id: 'p', event_type: 'order', payload: { total: 1 } });
    const invalid = await ingest(app, { partner_id: 'p', event_type: 'order', payload: {} });
    expect(await ingestStatus(app, fine)).toBe('ingested');
    app.subscriptions.start();
    await app.subscriptions.caughtUp();
    expect(await ingestStatus(app, fine)).toBe('processed');
    expect(await ingestStatus(app, invalid)).toBe('invalid');
    const listed = (await app.app.inject({ method: 'GET', url: '/ingest/partner/p', headers: auth })).json().items;
    expect(listed.map((item: { status: string }) => item.status)).toEqual(['processed', 'invalid']);

    const replay = await app.app.inject({ method: 'POST', url: '/api/admin/subscriptions/item-status/replay', headers: auth });
    expect(replay.statusCode).toBe(202);
    await app.subscriptions.caughtUp();
    expect([await ingestStatus(app, fine), await ingestStatus(app, invalid)]).toEqual(['processed', 'invalid']);
  });

  it('finds an item acknowledged a moment ago on the query side too, folded from its events until the view has it', async () => {
    const app = await start({ startSubscribers: false });
    const id = await ingest(app, { partner_id: 'shop', event_type: 'order', payload: { total: 3 } });
    const event = await app.app.inject({ method: 'GET', url: `/api/events/${id}`, headers: auth });
    expect(event.statusCode).toBe(200);
    expect(event.json()).toMatchObject({ event_id: id, event_type: 'order', payload: { total: 3 }, status: 'ingested' });
    expect(await query(app, id)).toMatchObject({ id, status: 'ingested' });
    expect(
      (await app.app.inject({ method: 'GET', url: '/api/events/0193aaaa-0000-7000-8000-000000000000', headers: auth })).statusCode,
    ).toBe(404);
    app.subscriptions.start();
    await app.subscriptions.caughtUp();
    expect((await app.app.inject({ method: 'GET', url: `/api/events/${id}`, headers: auth })).json().status).toBe('processed');
  });

  it('takes one POST /ingest to processed, with its full history', async () => {
    const app = await start();
    const id = await ingest(app, {
      partner_id: 'acme',
      event_type: 'signup',
      payload: { email: '  Ada@Example.COM ', at: '2026-11-24 10:00' },
    });
    await app.subscriptions.caughtUp();
    const item = await query(app, id);
    expect(item).toMatchObject({
      id,
      partner_id: 'acme',
      event_type: 'signup',
      status: 'processed',
      validation: { schema_version: null, schema_partner_id: null, errors: [] },
      processing: { result: { email: 'ada@example.com', at: '2026-11-24T10:00:00.000Z' }, reason: null },
    });
    expect(item.history.map((e: { type: string }) => e.type)).toEqual(['DataReceived', 'DataIngested', 'DataValidated', 'DataProcessed']);
    expect(item.history.map((e: { version: number }) => e.version)).toEqual([1, 2, 3, 4]);
  });

  it('lists items with their histories as GET /query/{id} shows them, unless history=false', async () => {
    const app = await start();
    const ids = [];
    for (let n = 0; n < 3; n++) ids.push(await ingest(app, { partner_id: 'lister', event_type: 'signup', payload: { n } }));
    await ingest(app, { partner_id: 'other', event_type: 'signup', payload: { n: 9 } });
    await app.subscriptions.caughtUp();
    const get = async (url: string) => (await app.app.inject({ method: 'GET', url, headers: auth })).json();
    const page = await get('/query/partner/lister?limit=2');
    const rest = await get(`/query/partner/lister?limit=2&cursor=${page.next_cursor}`);
    const listed = [...page.items, ...rest.items];
    expect(listed.map((item: { id: string }) => item.id)).toEqual(ids);
    for (const item of listed) expect(item.history).toEqual((await query(app, item.id)).history);
    const all = await get('/query/all?limit=10');
    expect(all.items).toHaveLength(4);
    expect(all.items.every((item: { history: unknown[] }) => item.history.length === 4)).toBe(true);
    const bare = await get('/query/all?history=false');
    expect(bare.items.map((item: object) => 'history' in item)).toEqual([false, false, false, false]);
    // One item takes it too.
    const one = await get(`/query/${ids[0]}?history=false`);
    expect([one.id, 'history' in one]).toEqual([ids[0], false]);
  });

  it('marks an item invalid with every violation of its event type’s schema', async () => {
    const app = await start();
    const saved = await putSchema(app, 'order', {
      type: 'object',
      required: ['total', 'currency'],
      properties: { total: { type: 'number', minimum: 0 }, currency: { type: 'string', minLength: 3 } },
    });
    expect(saved.statusCode).toBe(200);
    expect(saved.json()).toMatchObject({ event_type: 'order', partner_id: null, version: 1 });
    const bad = await ingest(app, { partner_id: 'acme', event_type: 'order', payload: { total: -1 } });
    const good = await ingest(app, { partner_id: 'acme', event_type: 'order', payload: { total: 10, currency: 'EUR' } });
    await app.subscriptions.caughtUp();
    const invalid = await query(app, bad);
    expect(invalid.status).toBe('invalid');
    expect(invalid.validation).toEqual({
      schema_version: 1,
      schema_partner_id: null,
      errors: expect.arrayContaining([
        { path: 'payload.total', rule: 'minimum', message: 'must be >= 0' },
        { path: 'payload.currency', rule: 'required', message: 'is required' },
      ]),
    });
    expect(invalid.processing).toBeNull();
    expect((await query(app, good)).status).toBe('processed');
  });

  it('judges an item by the schema version in force when it was ingested, and a source’s own schema first', async () => {
    const app = await start({ startSubscribers: false });
    await putSchema(app, 'order', { type: 'object' });
    const underV1 = await ingest(app, { partner_id: 'acme', event_type: 'order', payload: { total: 'ten' } });
    expect((await putSchema(app, 'order', { type: 'object', properties: { total: { type: 'number' } } })).json().version).toBe(2);
    const underV2 = await ingest(app, { partner_id: 'acme', event_type: 'order', payload: { total: 'ten' } });
    await putSchema(app, 'order', { type: 'object', required: ['vip'] }, 'vip-partner');
    const ownSchema = await ingest(app, { partner_id: 'vip-partner', event_type: 'order', payload: { total: 1 } });
    app.subscriptions.start();
    await app.subscriptions.caughtUp();
    expect(await query(app, underV1)).toMatchObject({ status: 'processed', validation: { schema_version: 1, schema_partner_id: null } });
    expect(await query(app, underV2)).toMatchObject({ status: 'invalid', validation: { schema_version: 2, schema_partner_id: null } });
    // Version 1 of the source's own schema, not of the schema for every source.
    expect(await query(app, ownSchema)).toMatchObject({
      status: 'invalid',
      validation: { schema_version: 1, schema_partner_id: 'vip-partner', errors: [{ rule: 'required' }] },
    });
  });

  it('manages schemas over the API and refuses an invalid JSON Schema without storing it', async () => {
    const app = await start();
    const refused = await putSchema(app, 'order', { type: 'objekt' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ code: 'validation.invalid-schema' });
    expect((await app.app.inject({ method: 'GET', url: '/api/schemas/order', headers: auth })).statusCode).toBe(404);
    await putSchema(app, 'order', { type: 'object' });
    expect((await app.app.inject({ method: 'GET', url: '/api/schemas', headers: auth })).json().items).toHaveLength(1);
    expect((await app.app.inject({ method: 'DELETE', url: '/api/schemas/order', headers: auth })).statusCode).toBe(204);
    expect((await app.app.inject({ method: 'DELETE', url: '/api/schemas/order', headers: auth })).statusCode).toBe(404);
    expect(
      (await app.app.inject({ method: 'GET', url: '/api/schemas/order', headers: { 'content-type': 'application/json' } })).statusCode,
    ).toBe(401);
  });

  it('fails an item whose processor throws, and lets the next items flow', async () => {
    const processors: ProcessorRegistry = {
      ...BUILT_IN_PROCESSORS,
      explode: () => ({
        name: 'explode',
        run: (input) => {
          if (input.boom) throw new Error('kaboom');
          return { status: 'ok', output: input };
        },
      }),
    };
    const app = await start({ processors });
    const configured = await app.app.inject({
      method: 'PUT',
      url: '/api/pipelines/risky',
      headers: json,
      payload: { steps: [{ processor: 'explode' }, { processor: 'normalize' }] },
    });
    expect(configured.statusCode).toBe(200);
    const unknown = await app.app.inject({
      method: 'PUT',
      url: '/api/pipelines/risky',
      headers: json,
      payload: { steps: [{ processor: 'nope' }] },
    });
    expect(unknown.statusCode).toBe(400);
    const failing = await ingest(app, { partner_id: 'p', event_type: 'risky', payload: { boom: true } });
    const fine = await ingest(app, { partner_id: 'p', event_type: 'risky', payload: { boom: false, name: ' x ' } });
    await app.subscriptions.caughtUp();
    expect(await query(app, failing)).toMatchObject({
      status: 'failed',
      processing: {
        reason: 'explode threw: kaboom',
        failed_step: 'explode',
        steps: [
          { name: 'explode', status: 'failed' },
          { name: 'normalize', status: 'skipped' },
        ],
      },
    });
    expect(await query(app, fine)).toMatchObject({ status: 'processed', processing: { result: { boom: false, name: 'x' } } });
    expect((await app.subscriptions.status()).every((s) => s.parked === 0)).toBe(true);
  });

  it('fails the items of a stored pipeline that today refuses, and keeps processing the others', async () => {
    const app = await start();
    // Saved before project refused paths through a prototype: written straight into the tables.
    const steps = JSON.stringify([{ processor: 'project', fields: ['__proto__.pwned'] }]);
    await app.store.transaction(async (tx) => {
      await sql`INSERT INTO processing_pipelines (event_type, steps, configured_at) VALUES ('legacy', ${steps}, '2026-01-01T00:00:00.000Z')`.execute(
        tx.db,
      );
      await sql`INSERT INTO processing_pipeline_versions (event_type, position, configured_at, steps)
        VALUES ('legacy', 0, '2026-01-01T00:00:00.000Z', ${steps})`.execute(tx.db);
    });
    const refused = await ingest(app, { partner_id: 'p', event_type: 'legacy', payload: { a: 1 } });
    const fine = await ingest(app, { partner_id: 'p', event_type: 'other', payload: { a: 1 } });
    await app.subscriptions.caughtUp();
    expect(await query(app, refused)).toMatchObject({ status: 'failed', processing: { failed_step: 'pipeline' } });
    expect((await query(app, refused)).processing.reason).toMatch(/the pipeline cannot run: .*__proto__/);
    expect(await query(app, fine)).toMatchObject({ status: 'processed' });
    expect((await app.subscriptions.status()).every((s) => s.parked === 0)).toBe(true);
  });

  it('rebuilds an item as it stood at a point in time (as_of)', async () => {
    const clock = fixedClock('2026-11-24T10:00:00.000Z');
    const app = await start({ clock, startSubscribers: false });
    const id = await ingest(app, { partner_id: 'p', payload: { n: 1 } });
    clock.set('2026-11-24T10:00:05.000Z');
    app.subscriptions.start();
    await app.subscriptions.caughtUp();
    const before = await query(app, id, '2026-11-24T10:00:02.000Z');
    expect(before.status).toBe('ingested');
    expect(before.history.map((e: { type: string }) => e.type)).toEqual(['DataReceived', 'DataIngested']);
    expect((await query(app, id, '2026-11-24T10:00:05.000Z')).status).toBe('processed');
    expect((await query(app, id, '2026-11-24T09:00:00.000Z')).code).toBe('query.item-not-found');
    expect((await query(app, id, 'yesterday')).status).toBe(400);
  });

  it('reads time bounds past the year 9999 and below the millisecond as the instants they name', async () => {
    const clock = fixedClock('2026-11-24T10:00:00.558Z');
    const app = await start({ clock });
    const created = await app.app.inject({
      method: 'POST',
      url: '/api/ingest/shop',
      headers: auth,
      payload: { event_type: 'e', payload: {} },
    });
    const id = (created.json() as { data: { event_id: string } }).data.event_id;
    await app.subscriptions.caughtUp();
    const listed = async (query: string) => {
      const response = await app.app.inject({ method: 'GET', url: `/api/events/app/shop?${query}`, headers: auth });
      expect(response.statusCode, query).toBe(200);
      return (response.json() as { items: Array<{ event_id: string }> }).items.map((item) => item.event_id);
    };
    // The last minute of 9999 in a zone west of UTC is in the year 10000 there.
    expect(await listed(`to=${encodeURIComponent('9999-12-31T23:59:59-23:59')}`)).toEqual([id]);
    expect((await query(app, id, '9999-12-31T23:59:59-23:59')).id).toBe(id);
    // Received at .558: before .5581, after .5579.
    expect(await listed('to=2026-11-24T10:00:00.5581Z')).toEqual([id]);
    expect(await listed('from=2026-11-24T10:00:00.5581Z')).toEqual([]);
    expect(await listed('from=2026-11-24T10:00:00.5579Z&to=2026-11-24T10:00:00.5581Z')).toEqual([id]);
    expect(await listed('from=2026-11-24T10:00:00.5581Z&to=2026-11-24T10:00:00.5589Z')).toEqual([]);
    expect((await query(app, id, '2026-11-24T10:00:00.5579Z')).code).toBe('query.item-not-found');
  });

  it('refuses a payload filter on the lists that take none, rather than answer every item', async () => {
    const app = await start({ startSubscribers: false });
    for (const url of ['/query/all?payload.k=1', '/ingest/all?payload.k=1', '/ingest/partner/p?limit=5&payload.a.b=x']) {
      const refused = await app.app.inject({ method: 'GET', url, headers: auth });
      expect([refused.statusCode, refused.json().code], url).toEqual([400, 'request.unsupported-filter']);
    }
    expect((await app.app.inject({ method: 'GET', url: '/query/partner/p?payload.k=1', headers: auth })).statusCode).toBe(200);
  });

  it('finds an item as of the received_at the API gave it, a moment before its events were recorded', async () => {
    // Every reading of this clock is 7 ms after the one before: the commit comes after the arrival.
    let at = Date.parse('2026-11-24T10:00:00.000Z');
    const app = await start({ clock: { now: () => new Date((at += 7)) } });
    const created = await app.app.inject({
      method: 'POST',
      url: '/ingest',
      headers: auth,
      payload: { partner_id: 'p', payload: { n: 1 } },
    });
    const { id, received_at: receivedAt } = created.json() as { id: string; received_at: string };
    const item = await query(app, id, receivedAt);
    expect(item.history[0].recorded_at > receivedAt).toBe(true);
    expect(item).toMatchObject({ id, received_at: receivedAt });
    expect((await query(app, id, new Date(Date.parse(receivedAt) - 1).toISOString())).code).toBe('query.item-not-found');
  });

  it('replays the query view into an identical one', async () => {
    const app = await start();
    await putSchema(app, 'order', { type: 'object', required: ['total'] });
    for (let i = 0; i < 40; i++)
      await ingest(app, { partner_id: `p${i % 3}`, event_type: i % 2 ? 'order' : 'data', payload: i % 4 ? { total: i } : { n: i } });
    await app.subscriptions.caughtUp();
    const dump = () => app.store.transaction(async (tx) => (await sql`SELECT * FROM query_items ORDER BY id`.execute(tx.db)).rows);
    const before = await dump();
    expect(before).toHaveLength(40);
    const replay = await app.app.inject({ method: 'POST', url: '/api/admin/subscriptions/query/replay', headers: auth });
    expect(replay.statusCode).toBe(202);
    await app.subscriptions.caughtUp();
    expect(await dump()).toEqual(before);
    const refused = await app.app.inject({ method: 'POST', url: '/api/admin/subscriptions/validation/replay', headers: auth });
    expect(refused.statusCode).toBe(409);
  });

  it('says a view is being rebuilt, in readiness (degraded) and the admin API, until the replay has read what was there', async () => {
    const app = await start();
    for (let i = 0; i < 5; i++) await ingest(app, { partner_id: 'p', payload: { n: i } });
    await app.subscriptions.caughtUp();
    const head = await app.store.headPosition();
    // Held where the replay starts: the view is empty, and nothing but this field says why.
    await app.subscriptions.stop();
    expect((await app.app.inject({ method: 'POST', url: '/api/admin/subscriptions/query/replay', headers: auth })).statusCode).toBe(202);
    const listed = async () =>
      (await app.app.inject({ method: 'GET', url: '/api/admin/subscriptions', headers: auth }))
        .json()
        .items.find((s: { name: string }) => s.name === 'query');
    expect(await listed()).toMatchObject({ position: 0, replaying_until: head });
    const ready = (await app.app.inject({ method: 'GET', url: '/health/ready' })).json();
    expect(ready.checks['subscriber:query'].detail).toMatch(new RegExp(`replaying up to position ${head}`));
    app.subscriptions.start();
    await app.subscriptions.caughtUp();
    expect((await listed()).replaying_until).toBeUndefined();
    expect((await app.app.inject({ method: 'GET', url: '/health/ready' })).json().checks['subscriber:query'].status).toBe('ok');
  });

  it('still says a view is being rebuilt, and up to where, after a restart in the middle of the replay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-replay-restart-'));
    try {
      const first = await startTestIntake({}, {}, dir);
      for (let i = 0; i < 5; i++) await ingest(first, { partner_id: 'p', payload: { n: i } });
      await first.subscriptions.caughtUp();
      const head = await first.store.headPosition();
      await first.subscriptions.stop();
      expect((await first.app.inject({ method: 'POST', url: '/api/admin/subscriptions/query/replay', headers: auth })).statusCode).toBe(
        202,
      );
      await first.dispose();

      const listed = async (app: TestIntake) =>
        (await app.app.inject({ method: 'GET', url: '/api/admin/subscriptions', headers: auth }))
          .json()
          .items.find((s: { name: string }) => s.name === 'query');
      const second = await startTestIntake({}, { startSubscribers: false }, dir);
      expect(await listed(second)).toMatchObject({ replaying_until: head });
      const ready = (await second.app.inject({ method: 'GET', url: '/health/ready' })).json();
      expect(ready.checks['subscriber:query'].detail).toMatch(new RegExp(`replaying up to position ${head}`));
      second.subscriptions.start();
      await second.subscriptions.caughtUp();
      expect((await listed(second)).replaying_until).toBeUndefined();
      await second.dispose();

      // Once it has read that far, a restart does not say it again.
      const third = await startTestIntake({}, { startSubscribers: false }, dir);
      expect((await listed(third)).replaying_until).toBeUndefined();
      await third.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports subscriber lag in readiness and the admin API', async () => {
    const app = await start({ startSubscribers: false });
    await ingest(app, { partner_id: 'p', payload: {} });
    const ready = (await app.app.inject({ method: 'GET', url: '/health/ready' })).json();
    // Subscribers not started are reported as stopped, and readiness says so.
    expect(ready.checks['subscriber:query']).toEqual({
      status: 'down',
      detail: `stopped, position 0, lag ${await app.store.headPosition()}, parked 0`,
    });
    expect(ready.status).toBe('not_ready');
    const listed = (await app.app.inject({ method: 'GET', url: '/api/admin/subscriptions', headers: auth })).json();
    expect(listed.items.map((s: { name: string }) => s.name)).toEqual(
      expect.arrayContaining(['validation', 'processing', 'query', 'routing', 'attribution']),
    );
    // Paged as every list is.
    const names: string[] = [];
    for (let cursor = ''; ;) {
      const page = (await app.app.inject({ method: 'GET', url: `/api/admin/subscriptions?limit=3${cursor}`, headers: auth })).json();
      names.push(...page.items.map((s: { name: string }) => s.name));
      if (page.next_cursor === null) break;
      cursor = `&cursor=${page.next_cursor}`;
    }
    expect(names).toEqual(listed.items.map((s: { name: string }) => s.name));
    expect((await app.app.inject({ method: 'GET', url: '/api/admin/subscriptions?cursor=garbage!', headers: auth })).statusCode).toBe(400);
    // An unknown name is a 404 everywhere, naming the subscribers the list shows.
    for (const [method, url] of [
      ['GET', '/api/admin/subscriptions/bogus/parked'],
      ['POST', '/api/admin/subscriptions/bogus/replay'],
      ['DELETE', '/api/admin/subscriptions/bogus/parked/1'],
    ] as const) {
      const unknown = await app.app.inject({ method, url, headers: auth });
      expect(unknown.statusCode, url).toBe(404);
      expect(unknown.json().detail, url).toMatch(/known: .*validation.*query/);
    }
    // A message of a stream that could not be read is parked as <stream>#<sequence>: such a ref is asked for, not refused.
    const unreadable = await app.app.inject({
      method: 'POST',
      url: '/api/admin/subscriptions/query/parked/INTAKE%232759/retry',
      headers: auth,
    });
    expect([unreadable.statusCode, unreadable.json().code]).toEqual([404, 'subscriptions.not-parked']);
    const discarded = await app.app.inject({ method: 'DELETE', url: '/api/admin/subscriptions/routing/parked/12', headers: auth });
    expect([discarded.statusCode, discarded.json().code]).toEqual([404, 'subscriptions.not-parked']);
    // Digits past 2^53 are not rounded into another position: the answer names the ref as sent.
    const huge = await app.app.inject({
      method: 'POST',
      url: '/api/admin/subscriptions/query/parked/99999999999999999/retry',
      headers: auth,
    });
    expect([huge.statusCode, huge.json().detail]).toEqual([404, '"query" has no parked event 99999999999999999']);
  });
});

describe('optional contexts', () => {
  it('leaves out the contexts named in INTAKE_DISABLE', async () => {
    intake = await startTestIntake({ INTAKE_DISABLE: 'statistics,attribution,analytics' });
    const names = (await intake.app.inject({ method: 'GET', url: '/api/admin/subscriptions', headers: auth }))
      .json()
      .items.map((s: { name: string }) => s.name);
    expect(names).not.toContain('statistics');
    expect(names).not.toContain('attribution');
    expect(names).toContain('query');
    // Told apart from a mistyped URL (both answered "no route"): the context is off here, and readiness says so.
    const off = await intake.app.inject({ method: 'GET', url: '/api/statistics/shop', headers: auth });
    expect([off.statusCode, off.json().code]).toEqual([404, 'context.disabled']);
    expect(off.json().detail).toMatch(/^statistics is switched off in this process \(INTAKE_DISABLE\)/);
    // Conversions lie under tracking's paths, and belong to attribution.
    const conversion = await intake.app.inject({ method: 'POST', url: '/api/v1/tracking/conversions', headers: auth, payload: {} });
    expect(conversion.json().detail).toMatch(/^attribution is switched off/);
    const beacon = await intake.app.inject({ method: 'POST', url: '/beacon/v1/batch', payload: {} });
    expect(beacon.json().detail).toMatch(/^analytics is switched off/);
    for (const typo of ['/api/statistic/shop', '/api/statisticsX/shop'])
      expect((await intake.app.inject({ method: 'GET', url: typo, headers: auth })).json().code, typo).toBe('route.not-found');
    const ready = (await intake.app.inject({ method: 'GET', url: '/health/ready' })).json();
    expect(ready.checks).toMatchObject({
      'context:statistics': { status: 'ok', detail: 'switched off (INTAKE_DISABLE)' },
      'context:attribution': { status: 'ok', detail: 'switched off (INTAKE_DISABLE)' },
    });
  });
});

describe('subscribers are idempotent', () => {
  it('validation gives one verdict when the same DataIngested is delivered twice', async () => {
    const app = await start({ startSubscribers: false });
    const id = await ingest(app, { partner_id: 'p', payload: {} });
    const events = (await app.store.readStream(`data-${id}`)).filter((e) => e.type === 'DataIngested');
    const subscriber = validationSubscriber({
      clock: { now: () => new Date() },
      compiler: ajvSchemaCompiler(),
      catalog: sqlSchemaCatalog,
      verdicts: sqlVerdictLog,
    });
    await app.store.transaction((tx) => subscriber.handle(events, tx));
    await app.store.transaction((tx) => subscriber.handle(events, tx));
    expect((await app.store.readStream(`data-${id}`)).map((e) => e.type)).toEqual(['DataReceived', 'DataIngested', 'DataValidated']);
  });

  it('the query view is unchanged by a second delivery of the same events', async () => {
    const app = await start();
    const id = await ingest(app, { partner_id: 'p', payload: { a: 1 } });
    await app.subscriptions.caughtUp();
    const first = await query(app, id);
    const events = await app.store.readStream(`data-${id}`);
    const projection = queryProjection(sqlItemViews);
    await app.store.transaction((tx) => projection.handle(events, tx));
    await app.store.transaction((tx) => projection.handle(events.slice(1, 3), tx));
    expect(await query(app, id)).toEqual(first);
  });
});
