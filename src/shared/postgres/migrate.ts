import { Migrator } from 'kysely';
import type { MigrationSet } from '../sqlite/migrate.js';
import type { PostgresHandle } from './open-postgres.js';

/**
 * The PostgreSQL twin of `migrateToLatest`: the same migration sets, with each history table pinned to
 * the handle's schema. Kysely looks for an unpinned history table in every schema of the database, so
 * without the pin a second schema (another service, a parallel test) would find the first one's table.
 */
export async function migratePostgresToLatest(postgres: PostgresHandle, sets: readonly MigrationSet[]): Promise<string[]> {
  const applied: string[] = [];
  for (const set of sets) {
    const migrator = new Migrator({
      db: postgres.db,
      provider: { getMigrations: async () => ({ ...set.migrations }) },
      migrationTableSchema: postgres.schema,
      migrationTableName: `${set.owner}_migrations`,
      migrationLockTableName: `${set.owner}_migrations_lock`,
    });
    const { error, results } = await migrator.migrateToLatest();
    for (const result of results ?? []) {
      if (result.status === 'Success') applied.push(`${set.owner}/${result.migrationName}`);
    }
    if (error) throw error instanceof Error ? error : new Error(String(error));
  }
  return applied;
}
