import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTemporarySchema, testPostgresUrl } from '../postgres/temporary-schema.js';
import { openSqlite } from '../sqlite/open-sqlite.js';
import { insertTemplate } from './insert-template.js';

type Row = { id: string; n: number; note: string | null; state: string };
type Tables = { items: Row };
const tables = (db: Kysely<object>) => db.withTables<Tables>();

interface Database {
  readonly db: Kysely<object>;
  close(): Promise<void>;
}

const databases: Array<[string, () => Promise<Database>]> = [['SQLite', async () => openSqlite(':memory:')]];
const postgresUrl = testPostgresUrl;
if (postgresUrl) databases.push(['PostgreSQL', () => openTemporarySchema(postgresUrl, 'intake_insert_template')]);
else it.skip('PostgreSQL (TEST_POSTGRES_URL is not set)', () => undefined);

describe.each(databases)('insertTemplate on %s', (_name, open) => {
  let database: Database;
  beforeAll(async () => {
    database = await open();
    await sql`CREATE TABLE items (id text PRIMARY KEY, n integer NOT NULL, note text, state text NOT NULL DEFAULT 'fresh')`.execute(
      database.db,
    );
  });
  afterAll(() => database.close());

  const rows = (ids: string[], n: number): Row[] => ids.map((id, i) => ({ id, n: n + i, note: i % 2 ? null : `note ${id}`, state: 'new' }));
  const stored = async () => (await tables(database.db).selectFrom('items').selectAll().orderBy('id').execute()).map((row) => ({ ...row }));

  it('builds a row count once, then runs its text with each batch, returning what the statement returns', async () => {
    const built: number[] = [];
    const insert = insertTemplate<Row, { id: string }>(['id', 'n', 'note', 'state'], (db, batch) => {
      built.push(batch.length);
      return tables(db)
        .insertInto('items')
        .values(batch)
        .onConflict((oc) => oc.column('id').doUpdateSet((eb) => ({ n: eb.ref('excluded.n') })))
        .returning('id');
    });
    await database.db.transaction().execute(async (trx) => {
      expect(await insert(trx, rows(['a', 'b'], 1))).toEqual([{ id: 'a' }, { id: 'b' }]);
      expect(await insert(trx, rows(['c', 'd'], 10))).toEqual([{ id: 'c' }, { id: 'd' }]);
      expect(await insert(trx, rows(['a', 'e', 'f'], 20))).toHaveLength(3);
      expect(await insert(trx, [])).toEqual([]);
    });
    // One probe per row count: the second batch of two reused the first one's text.
    expect(built).toEqual([2, 3]);
    expect(await stored()).toEqual([
      { id: 'a', n: 20, note: 'note a', state: 'new' },
      { id: 'b', n: 2, note: null, state: 'new' },
      { id: 'c', n: 10, note: 'note c', state: 'new' },
      { id: 'd', n: 11, note: null, state: 'new' },
      { id: 'e', n: 21, note: null, state: 'new' },
      { id: 'f', n: 22, note: 'note f', state: 'new' },
    ]);
  });

  it('leaves to Kysely a builder with parameters of its own, and a batch with a value left out', async () => {
    let built = 0;
    const insert = insertTemplate<Row>(['id', 'n', 'note', 'state'], (db, batch) => {
      built += 1;
      return tables(db)
        .insertInto('items')
        .values(batch)
        .onConflict((oc) => oc.column('id').doUpdateSet({ state: 'seen again' }));
    });
    await insert(database.db, rows(['g'], 1));
    await insert(database.db, rows(['g'], 2));
    // The probe, then Kysely for both batches: the 'seen again' parameter is not a row's value.
    expect(built).toBe(3);

    const plain = insertTemplate<Row>(['id', 'n', 'note', 'state'], (db, batch) => tables(db).insertInto('items').values(batch));
    await plain(database.db, [{ id: 'h', n: 1, note: null, state: 'new' }]);
    await plain(database.db, [{ id: 'i', n: 2, note: null } as Row]);
    const byId = new Map((await stored()).map((row) => [row.id, row]));
    expect(byId.get('g')).toMatchObject({ n: 1, state: 'seen again' });
    expect(byId.get('h')?.state).toBe('new');
    // Kysely left the undefined state out, so the column's default applies.
    expect(byId.get('i')?.state).toBe('fresh');
  });
});
