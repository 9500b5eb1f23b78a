import type { Kysely } from 'kysely';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import { routingMigrations } from './migrations.js';

/** For tests: routing's tables on SQLite and, with TEST_POSTGRES_URL, on a PostgreSQL schema of their own. */
export const routingTestDatabases: ReadonlyArray<{
  readonly name: string;
  readonly available: boolean;
  open(): Promise<{ db: Kysely<object>; close(): Promise<void> }>;
}> = [
  {
    name: 'SQLite',
    available: true,
    async open() {
      const sqlite = openSqlite(':memory:');
      await migrateToLatest(sqlite.db, [routingMigrations]);
      return { db: sqlite.db, close: () => sqlite.close() };
    },
  },
  {
    name: 'PostgreSQL',
    available: testPostgresUrl !== undefined,
    async open() {
      const postgres = await openTemporarySchema(testPostgresUrl ?? '');
      await migratePostgresToLatest(postgres, [routingMigrations]);
      return { db: postgres.db, close: () => postgres.close() };
    },
  },
];
