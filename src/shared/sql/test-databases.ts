import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { migratePostgresToLatest } from '../postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../postgres/temporary-schema.js';
import { migrateToLatest, type MigrationSet } from '../sqlite/migrate.js';
import { openSqlite } from '../sqlite/open-sqlite.js';

export interface TestDatabase {
  readonly db: Kysely<object>;
  close(): Promise<void>;
}

export interface TestDatabaseKind {
  readonly name: 'SQLite' | 'PostgreSQL';
  /** PostgreSQL without TEST_POSTGRES_URL: its suites are skipped, and say so. */
  readonly skip: boolean;
  /** A fresh database with `migrations` applied: a temporary file, or a schema of its own. */
  open(): Promise<TestDatabase>;
}

/** For contract tests of SQL adapters: each database Intake runs on, opened fresh and migrated. */
export function testDatabases(migrations: readonly MigrationSet[]): readonly [sqlite: TestDatabaseKind, postgres: TestDatabaseKind] {
  return [
    {
      name: 'SQLite',
      skip: false,
      async open() {
        const dir = mkdtempSync(join(tmpdir(), 'intake-sql-test-'));
        const sqlite = openSqlite(join(dir, 'db.sqlite'));
        await migrateToLatest(sqlite.db, migrations);
        return {
          db: sqlite.db,
          async close() {
            await sqlite.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      },
    },
    {
      name: 'PostgreSQL',
      skip: !testPostgresUrl,
      async open() {
        const postgres = await openTemporarySchema(testPostgresUrl ?? '');
        await migratePostgresToLatest(postgres, migrations);
        return postgres;
      },
    },
  ];
}
