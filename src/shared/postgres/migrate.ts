import { Migrator, sql, type Kysely } from 'kysely';
import { migrationFailure, type MigrationSet } from '../sqlite/migrate.js';
import type { PostgresHandle } from './open-postgres.js';

/**
 * The PostgreSQL twin of `migrateToLatest`: the same migration sets, with each history table pinned to
 * the handle's schema. Kysely looks for an unpinned history table in every schema of the database, so
 * without the pin a second schema (another service, a parallel test) would find the first one's table.
 */
export async function migratePostgresToLatest(postgres: PostgresHandle, sets: readonly MigrationSet[]): Promise<string[]> {
  // A migration waits for its locks as long as it takes (another replica migrating, a long query on a
  // table it alters): the pool's lock timeout is for requests and subscribers, which must not hang.
  return await postgres.db.connection().execute(async (connection) => {
    await sql`SET lock_timeout = 0`.execute(connection);
    try {
      return await migrateOn(connection, postgres.schema, sets);
    } finally {
      // On a connection that broke, the migration's own error is the one to tell.
      await sql`RESET lock_timeout`.execute(connection).catch(() => undefined);
    }
  });
}

async function migrateOn(db: Kysely<object>, schema: string, sets: readonly MigrationSet[]): Promise<string[]> {
  const applied: string[] = [];
  for (const set of sets) {
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => ({ ...set.migrations }) },
      migrationTableSchema: schema,
      migrationTableName: `${set.owner}_migrations`,
      migrationLockTableName: `${set.owner}_migrations_lock`,
    });
    const { error, results } = await withCatalogRetries(() => migrator.migrateToLatest());
    for (const result of results ?? []) {
      if (result.status === 'Success') applied.push(`${set.owner}/${result.migrationName}`);
    }
    if (error) throw migrationFailure(error, set.owner);
  }
  return applied;
}

// invalid_schema_name, undefined_table, undefined_column and "cache lookup failed" (XX000): what a
// catalog read meets when another session drops a schema under it.
const CATALOG_RACE = new Set(['3F000', '42P01', '42703', 'XX000']);
const ATTEMPTS = 20;

/**
 * Kysely's migrator looks for its history tables by listing the columns of every schema in the
 * database, calling `has_schema_privilege` and `pg_get_serial_sequence` by name on each: when another
 * service or test drops its schema meanwhile, the listing fails with that schema's name. Nothing has
 * run by then (the listing comes before the lock and the migrations), so the migration is tried again.
 */
async function withCatalogRetries<T extends { error?: unknown }>(migrate: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const outcome = await migrate();
    const code = (outcome.error as { code?: unknown } | undefined)?.code;
    if (attempt >= ATTEMPTS || typeof code !== 'string' || !CATALOG_RACE.has(code)) return outcome;
    await new Promise((resolve) => setTimeout(resolve, Math.min(10 * attempt, 100) + Math.random() * 20));
  }
}
