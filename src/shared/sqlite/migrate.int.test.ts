import type { Migration } from 'kysely';
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
});
