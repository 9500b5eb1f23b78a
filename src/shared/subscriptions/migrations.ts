import type { Kysely, Migration } from 'kysely';
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

export const subscriptionMigrations: MigrationSet = {
  owner: 'subscriptions',
  migrations: { '0001_create_checkpoints_and_parked_events': createCheckpoints, '0002_create_consumed_events': createConsumedEvents },
};
