import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgres, type PostgresHandle } from './open-postgres.js';

export const testPostgresUrl: string | undefined = process.env.TEST_POSTGRES_URL || undefined;

/**
 * For tests: a handle on a fresh schema of its own, dropped on close, so test files and parallel runs
 * sharing one database never see each other's tables.
 */
export async function openTemporarySchema(url: string, prefix = 'intake_test'): Promise<PostgresHandle> {
  const schema = `${prefix}_${randomBytes(6).toString('hex')}`;
  const handle = await openPostgres({ url, schema });
  return {
    ...handle,
    async close() {
      await handle.close();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}
