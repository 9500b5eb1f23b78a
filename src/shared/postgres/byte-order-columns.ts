import { PostgresAdapter, sql, type Kysely, type Migration } from 'kysely';

/**
 * A migration that makes the given text columns compare by bytes on PostgreSQL (`COLLATE "C"`), as
 * SQLite compares text: lists ordered by a name users choose, and their keyset cursors (`>`), then
 * agree on every database, whatever collation it was created with. Indexes on those columns are
 * rebuilt in the new order; the rows themselves are not rewritten. SQLite has nothing to change.
 */
export function byteOrderColumns(columns: Readonly<Record<string, readonly string[]>>): Migration {
  return {
    async up(db: Kysely<unknown>) {
      if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
      for (const [table, names] of Object.entries(columns)) {
        const changes = names.map((name) => sql`ALTER COLUMN ${sql.ref(name)} TYPE text COLLATE "C"`);
        await sql`ALTER TABLE ${sql.table(table)} ${sql.join(changes)}`.execute(db);
      }
    },
  };
}
