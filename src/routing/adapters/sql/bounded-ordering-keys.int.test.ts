import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import type { PostgresHandle } from '../../../shared/postgres/open-postgres.js';
import { testDatabases } from '../../../shared/sql/test-databases.js';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { orderingKeyOf } from '../../domain/ordering-key.js';
import { routingMigrations } from './migrations.js';

/** The routing tables as the release before keys were bounded made them. */
const before = {
  owner: routingMigrations.owner,
  migrations: Object.fromEntries(Object.entries(routingMigrations.migrations).filter(([name]) => name < '0011')),
};

const delivery = (id: string, status: string, key: string) => sql`
  INSERT INTO routing_deliveries (delivery_id, rule_id, item_id, app_id, event_type, destination_type, body, status, attempts,
    next_attempt_at, created_at, updated_at, ordering_key, position)
  VALUES (${id}, 'r1', ${id}, 'shop', 'order', 'webhook', '{}', ${status}, 0, '2026-12-07T00:00:00.000Z',
    '2026-12-07T00:00:00.000Z', '2026-12-07T00:00:00.000Z', ${key}, 1)`;

describe.each(testDatabases([before]))('ordering keys stored before they were bounded, on $name', (kind) => {
  it.skipIf(kind.skip)('take the digest a new delivery of the same value gets, so that it waits for them', async () => {
    const database = await kind.open();
    try {
      const value = 'x'.repeat(300);
      await delivery('d1', 'pending', `s:${value}`).execute(database.db);
      await delivery('d2', 'succeeded', `s:${value}`).execute(database.db);
      await delivery('d3', 'pending', 's:short').execute(database.db);
      if (kind.name === 'SQLite') await migrateToLatest(database.db, [routingMigrations]);
      else await migratePostgresToLatest(database as unknown as PostgresHandle, [routingMigrations]);
      const keys = await sql<{ delivery_id: string; ordering_key: string }>`
        SELECT delivery_id, ordering_key FROM routing_deliveries ORDER BY delivery_id`.execute(database.db);
      expect(keys.rows.map((row) => row.ordering_key)).toEqual([
        orderingKeyOf('payload.k', { payload: { k: value } }),
        `s:${value}`,
        's:short',
      ]);
    } finally {
      await database.close();
    }
  });
});
