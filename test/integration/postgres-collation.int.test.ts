import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlProfileViews } from '../../src/analytics/adapters/sql/sql-profiles.js';
import { ROLE_CONTEXTS } from '../../src/app/distributed.js';
import { ROLES } from '../../src/app/roles.js';
import { sqlAttributionViews } from '../../src/attribution/adapters/sql/sql-attribution-views.js';
import { postgresEventStoreMigrations } from '../../src/shared/event-store/postgres/migrations.js';
import { migratePostgresToLatest } from '../../src/shared/postgres/migrate.js';
import { openPostgres } from '../../src/shared/postgres/open-postgres.js';
import { testPostgresUrl } from '../../src/shared/postgres/temporary-schema.js';
import { subscriptionMigrations } from '../../src/shared/subscriptions/migrations.js';
import { auth, startTestIntake, type TestIntake } from '../support/embedded-intake.js';
import { everyPage } from '../support/paging.js';

/** SQLite's order of text: by the bytes of its UTF-8. */
const byBytes = (values: readonly string[]) => [...values].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

// Names a locale orders otherwise than bytes: case folded together, punctuation weighed apart, é beside e.
const APP_IDS = ['_u', 'Alpha', 'B2', 'Zeta', 'a-b', 'a_b', 'alpha', 'b10', 'éclair', 'zeta'];
const EVENT_TYPES = ['Alpha', 'B2', 'Zeta', 'a-b', 'a.b', 'a_b', 'alpha', 'b10'];
const SCHEMA_KEYS: ReadonlyArray<[string, string | undefined]> = [
  ['b10', undefined],
  ['B2', 'p-1'],
  ['B2', 'P2'],
  ['B2', 'p_1'],
  ['B2', undefined],
  ['alpha', 'x'],
  ['Alpha', 'x'],
];

/** The text columns lists order or page by, with a value users choose: each must compare by bytes. */
const BYTE_ORDER_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  applications: ['app_id'],
  processing_pipelines: ['event_type'],
  validation_schemas: ['event_type', 'partner_id'],
  statistics_buckets: ['app_id', 'event_type'],
  statistics_type_totals: ['app_id', 'event_type'],
  statistics_bucket_totals: ['app_id'],
  attribution_credits: ['partner_id', 'campaign_id'],
  attribution_identity_links: ['anonymous_id'],
  analytics_profile_ids: ['other_id'],
  analytics_profile_groups: ['group_id'],
  analytics_profile_traits: ['trait'],
};

interface NonCDatabase {
  readonly url: string;
  drop(): Promise<void>;
}

/**
 * A fresh database whose default collation is not C: ICU en-US when the server has ICU, else the
 * libc en_US.UTF-8 locale. Undefined (with the reason logged) when the server can create neither.
 */
async function createNonCDatabase(url: string): Promise<NonCDatabase | undefined> {
  const name = `intake_collation_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const attempts = [
    `LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`,
    `LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'`,
    `LC_COLLATE 'en_US.utf8' LC_CTYPE 'en_US.utf8'`,
  ];
  const reasons: string[] = [];
  try {
    for (const locale of attempts) {
      try {
        await admin.query(`CREATE DATABASE "${name}" TEMPLATE template0 ${locale}`);
      } catch (error) {
        reasons.push((error as Error).message);
        continue;
      }
      const target = new URL(url);
      target.pathname = `/${name}`;
      const drop = async () => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        } finally {
          await client.end();
        }
      };
      // The point is a database whose own order differs from bytes: make sure this one's does.
      const probe = new pg.Client({ connectionString: target.toString() });
      await probe.connect();
      const { rows } = await probe.query<{ locale: boolean }>(`SELECT 'a' < 'B' AS locale`).finally(() => probe.end());
      if (rows[0]?.locale) return { url: target.toString(), drop };
      await drop();
      reasons.push(`${locale}: the database still orders by bytes`);
    }
  } finally {
    await admin.end();
  }
  console.warn(`skipping the non-C collation tests: the server cannot create such a database (${reasons.join('; ')})`);
  return undefined;
}

type ListsSeen = {
  applications: string[];
  pipelines: string[];
  schemas: Array<[string, string | null]>;
  statisticsApps: string[];
  buckets: string[];
};

/** Fills an Intake with the names above, then walks each list two items a page. */
async function walkLists(intake: TestIntake): Promise<ListsSeen> {
  const send = async (method: 'POST' | 'PUT', url: string, payload: unknown) => {
    const response = await intake.app.inject({ method, url, headers: auth, payload: payload as object });
    expect(response.statusCode, `${method} ${url}: ${response.body}`).toBeLessThan(300);
  };
  for (const appId of APP_IDS) {
    await send('POST', '/api/applications', { name: `app ${appId}`, app_id: appId });
    await send('POST', `/api/ingest/${encodeURIComponent(appId)}`, { event_type: 'visit', payload: {} });
  }
  for (const eventType of EVENT_TYPES) {
    await send('PUT', `/api/pipelines/${encodeURIComponent(eventType)}`, { steps: [{ processor: 'normalize' }] });
    await send('POST', '/api/ingest/Alpha', { event_type: eventType, payload: {} });
  }
  for (const [eventType, partnerId] of SCHEMA_KEYS) {
    await send('PUT', `/api/schemas/${encodeURIComponent(eventType)}`, {
      schema: { type: 'object' },
      ...(partnerId ? { partner_id: partnerId } : {}),
    });
  }
  await intake.subscriptions.caughtUp(30_000);

  const buckets: string[] = [];
  let cursor: string | null = null;
  do {
    const url: string = `/api/statistics/Alpha?time_period=weekly&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const response = await intake.app.inject({ method: 'GET', url, headers: auth });
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json() as { buckets: Array<{ event_type: string }>; next_cursor: string | null };
    buckets.push(...page.buckets.map((b) => b.event_type));
    cursor = page.next_cursor;
  } while (cursor);

  return {
    applications: (await everyPage<{ app_id: string }>(intake, '/api/applications', 2)).items.map((a) => a.app_id),
    pipelines: (await everyPage<{ event_type: string }>(intake, '/api/pipelines', 2)).items.map((p) => p.event_type),
    schemas: (await everyPage<{ event_type: string; partner_id: string | null }>(intake, '/api/schemas', 2)).items.map((s) => [
      s.event_type,
      s.partner_id,
    ]),
    statisticsApps: (await everyPage<{ app_id: string }>(intake, '/api/statistics/apps', 2)).items.map((a) => a.app_id),
    buckets,
  };
}

if (!testPostgresUrl) console.warn('skipping the non-C collation tests: TEST_POSTGRES_URL is not set');

describe.skipIf(!testPostgresUrl)('lists on a PostgreSQL database whose default collation is not C', () => {
  let database: NonCDatabase | undefined;
  beforeAll(async () => {
    database = await createNonCDatabase(testPostgresUrl ?? '');
  });
  afterAll(() => database?.drop());

  it('order and page names by bytes, as on SQLite', async (context) => {
    if (!database) return context.skip('the server cannot create a database with a non-C collation');
    const onSqlite = await startTestIntake();
    const onPostgres = await startTestIntake({ DATABASE_URL: database.url });
    try {
      const expected: ListsSeen = {
        applications: byBytes(APP_IDS),
        pipelines: byBytes(EVENT_TYPES),
        // '' (every source) first: null in the body.
        schemas: [
          ['Alpha', 'x'],
          ['B2', null],
          ['B2', 'P2'],
          ['B2', 'p-1'],
          ['B2', 'p_1'],
          ['alpha', 'x'],
          ['b10', null],
        ],
        statisticsApps: byBytes(APP_IDS),
        buckets: byBytes([...EVENT_TYPES, 'visit']),
      };
      expect(await walkLists(onSqlite)).toEqual(expected);
      expect(await walkLists(onPostgres)).toEqual(expected);
    } finally {
      await onSqlite.dispose();
      await onPostgres.dispose();
    }
  });

  it('compares those columns by bytes in every distributed role schema, replicas included', async (context) => {
    if (!database) return context.skip('the server cannot create a database with a non-C collation');
    const seen = new Map<string, string[]>();
    for (const role of ROLES) {
      const postgres = await openPostgres({ url: database.url, schema: `role_${role}` });
      try {
        const tables = ROLE_CONTEXTS[role].flatMap((descriptor) => descriptor.tables.migrations);
        await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, ...tables]);
        const { rows } = await postgres.pool.query<{ table_name: string; column_name: string; collation_name: string | null }>(
          `SELECT table_name, column_name, collation_name FROM information_schema.columns WHERE table_schema = $1`,
          [postgres.schema],
        );
        for (const [table, columns] of Object.entries(BYTE_ORDER_COLUMNS)) {
          const found = rows.filter((row) => row.table_name === table);
          if (found.length === 0) continue;
          seen.set(table, [...(seen.get(table) ?? []), role]);
          for (const column of columns) {
            expect(found.find((row) => row.column_name === column)?.collation_name, `${role}: ${table}.${column}`).toBe('C');
          }
        }

        if (role === 'attribution') {
          const partners = ['Zeta', 'a-b', 'a_b', 'alpha', 'B2'];
          await postgres.pool.query(
            `INSERT INTO attribution_credits (conversion_id, model, partner_id, campaign_id, share, value)
             SELECT 'c1', 'linear', p, 'camp', 0.2, 1 FROM unnest($1::text[]) AS p`,
            [partners],
          );
          const credits = await sqlAttributionViews(postgres.db).creditsOf('c1');
          expect(credits.map((c) => c.partnerId)).toEqual(byBytes(partners));
        }
        if (role === 'ingestion') {
          const ids = ['Zeta', 'a-b', 'a_b', 'alpha', 'B2'];
          await postgres.pool.query(
            `INSERT INTO analytics_profile_ids (app_id, user_id, other_id, link) SELECT 'shop', 'u1', i, 'alias' FROM unnest($1::text[]) AS i`,
            [ids],
          );
          await postgres.pool.query(
            `INSERT INTO analytics_profile_groups (app_id, user_id, group_id, since) SELECT 'shop', 'u1', g, 'now' FROM unnest($1::text[]) AS g`,
            [ids],
          );
          const views = sqlProfileViews(postgres.db);
          expect((await views.linkedIds('shop', ['u1'], 'alias', 10)).map((l) => l.otherId)).toEqual(byBytes(ids));
          expect((await views.groups('shop', ['u1'], 10)).map((g) => g.groupId)).toEqual(byBytes(ids));
          // A profile keeps its first traits by name: by bytes too, or a locale would keep others.
          await postgres.pool.query(
            `INSERT INTO analytics_profile_traits (app_id, subject_type, subject_id, trait, value, set_at, item_id)
             SELECT 'shop', 'user', 'u1', t, '1', 'now', 'i1' FROM unnest($1::text[]) AS t`,
            [ids],
          );
          expect((await views.traitSizes('shop', 'user', ['u1'], undefined, 10)).map((t) => t.trait)).toEqual(byBytes(ids));
        }
      } finally {
        await postgres.close();
      }
    }
    // Applications live in the ingestion role; routing keeps a replica of their table.
    expect(seen.get('applications')).toEqual(['ingestion', 'routing']);
    expect([...seen.keys()].sort()).toEqual(Object.keys(BYTE_ORDER_COLUMNS).sort());
  });
});
