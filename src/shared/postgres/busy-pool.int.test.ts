import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../errors.js';
import { openTemporarySchema, testPostgresUrl } from './temporary-schema.js';

describe.skipIf(!testPostgresUrl)('a PostgreSQL pool with every connection in use', () => {
  it('says the server is busy, not that the database is unreachable, once a query waited its time', async () => {
    const handle = await openTemporarySchema(testPostgresUrl ?? '', 'intake_busy', { maxConnections: 1 });
    const held = await handle.pool.connect();
    try {
      const refused = await sql`SELECT 1`.execute(handle.db).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(UnavailableError);
      expect(refused).toMatchObject({ code: 'storage.busy', message: expect.stringMatching(/all 1 database connections .* in use/) });
    } finally {
      held.release();
      await handle.close();
    }
  });
});
