import type { Kysely, Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { byteOrderColumns } from '../../../shared/postgres/byte-order-columns.js';

/** Plain columns and composite keys only, so the same migration runs on SQLite and PostgreSQL. */
const createAttributionTables: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('attribution_touches')
      .addColumn('tracking_event_id', 'text', (c) => c.primaryKey())
      .addColumn('visitor_id', 'text', (c) => c.notNull())
      .addColumn('partner_id', 'text', (c) => c.notNull())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('interaction_type', 'text', (c) => c.notNull())
      .addColumn('occurred_at', 'text', (c) => c.notNull())
      .execute();
    // A visitor's journey and a conversion's window are ranges of this index.
    await db.schema
      .createIndex('attribution_touches_visitor')
      .on('attribution_touches')
      .columns(['visitor_id', 'occurred_at', 'tracking_event_id'])
      .execute();

    await db.schema
      .createTable('attribution_conversions')
      .addColumn('conversion_id', 'text', (c) => c.primaryKey())
      .addColumn('visitor_id', 'text', (c) => c.notNull())
      .addColumn('value', 'double precision', (c) => c.notNull())
      .addColumn('occurred_at', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('attribution_conversions_visitor')
      .on('attribution_conversions')
      .columns(['visitor_id', 'occurred_at', 'conversion_id'])
      .execute();

    await db.schema
      .createTable('attribution_scope_totals')
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('scope_id', 'text', (c) => c.notNull())
      .addColumn('clicks', 'bigint', (c) => c.notNull())
      .addColumn('views', 'bigint', (c) => c.notNull())
      .addColumn('engagements', 'bigint', (c) => c.notNull())
      .addColumn('unique_visitors', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('attribution_scope_totals_pk', ['scope', 'scope_id'])
      .execute();

    await db.schema
      .createTable('attribution_scope_visitors')
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('scope_id', 'text', (c) => c.notNull())
      .addColumn('visitor_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('attribution_scope_visitors_pk', ['scope', 'scope_id', 'visitor_id'])
      .execute();

    await db.schema
      .createTable('attribution_credits')
      .addColumn('conversion_id', 'text', (c) => c.notNull())
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('partner_id', 'text', (c) => c.notNull())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('share', 'double precision', (c) => c.notNull())
      .addColumn('value', 'double precision', (c) => c.notNull())
      .addPrimaryKeyConstraint('attribution_credits_pk', ['conversion_id', 'model', 'partner_id', 'campaign_id'])
      .execute();
    // A campaign's or partner's credited conversions under one model are a range of one of these.
    await db.schema.createIndex('attribution_credits_campaign').on('attribution_credits').columns(['model', 'campaign_id']).execute();
    await db.schema.createIndex('attribution_credits_partner').on('attribution_credits').columns(['model', 'partner_id']).execute();
  },
};

// A conversion's credits are listed by (model, partner, campaign): by bytes on every database.
const creditsInByteOrder = byteOrderColumns({ attribution_credits: ['partner_id', 'campaign_id'] });

export const attributionMigrations: MigrationSet = {
  owner: 'attribution',
  migrations: {
    '0001_create_attribution_tables': createAttributionTables,
    '0002_credits_in_byte_order': creditsInByteOrder,
  },
};
