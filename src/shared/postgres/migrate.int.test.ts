import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { MigrationSet } from '../sqlite/migrate.js';
import { migratePostgresToLatest } from './migrate.js';
import { openTemporarySchema, testPostgresUrl } from './temporary-schema.js';

if (!testPostgresUrl) console.warn('skipping PostgreSQL migrations: TEST_POSTGRES_URL is not set');

const twoTables: MigrationSet = {
  owner: 'churn',
  migrations: {
    '0001_tables': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('churn_a')
          .addColumn('id', 'bigserial', (c) => c.primaryKey())
          .addColumn('v', 'text')
          .execute();
        await db.schema
          .createTable('churn_b')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .execute();
      },
    },
  },
};

describe.skipIf(!testPostgresUrl)('PostgreSQL migrations', () => {
  it('succeed while other sessions create and drop schemas beside them', async () => {
    const url = testPostgresUrl ?? '';
    const churner = new pg.Client({ connectionString: url });
    await churner.connect();
    let churning = true;
    // Other services or test files: schemas with tables, dropped right after, dozens of times a second.
    const churn = (async () => {
      while (churning) {
        const schema = `churn_${randomBytes(5).toString('hex')}`;
        await churner.query(`CREATE SCHEMA "${schema}"`);
        await churner.query(`CREATE TABLE "${schema}".t (id bigserial primary key, a text, b text, c text)`);
        await churner.query(`DROP SCHEMA "${schema}" CASCADE`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    try {
      for (let i = 0; i < 25; i++) {
        const postgres = await openTemporarySchema(url, 'intake_migrate');
        try {
          expect(await migratePostgresToLatest(postgres, [twoTables])).toEqual(['churn/0001_tables']);
        } finally {
          await postgres.close();
        }
      }
    } finally {
      churning = false;
      await churn;
      await churner.end();
    }
  }, 60_000);
});
