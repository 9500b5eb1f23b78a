import { sql, type Kysely, type Migration } from 'kysely';
import type { MigrationSet } from '../../sqlite/migrate.js';

const createEvents: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('events')
      // INTEGER PRIMARY KEY is the rowid: a gap-free, strictly increasing position for an append-only table.
      .addColumn('position', 'integer', (c) => c.primaryKey())
      .addColumn('event_id', 'text', (c) => c.notNull().unique())
      .addColumn('stream_id', 'text', (c) => c.notNull())
      .addColumn('stream_version', 'integer', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('metadata', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('events_stream_version', ['stream_id', 'stream_version'])
      .execute();
    // Nothing may rewrite history.
    await sql`CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END`.execute(db);
    await sql`CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END`.execute(db);
  },
};

export const sqliteEventStoreMigrations: MigrationSet = {
  owner: 'event_store',
  migrations: { '0001_create_events': createEvents },
};
