import { Kysely, PostgresDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { JsonObject } from '../../../shared/events.js';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import type { ItemView } from '../../domain/item-view.js';
import { parsePayloadFilter } from '../../domain/payload-filter.js';
import { queryMigrations } from './migrations.js';
import { sqlItemViews } from './sql-item-views.js';
import { testDatabases, type TestDatabase } from '../../../shared/sql/test-databases.js';

if (!testPostgresUrl) console.warn('skipping payload filters on PostgreSQL: TEST_POSTGRES_URL is not set');

const view = (id: string, partnerId: string, payload: JsonObject): ItemView => ({
  id,
  partnerId,
  eventType: 'order_created',
  payload,
  receivedAt: '2026-12-02T00:00:00.000Z',
  status: 'processed',
  validation: null,
  processing: null,
  metadata: null,
  deliveries: [],
  updatedAt: '2026-12-02T00:00:01.000Z',
});

const SEED = [
  view('i1', 'shop', { order_id: 'A17', total: 99, customer: { tier: 2, vip: true } }),
  view('i2', 'shop', { order_id: 'A18', total: '99', customer: { tier: '2', vip: false } }),
  view('i3', 'shop', { order_id: 'A17', total: 5, note: null }),
  view('i4', 'blog', { order_id: 'A17' }),
  view('i5', 'shop', { order_id: "A17' OR 1=1 --", total: 1 }),
];

const databases = testDatabases([queryMigrations])
  .filter((kind) => !kind.skip)
  .map((kind): [string, () => Promise<TestDatabase>] => [kind.name, kind.open]);

describe.each(databases)('the list order on %s', (_name, open) => {
  it('is the order items became visible: one that commits after a later id is not behind a page already read', async () => {
    const { db, close } = await open();
    const views = sqlItemViews(db);
    const list = (cursor?: string) => views.list({ partnerId: 'shop' }, { limit: 50, ...(cursor ? { cursor } : {}) });
    try {
      await views.save([view('i2', 'shop', {})]);
      const first = await list();
      expect(first.items.map((v) => v.id)).toEqual(['i2']);
      // i1 was stamped first but committed later (a request that waited on its rules, another replica).
      await views.save([view('i1', 'shop', {}), view('i3', 'shop', {})]);
      expect(first.nextCursor).toBeNull();
      const cursor = (await views.list({ partnerId: 'shop' }, { limit: 1 })).nextCursor ?? '';
      expect((await list(cursor)).items.map((v) => v.id)).toEqual(['i1', 'i3']);
      // A row written again keeps its place.
      await views.save([{ ...view('i2', 'shop', {}), status: 'failed' }]);
      expect((await list()).items.map((v) => [v.id, v.status])).toEqual([
        ['i2', 'failed'],
        ['i1', 'processed'],
        ['i3', 'processed'],
      ]);
      // A cursor of an earlier release holds the item's id: the next page starts after that item.
      const legacy = Buffer.from('i2', 'utf8').toString('base64url');
      expect((await list(legacy)).items.map((v) => v.id)).toEqual(['i1', 'i3']);
      await expect(list(Buffer.from('gone', 'utf8').toString('base64url'))).rejects.toThrow(/cursor/);
    } finally {
      await close();
    }
  });
});

describe.each(databases)('payload filters on %s', (_name, open) => {
  it('keeps the items whose payload fields equal the given values', async () => {
    const { db, close } = await open();
    const views = sqlItemViews(db);
    const ids = async (partnerId: string, query: Record<string, string>) =>
      (await views.list({ partnerId, payload: parsePayloadFilter(query) }, { limit: 50 })).items.map((v) => v.id);
    try {
      await views.save(SEED);
      expect(await ids('shop', { 'payload.order_id': 'A17' })).toEqual(['i1', 'i3']);
      expect(await ids('blog', { 'payload.order_id': 'A17' })).toEqual(['i4']);
      // A number in the query string matches the number and the string.
      expect(await ids('shop', { 'payload.total': '99' })).toEqual(['i1', 'i2']);
      expect(await ids('shop', { 'payload.customer.tier': '2', 'payload.customer.vip': 'true' })).toEqual(['i1']);
      expect(await ids('shop', { 'payload.note': 'null' })).toEqual(['i3']);
      expect(await ids('shop', { 'payload.order_id': 'A17', 'payload.total': '5' })).toEqual(['i3']);
      expect(await ids('shop', { 'payload.order_id': 'Z' })).toEqual([]);
      // Values are bound parameters: text that looks like SQL is only text.
      expect(await ids('shop', { 'payload.order_id': "A17' OR 1=1 --" })).toEqual(['i5']);
      // A NUL inside a string does not stop the view from being saved (PostgreSQL's jsonb refuses it).
      await views.save([view('i6', 'shop', { order_id: 'nul\u0000here' })]);
      expect((await views.get('i6'))?.payload).toEqual({ order_id: 'nul\ufffdhere' });
      // The text "\u0000" (a backslash, then u0000) is no NUL, and stays as it is.
      await views.save([view('i7', 'shop', { order_id: 'C:\\u0000' })]);
      expect((await views.get('i7'))?.payload).toEqual({ order_id: 'C:\\u0000' });
      // A double past 2^53 is written out as integer digits; any text of that double finds it.
      await views.save([view('i8', 'shop', { order_no: Number('1.2345678901234567e18') })]);
      expect(await ids('shop', { 'payload.order_no': '1234567890123456800' })).toEqual(['i8']);
      expect(await ids('shop', { 'payload.order_no': '1.2345678901234567e18' })).toEqual(['i8']);
      expect(await ids('shop', { 'payload.order_no': '1234567890123456000' })).toEqual([]);
    } finally {
      await close();
    }
  });

  it('give each payload back with its keys in the order written, at every depth', async () => {
    const { db, close } = await open();
    const views = sqlItemViews(db);
    try {
      const payload = { z: 1, a: 2, nested: { b: [1, { y: 2, x: 3 }], a: null }, longer_key: 'v', k: 'w' };
      await views.save([view('o1', 'shop', payload)]);
      expect(JSON.stringify((await views.get('o1'))?.payload)).toBe(JSON.stringify(payload));
      const [listed] = (await views.list({ partnerId: 'shop', payload: parsePayloadFilter({ 'payload.z': '1' }) }, { limit: 5 })).items;
      expect(JSON.stringify(listed?.payload)).toBe(JSON.stringify(payload));
    } finally {
      await close();
    }
  });

  it('stop a page before the item that would take it past its bytes, and go on from there', async () => {
    const { db, close } = await open();
    const views = sqlItemViews(db);
    try {
      // Ten items of about 100 KB: a page of at most 250 KB holds two, whatever the limit.
      const big = 'x'.repeat(100_000);
      await views.save(Array.from({ length: 10 }, (_, i) => view(`b${i}`, 'shop', { i, big })));
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await views.list({ partnerId: 'shop' }, { limit: 1000, ...(cursor ? { cursor } : {}) }, 250_000);
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((item) => item.id));
        cursor = page.nextCursor ?? undefined;
        pages += 1;
      } while (cursor !== undefined);
      expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `b${i}`));
      expect(pages).toBe(5);
      // An item larger than the page still comes, alone.
      expect((await views.list({ partnerId: 'shop' }, { limit: 1000 }, 10)).items.map((item) => item.id)).toEqual(['b0']);
    } finally {
      await close();
    }
  });

  it('match a value of the same JSON type only: 1 is no true, 0 no false, "[1]" no array', async () => {
    const { db, close } = await open();
    const views = sqlItemViews(db);
    const ids = async (query: Record<string, string>) =>
      (await views.list({ partnerId: 'typed', payload: parsePayloadFilter(query) }, { limit: 50 })).items.map((v) => v.id);
    try {
      await views.save([
        view('t1', 'typed', { v: 1 }),
        view('t2', 'typed', { v: true }),
        view('t3', 'typed', { v: 0 }),
        view('t4', 'typed', { v: false }),
        view('t5', 'typed', { v: [1] }),
        view('t6', 'typed', { v: '[1]' }),
        view('t7', 'typed', { v: {} }),
        view('t8', 'typed', { v: '{}' }),
        view('t9', 'typed', { v: [] }),
        view('ta', 'typed', { v: 'true' }),
        view('tb', 'typed', { v: null }),
        view('tc', 'typed', { v: 'null' }),
        view('td', 'typed', { v: 1.5 }),
      ]);
      expect(await ids({ 'payload.v': '1' })).toEqual(['t1']);
      expect(await ids({ 'payload.v': '1.0' })).toEqual(['t1']);
      expect(await ids({ 'payload.v': 'true' })).toEqual(['t2', 'ta']);
      expect(await ids({ 'payload.v': '0' })).toEqual(['t3']);
      expect(await ids({ 'payload.v': '-0' })).toEqual(['t3']);
      expect(await ids({ 'payload.v': 'false' })).toEqual(['t4']);
      expect(await ids({ 'payload.v': '[1]' })).toEqual(['t6']);
      expect(await ids({ 'payload.v': '{}' })).toEqual(['t8']);
      expect(await ids({ 'payload.v': '[]' })).toEqual([]);
      expect(await ids({ 'payload.v': 'null' })).toEqual(['tb', 'tc']);
      expect(await ids({ 'payload.v': '1.50' })).toEqual(['td']);
    } finally {
      await close();
    }
  });
});

describe.skipIf(!testPostgresUrl)('payload filters on PostgreSQL', () => {
  it('are served by the GIN index on the payload', async () => {
    const postgres = await openTemporarySchema(testPostgresUrl ?? '');
    try {
      await migratePostgresToLatest(postgres, [queryMigrations]);
      await sqlItemViews(postgres.db).save(
        Array.from({ length: 2000 }, (_, i) => view(`i${String(i).padStart(5, '0')}`, 'shop', { order_id: `A${i}`, total: i % 10 })),
      );
      await postgres.pool.query('ANALYZE query_items');
      // The statement the adapter runs, captured as it goes to the server, then explained there.
      const statements: Array<{ sql: string; parameters: readonly unknown[] }> = [];
      const logging = new Kysely<object>({
        dialect: new PostgresDialect({ pool: postgres.pool }),
        log: (event) => {
          if (event.level === 'query') statements.push({ sql: event.query.sql, parameters: event.query.parameters });
        },
      });
      await sqlItemViews(logging).list({ partnerId: 'shop', payload: parsePayloadFilter({ 'payload.order_id': 'A17' }) }, { limit: 50 });
      // The statement that filters: the page's rows are then read by id.
      const statement = statements.find((candidate) => candidate.sql.includes('@>'));
      const client = await postgres.pool.connect();
      try {
        await client.query('SET enable_seqscan = off');
        const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${statement?.sql ?? ''}`, [...(statement?.parameters ?? [])]);
        expect(plan.rows.map((row) => row['QUERY PLAN']).join('\n')).toContain('query_items_payload');
      } finally {
        await client.query('RESET enable_seqscan');
        client.release();
      }
    } finally {
      await postgres.close();
    }
  });
});

/** Every page of a list, ten items a page: the first page's ids, all ids found, and how many pages. */
async function everyPage(views: ReturnType<typeof sqlItemViews>, filter: Parameters<ReturnType<typeof sqlItemViews>['list']>[0]) {
  const found: string[] = [];
  let pages = 0;
  let first: string[] | undefined;
  let cursor: string | null | undefined;
  do {
    const page = await views.list(filter, { limit: 10, ...(cursor ? { cursor } : {}) });
    first ??= page.items.map((item) => item.id);
    found.push(...page.items.map((item) => item.id));
    cursor = page.nextCursor;
    pages += 1;
  } while (cursor !== null);
  return { first, found, pages };
}

describe('a payload filter on SQLite', () => {
  it('looks through a window of the table per page, answering where it stopped when it found nothing', async () => {
    const [, open] = databases[0] ?? [];
    if (!open) throw new Error('no SQLite');
    const { db, close } = await open();
    const views = sqlItemViews(db);
    try {
      // 100 items of 1 MB: a filter that matches only the last one would read all 100 MB in one request.
      const big = 'x'.repeat(1_000_000);
      await views.save(Array.from({ length: 100 }, (_, i) => view(`m${String(i).padStart(3, '0')}`, 'shop', { i, big, hit: i === 99 })));
      const filter = { partnerId: 'shop', payload: parsePayloadFilter({ 'payload.hit': 'true' }) };
      const { first, found, pages } = await everyPage(views, filter);
      expect(first).toEqual([]);
      expect(found).toEqual(['m099']);
      // 8 MB a page (the item that crosses it included): nine of these items a page, twelve pages.
      expect(pages).toBe(12);
    } finally {
      await close();
    }
  });
});

describe('a time range', () => {
  it.each(databases)(
    'looks through a window of the list per page on %s, so the last hour of a long list costs pages, not a scan',
    async (_name, open) => {
      const { db, close } = await open();
      const views = sqlItemViews(db);
      try {
        // 25,000 items an hour apart in list order, then the one the range asks for.
        const old = Array.from({ length: 25_000 }, (_, i) => ({
          ...view(`t${String(i).padStart(5, '0')}`, 'shop', { i }),
          receivedAt: '2026-11-01T00:00:00.000Z',
        }));
        for (let start = 0; start < old.length; start += 5_000) await views.save(old.slice(start, start + 5_000));
        await views.save([{ ...view('recent', 'shop', {}), receivedAt: '2026-12-01T10:00:00.000Z' }]);
        const filter = { partnerId: 'shop', from: '2026-12-01T00:00:00.000Z' };
        const { first, found, pages } = await everyPage(views, filter);
        expect(first).toEqual([]);
        expect(found).toEqual(['recent']);
        expect(pages).toBe(3);
        // A range most items fall in fills its page at once.
        const wide = await views.list({ partnerId: 'shop', to: '2026-11-02T00:00:00.000Z' }, { limit: 10 });
        expect(wide.items.map((item) => item.id)).toEqual(old.slice(0, 10).map((item) => item.id));
      } finally {
        await close();
      }
    },
  );
});
