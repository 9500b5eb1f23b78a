import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from '../../../test/support/tcp-proxy.js';
import { isStorageFault } from '../event-store/storage-fault.js';
import { openPostgres, type PostgresHandle } from './open-postgres.js';

const postgresUrl = process.env.TEST_POSTGRES_URL;
if (!postgresUrl) console.warn('skipping the silent PostgreSQL server watch: TEST_POSTGRES_URL is not set');

describe.skipIf(!postgresUrl)('a PostgreSQL server that stops answering', () => {
  const schema = `silent_${randomBytes(4).toString('hex')}`;
  let proxy: TcpProxy | undefined;
  let handle: PostgresHandle | undefined;

  const openThroughProxy = async () => {
    const target = new URL(postgresUrl ?? '');
    proxy = await startTcpProxy(Number(target.port || 5432), target.hostname);
    target.port = String(proxy.port);
    handle = await openPostgres({ url: target.toString(), schema, stallMs: 300 });
    return handle;
  };

  afterEach(async () => {
    proxy?.thaw();
    await handle?.close();
    await proxy?.close();
  });

  afterAll(async () => {
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });

  it('fails the query in flight as a storage fault within seconds, and serves again once it is back', async () => {
    const { db } = await openThroughProxy();
    expect((await sql<{ one: number }>`SELECT 1 AS one`.execute(db)).rows).toEqual([{ one: 1 }]);

    proxy?.freeze();
    const lost = await sql`SELECT 1 AS one`.execute(db).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(lost).toBeInstanceOf(Error);
    expect(isStorageFault(lost)).toBe(true);

    proxy?.thaw();
    expect((await sql<{ one: number }>`SELECT 1 AS one`.execute(db)).rows).toEqual([{ one: 1 }]);
    // Without the watch the query waits until TCP gives up, a quarter of an hour: past this test's time.
  }, 20_000);

  it('leaves a slow query alone while the server answers', async () => {
    const { db } = await openThroughProxy();
    const { rows } = await sql<{ done: string }>`SELECT pg_sleep(1.5)::text AS done`.execute(db);
    expect(rows).toEqual([{ done: '' }]);
  });
});
