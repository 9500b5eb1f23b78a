import { Migrator, type Kysely, type Migration } from 'kysely';

export interface MigrationSet {
  /** Owner of the migrations: one history table per context, so contexts evolve independently. */
  readonly owner: string;
  readonly migrations: Readonly<Record<string, Migration>>;
}

export async function migrateToLatest(db: Kysely<object>, sets: readonly MigrationSet[]): Promise<string[]> {
  const applied: string[] = [];
  for (const set of sets) {
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => ({ ...set.migrations }) },
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
