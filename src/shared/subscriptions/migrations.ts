import { sql, type Kysely, type Migration } from 'kysely';
import type { MigrationSet } from '../sqlite/migrate.js';

const createCheckpoints: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('subscription_checkpoints')
      .addColumn('subscriber', 'text', (c) => c.primaryKey())
      .addColumn('position', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('parked_events')
      .addColumn('subscriber', 'text', (c) => c.notNull())
      .addColumn('position', 'bigint', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('stream_id', 'text', (c) => c.notNull())
      .addColumn('error', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('parked_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('parked_events_pk', ['subscriber', 'position'])
      .execute();
  },
};

const createConsumedEvents: Migration = {
  async up(db: Kysely<unknown>) {
    // Bus consumers record each event they handled, in the handler's transaction: a redelivery is a no-op.
    await db.schema
      .createTable('consumed_events')
      .addColumn('subscriber', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('consumed_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('consumed_events_pk', ['subscriber', 'event_id'])
      .execute();
  },
};

const parkByEventId: Migration = {
  async up(db: Kysely<unknown>) {
    // Keyed by event id: a bus consumer's events come from several services' logs, whose positions
    // collide. The event itself is kept too, so a bus consumer (which has no log to read it back
    // from) can retry it. Rebuilt rather than altered: SQLite cannot change a primary key in place.
    await db.schema
      .createTable('parked_events_by_id')
      .addColumn('subscriber', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('position', 'bigint', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('stream_id', 'text', (c) => c.notNull())
      .addColumn('event', 'text')
      .addColumn('error', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('parked_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('parked_events_by_id_pk', ['subscriber', 'event_id'])
      .execute();
    await sql`
      INSERT INTO parked_events_by_id (subscriber, event_id, position, event_type, stream_id, error, attempts, parked_at)
      SELECT subscriber, event_id, position, event_type, stream_id, error, attempts, parked_at FROM parked_events`.execute(db);
    await db.schema.dropTable('parked_events').execute();
    await db.schema.alterTable('parked_events_by_id').renameTo('parked_events').execute();
  },
};

const createReplayRequests: Migration = {
  async up(db: Kysely<unknown>) {
    // A context's migration that changes what its view means asks here for the view to be rebuilt;
    // the subscriber does so when it next starts, and the row goes in the rebuild's transaction.
    await db.schema
      .createTable('replay_requests')
      .addColumn('subscriber', 'text', (c) => c.primaryKey())
      .addColumn('reason', 'text', (c) => c.notNull())
      .execute();
  },
};

const createBusBinding: Migration = {
  async up(db: Kysely<unknown>) {
    // A distributed role's schema names the stream and subjects of its deployment (bus-binding.ts).
    await db.schema
      .createTable('bus_binding')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
  },
};

const acceptBoundStreams: Migration = {
  async up(db: Kysely<unknown>) {
    // A binding made before the broker's acceptance was recorded stands as accepted, as it always did.
    await sql`INSERT INTO bus_binding (name, value) SELECT 'accepted', 'true' WHERE EXISTS (SELECT 1 FROM bus_binding WHERE name = 'stream')`.execute(
      db,
    );
  },
};

const recordReplaysUnderWay: Migration = {
  async up(db: Kysely<unknown>) {
    // The head a replay rebuilds a view up to, kept with the checkpoint: a restart in the middle of a
    // replay still reports the view incomplete until it has read that far.
    await db.schema.alterTable('subscription_checkpoints').addColumn('replaying_until', 'bigint').execute();
  },
};

export const subscriptionMigrations: MigrationSet = {
  owner: 'subscriptions',
  migrations: {
    '0001_create_checkpoints_and_parked_events': createCheckpoints,
    '0002_create_consumed_events': createConsumedEvents,
    '0003_park_by_event_id': parkByEventId,
    '0004_create_replay_requests': createReplayRequests,
    '0005_create_bus_binding': createBusBinding,
    '0006_accept_bound_streams': acceptBoundStreams,
    '0007_record_replays_under_way': recordReplaysUnderWay,
  },
};
