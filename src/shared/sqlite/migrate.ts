import { Migrator, sql, type Kysely, type Migration } from 'kysely';
import { messageOf } from '../errors.js';

export interface MigrationSet {
  /** Owner of the migrations: one history table per context, so contexts evolve independently. */
  readonly owner: string;
  readonly migrations: Readonly<Record<string, Migration>>;
}

/**
 * Brings each set's tables up to date, each set in one transaction: Kysely runs SQLite's migrations
 * without one (it takes SQLite for a database without transactional DDL, which it is not), and an
 * upgrade cut short (a full disk, a kill) left a column added without its history row, so that every
 * later start failed on "duplicate column name". The connection is SQLite's only one: the migrator's
 * statements run inside the transaction begun here.
 */
export async function migrateToLatest(db: Kysely<object>, sets: readonly MigrationSet[]): Promise<string[]> {
  const applied: string[] = [];
  for (const set of sets) {
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => ({ ...set.migrations }) },
      migrationTableName: `${set.owner}_migrations`,
      migrationLockTableName: `${set.owner}_migrations_lock`,
    });
    await sql`BEGIN IMMEDIATE`.execute(db);
    const { error, results } = await migrator.migrateToLatest().catch((thrown: unknown) => ({ error: thrown, results: undefined }));
    if (error) {
      await sql`ROLLBACK`.execute(db).catch(() => undefined);
      const failed = results?.find((result) => result.status === 'Error')?.migrationName;
      throw migrationFailure(error, set.owner, failed);
    }
    await sql`COMMIT`.execute(db);
    for (const result of results ?? []) {
      if (result.status === 'Success') applied.push(`${set.owner}/${result.migrationName}`);
    }
  }
  return applied;
}

/** A database whose history has a migration this release does not know. */
export class DatabaseFromNewerRelease extends Error {}

/**
 * Kysely calls a history with a migration it was not given "corrupted". Its usual cause is a database
 * that a newer release migrated, opened by an older one: said so, with what to do.
 */
export function migrationFailure(error: unknown, owner: string, failed?: string): Error {
  const message = messageOf(error);
  const unknown = /previously executed migration (\S+) is missing/.exec(message)?.[1];
  if (unknown === undefined) {
    if (failed === undefined) return error instanceof Error ? error : new Error(message);
    return Object.assign(new Error(`${owner} migration ${failed} failed, and was undone: ${message}`), {
      cause: error,
      ...(typeof (error as { code?: unknown }).code === 'string' ? { code: (error as { code: string }).code } : {}),
    });
  }
  return new DatabaseFromNewerRelease(
    `the database was migrated by a newer Intake (${owner} migration ${unknown} is unknown to this one): ` +
      'run that release or a later one, or restore a backup taken before the upgrade',
  );
}
