import { sql, type Kysely, type Migration } from 'kysely';
import type { MigrationSet } from '../../sqlite/migrate.js';

const createEvents: Migration = {
  async up(db: Kysely<unknown>) {
    // json, not jsonb: the log keeps each payload exactly as written (key order, \u0000 and all) and
    // only ever reads it back whole; views that query inside payloads use jsonb of their own.
    await sql`
      CREATE TABLE events (
        position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id uuid NOT NULL UNIQUE,
        stream_id text NOT NULL,
        stream_version integer NOT NULL,
        type text NOT NULL,
        data json NOT NULL,
        metadata json NOT NULL,
        recorded_at timestamptz NOT NULL,
        -- Positions are taken before commit, so they do not commit in order; readers order by
        -- (transaction_id, position) and stay below the oldest running transaction instead.
        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
        CONSTRAINT events_stream_version UNIQUE (stream_id, stream_version)
      )`.execute(db);
    await sql`CREATE INDEX events_read_order ON events (transaction_id, position)`.execute(db);
    // Nothing may rewrite history.
    await sql`
      CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'events are append-only';
      END
      $$`.execute(db);
    await sql`CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
              FOR EACH ROW EXECUTE FUNCTION events_are_append_only()`.execute(db);
    await sql`CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
              FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only()`.execute(db);
  },
};

const readInPositionOrder: Migration = {
  async up(db: Kysely<unknown>) {
    // From here on appends take the log's lock, so positions commit in order and readers read by
    // position. Events written before keep being read as they were, in (transaction_id, position)
    // order: this row says up to which position that holds.
    await sql`CREATE TABLE event_read_order (position_order_after bigint NOT NULL)`.execute(db);
    await sql`INSERT INTO event_read_order SELECT COALESCE(max(position), 0) FROM events`.execute(db);
  },
};

const readOrderIndexForOlderEventsOnly: Migration = {
  async up(db: Kysely<unknown>) {
    // Only events from before position order are read by (transaction_id, position): the index need
    // not grow with every append after them. Empty where there were none.
    const row = await sql<{ end: string }>`SELECT position_order_after AS end FROM event_read_order`.execute(db);
    const legacyEnd = BigInt(row.rows[0]?.end ?? 0);
    await sql`DROP INDEX events_read_order`.execute(db);
    // DDL takes no parameters: the bound is a number read back from the database, written as a literal.
    await sql`CREATE INDEX events_read_order ON events (transaction_id, position) WHERE position <= ${sql.lit(legacyEnd.toString())}::bigint`.execute(
      db,
    );
  },
};

export const postgresEventStoreMigrations: MigrationSet = {
  owner: 'event_store',
  migrations: {
    '0001_create_events': createEvents,
    '0002_read_in_position_order': readInPositionOrder,
    '0003_read_order_index_for_older_events_only': readOrderIndexForOlderEventsOnly,
  },
};
