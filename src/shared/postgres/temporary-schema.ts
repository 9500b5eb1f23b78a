import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgres, type OpenPostgresOptions, type PostgresHandle } from './open-postgres.js';

export const testPostgresUrl: string | undefined = process.env.TEST_POSTGRES_URL || undefined;

/**
 * For tests: a handle on a fresh schema of its own, dropped on close, so test files and parallel runs
 * sharing one database never see each other's tables.
 */
export async function openTemporarySchema(
  url: string,
  prefix = 'intake_test',
  options: Pick<OpenPostgresOptions, 'idleInTransactionTimeoutMs' | 'maxConnections'> = {},
): Promise<PostgresHandle> {
  const schema = `${prefix}_${randomBytes(6).toString('hex')}`;
  const handle = await openPostgres({ url, schema, ...options });
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

/**
 * For tests: a transaction on a connection of its own, begun and given an id now and left open until
 * `end()` (which may be called again), as one of another schema or service may be. Before decision
 * 0040 it held every later commit out of the event store's reads.
 */
export async function openOlderTransaction(url: string): Promise<{ end(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  await client.query('SELECT pg_current_xact_id()');
  let ended: Promise<void> | undefined;
  return {
    end: () =>
      (ended ??= (async () => {
        try {
          await client.query('COMMIT');
        } finally {
          await client.end();
        }
      })()),
  };
}
