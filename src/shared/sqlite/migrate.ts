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
    if (error) throw migrationFailure(error, set.owner);
  }
  return applied;
}

/** A database whose history has a migration this release does not know. */
export class DatabaseFromNewerRelease extends Error {}

/**
 * Kysely calls a history with a migration it was not given "corrupted". Its usual cause is a database
 * that a newer release migrated, opened by an older one: said so, with what to do.
 */
export function migrationFailure(error: unknown, owner: string): Error {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /previously executed migration (\S+) is missing/.exec(message)?.[1];
  if (unknown === undefined) return error instanceof Error ? error : new Error(message);
  return new DatabaseFromNewerRelease(
    `the database was migrated by a newer Intake (${owner} migration ${unknown} is unknown to this one): ` +
      'run that release or a later one, or restore a backup taken before the upgrade',
  );
}
