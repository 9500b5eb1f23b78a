import { sql, type Migration } from 'kysely';
import { describe, expect, it } from 'vitest';
import { DatabaseFromNewerRelease, migrateToLatest } from './migrate.js';
import { openSqlite } from './open-sqlite.js';

const nothing: Migration = { up: async () => undefined };

describe('migrating a database', () => {
  it('says a database was migrated by a newer release, and what to do, rather than call it corrupted', async () => {
    const sqlite = openSqlite(':memory:');
    try {
      await migrateToLatest(sqlite.db, [{ owner: 'shop', migrations: { '0001_first': nothing, '0002_from_the_future': nothing } }]);
      const older = migrateToLatest(sqlite.db, [{ owner: 'shop', migrations: { '0001_first': nothing } }]);
      await expect(older).rejects.toBeInstanceOf(DatabaseFromNewerRelease);
      await expect(older).rejects.toThrow(
        /migrated by a newer Intake \(shop migration 0002_from_the_future is unknown to this one\): run that release or a later one/,
      );
    } finally {
      await sqlite.close();
    }
  });

  it('undoes a migration cut short, so that the next start applies it whole (a column added alone failed every start)', async () => {
    const sqlite = openSqlite(':memory:');
    try {
      const addSeq = (failAfter: boolean): Migration => ({
        async up(db) {
          await sql`ALTER TABLE items ADD COLUMN seq INTEGER`.execute(db);
          if (failAfter) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
          await sql`CREATE INDEX items_seq ON items (seq)`.execute(db);
        },
      });
      const create: Migration = { up: async (db) => void (await sql`CREATE TABLE items (id TEXT)`.execute(db)) };
      const cut = migrateToLatest(sqlite.db, [{ owner: 'shop', migrations: { '0001_create': create, '0002_seq': addSeq(true) } }]);
      await expect(cut).rejects.toThrow(/shop migration 0002_seq failed, and was undone: database or disk is full/);
      await expect(cut).rejects.toMatchObject({ code: 'SQLITE_FULL' });
      expect(
        await migrateToLatest(sqlite.db, [{ owner: 'shop', migrations: { '0001_create': create, '0002_seq': addSeq(false) } }]),
      ).toEqual(['shop/0001_create', 'shop/0002_seq']);
      const columns = await sql<{ name: string }>`SELECT name FROM pragma_table_info('items')`.execute(sqlite.db);
      expect(columns.rows.map((c) => c.name)).toEqual(['id', 'seq']);
    } finally {
      await sqlite.close();
    }
  });
});
