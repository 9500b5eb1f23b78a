import type { Kysely, Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';

const createTrackingEvents: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('tracking_events')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('partner_id', 'text', (c) => c.notNull())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('visitor_id', 'text', (c) => c.notNull())
      .addColumn('interaction_type', 'text', (c) => c.notNull())
      .addColumn('source_url', 'text', (c) => c.notNull())
      .addColumn('destination_url', 'text', (c) => c.notNull())
      .addColumn('occurred_at', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .execute();
  },
};

export const trackingMigrations: MigrationSet = {
  owner: 'tracking',
  migrations: { '0001_create_tracking_events': createTrackingEvents },
};
