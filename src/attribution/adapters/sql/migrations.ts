import { sql, type Kysely, type Migration } from 'kysely';
import { onSqlite } from '../../../shared/sql/statement-shapes.js';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { byteOrderColumns } from '../../../shared/postgres/byte-order-columns.js';
import { requestReplay } from '../../../shared/subscriptions/checkpoints.js';

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

/**
 * A visitor becomes two columns, `app_id` ('' for the tracking API's visitors) and `visitor_id`, where
 * an SDK user was `<app_id>:<user>` in one text that another application's user, or a tracking-API
 * visitor id, could spell too (decision 0029). The old rows cannot be split back: the text does not
 * say where an application id holding ':' ends, nor whether a touch came from the tracking API or
 * an SDK. So the tables start over empty in their new shape and, when they held anything, the
 * attribution subscriber is asked to rebuild them from the facts it was fed (decision 0010).
 */
const visitorsOfTheirApplication: Migration = {
  async up(db: Kysely<unknown>) {
    const tables = db.withTables<{
      attribution_touches: { tracking_event_id: string };
      attribution_conversions: { conversion_id: string };
      attribution_scope_totals: { scope: string };
      attribution_credits: { conversion_id: string };
    }>();
    const held =
      (await tables.selectFrom('attribution_touches').select('tracking_event_id').limit(1).executeTakeFirst()) !== undefined ||
      (await tables.selectFrom('attribution_conversions').select('conversion_id').limit(1).executeTakeFirst()) !== undefined;
    for (const table of ['attribution_touches', 'attribution_conversions', 'attribution_scope_visitors']) {
      await db.schema.dropTable(table).execute();
    }
    // Counted and credited from the facts just dropped: emptied with them, and rebuilt with them.
    await tables.deleteFrom('attribution_scope_totals').execute();
    await tables.deleteFrom('attribution_credits').execute();
    await db.schema
      .createTable('attribution_touches')
      .addColumn('tracking_event_id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('visitor_id', 'text', (c) => c.notNull())
      .addColumn('partner_id', 'text', (c) => c.notNull())
      .addColumn('campaign_id', 'text', (c) => c.notNull())
      .addColumn('interaction_type', 'text', (c) => c.notNull())
      .addColumn('occurred_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('attribution_touches_visitor')
      .on('attribution_touches')
      .columns(['app_id', 'visitor_id', 'occurred_at', 'tracking_event_id'])
      .execute();
    await db.schema
      .createTable('attribution_conversions')
      .addColumn('conversion_id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('visitor_id', 'text', (c) => c.notNull())
      .addColumn('value', 'double precision', (c) => c.notNull())
      .addColumn('occurred_at', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('attribution_conversions_visitor')
      .on('attribution_conversions')
      .columns(['app_id', 'visitor_id', 'occurred_at', 'conversion_id'])
      .execute();
    await db.schema
      .createTable('attribution_scope_visitors')
      .addColumn('scope', 'text', (c) => c.notNull())
      .addColumn('scope_id', 'text', (c) => c.notNull())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('visitor_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('attribution_scope_visitors_pk', ['scope', 'scope_id', 'app_id', 'visitor_id'])
      .execute();
    if (held) {
      await requestReplay(
        db as Kysely<object>,
        'attribution',
        "visitors became (application, visitor id): an SDK user was '<app_id>:<user>', which other ids could spell too",
      );
    }
  },
};

/**
 * The anonymous ids known to be an SDK user (decision 0038). Earlier messages tied ids too, so where
 * SDK messages were attributed before, the subscriber is asked to rebuild from the log, which finds
 * those ties and credits the users' conversions from their anonymous touches.
 */
const identityLinks: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('attribution_identity_links')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('anonymous_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('attribution_identity_links_pk', ['app_id', 'anonymous_id', 'user_id'])
      .execute();
    await db.schema
      .createIndex('attribution_identity_links_user')
      .on('attribution_identity_links')
      .columns(['app_id', 'user_id'])
      .execute();
    // A user's anonymous ids are listed by bytes on every database, as other names are.
    await byteOrderColumns({ attribution_identity_links: ['anonymous_id'] }).up(db);
    const tables = db.withTables<{ attribution_touches: { app_id: string }; attribution_conversions: { app_id: string } }>();
    const sdkFacts = async (table: 'attribution_touches' | 'attribution_conversions') =>
      (await tables.selectFrom(table).select('app_id').where('app_id', '<>', '').limit(1).executeTakeFirst()) !== undefined;
    if ((await sdkFacts('attribution_touches')) || (await sdkFacts('attribution_conversions'))) {
      await requestReplay(
        db as Kysely<object>,
        'attribution',
        "an SDK user's conversions are credited from their anonymous ids' touches too",
      );
    }
  },
};

/**
 * Credits follow chains of ties (decision 0049): where an anonymous id is itself a user with ties of
 * its own (an alias's previousId that had signed in), its users' conversions were credited one tie
 * deep, and a rebuild from the log credits them again. Without such a tie nothing changes.
 */
const chainsOfTies: Migration = {
  async up(db: Kysely<unknown>) {
    const links = db as Kysely<object>;
    // Through the user index for each tie (see tiesStatement): SQLite, without statistics, would read
    // every tie of the application instead, and PostgreSQL cannot compare in the anonymous ids' collation.
    const sqlite = onSqlite(links);
    const users = sqlite ? sql`INDEXED BY attribution_identity_links_user` : sql``;
    const anonymous = sqlite ? sql`a.anonymous_id` : sql`a.anonymous_id COLLATE "default"`;
    const { rows } = await sql`SELECT 1 AS chained FROM attribution_identity_links AS a
      WHERE EXISTS (SELECT 1 FROM attribution_identity_links AS b ${users} WHERE b.app_id = a.app_id AND b.user_id = ${anonymous})
      LIMIT 1`.execute(links);
    if (rows.length > 0) await requestReplay(links, 'attribution', "an SDK user's conversions are credited along chains of aliases");
  },
};

export const attributionMigrations: MigrationSet = {
  owner: 'attribution',
  migrations: {
    '0001_create_attribution_tables': createAttributionTables,
    '0002_credits_in_byte_order': creditsInByteOrder,
    '0003_visitors_of_their_application': visitorsOfTheirApplication,
    '0004_identity_links': identityLinks,
    '0005_chains_of_ties': chainsOfTies,
  },
};
