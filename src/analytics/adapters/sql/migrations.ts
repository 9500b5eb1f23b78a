import type { Kysely, Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { byteOrderColumns } from '../../../shared/postgres/byte-order-columns.js';

/** The profiles view: plain columns and composite keys, so the same migration runs on SQLite and PostgreSQL. */
const createProfiles: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('analytics_profile_traits')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('subject_type', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('trait', 'text', (c) => c.notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('set_at', 'text', (c) => c.notNull())
      .addColumn('item_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('analytics_profile_traits_pk', ['app_id', 'subject_type', 'subject_id', 'trait'])
      .execute();
    await db.schema
      .createTable('analytics_profile_ids')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('other_id', 'text', (c) => c.notNull())
      .addColumn('link', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('analytics_profile_ids_pk', ['app_id', 'user_id', 'other_id', 'link'])
      .execute();
    await db.schema
      .createTable('analytics_profile_groups')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('group_id', 'text', (c) => c.notNull())
      .addColumn('since', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('analytics_profile_groups_pk', ['app_id', 'user_id', 'group_id'])
      .execute();
  },
};

/** Per-application settings of the tracking API: the browser origins it accepts (null: any). */
const createSources: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('analytics_sources')
      .addColumn('app_id', 'text', (c) => c.primaryKey())
      .addColumn('allowed_origins', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
  },
};

// A profile lists its linked ids and its groups in id order: by bytes on every database.
const profileIdsInByteOrder = byteOrderColumns({ analytics_profile_ids: ['other_id'], analytics_profile_groups: ['group_id'] });
// And its traits, which it cuts at the first 1,000 by name: the same ones on every database.
const profileTraitsInByteOrder = byteOrderColumns({ analytics_profile_traits: ['trait'] });

export const analyticsMigrations: MigrationSet = {
  owner: 'analytics',
  migrations: {
    '0001_profiles': createProfiles,
    '0002_sources': createSources,
    '0003_profile_ids_in_byte_order': profileIdsInByteOrder,
    '0004_profile_traits_in_byte_order': profileTraitsInByteOrder,
  },
};
