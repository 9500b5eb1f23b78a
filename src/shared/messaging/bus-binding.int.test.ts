import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { testDatabases } from '../sql/test-databases.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { migratePostgresToLatest } from '../postgres/migrate.js';
import type { PostgresHandle } from '../postgres/open-postgres.js';
import { subscriptionMigrations } from '../subscriptions/migrations.js';
import { BusBindingMismatch, bindToBus, confirmBusBinding } from './bus-binding.js';

/** The subscriptions' tables as the release before bindings were accepted made them. */
const before = {
  owner: subscriptionMigrations.owner,
  migrations: Object.fromEntries(Object.entries(subscriptionMigrations.migrations).filter(([name]) => name < '0006')),
};
const production = { stream: 'INTAKE', subjectPrefix: 'intake' };
const staging = { stream: 'STAGING', subjectPrefix: 'staging' };

describe.each(testDatabases([before]))('a schema bound to its stream, on $name', (kind) => {
  it.skipIf(kind.skip)('stands once accepted, a binding made by the release before included; until then it is rebound', async () => {
    const database = await kind.open();
    try {
      await bindToBus(database.db, production, 's');
      if (kind.name === 'SQLite') await migrateToLatest(database.db, [subscriptionMigrations]);
      else await migratePostgresToLatest(database as unknown as PostgresHandle, [subscriptionMigrations]);
      // Made before acceptance was recorded: it stands as it always did.
      await expect(bindToBus(database.db, staging, 's')).rejects.toBeInstanceOf(BusBindingMismatch);

      // A binding the broker never took follows the settings the role starts with next.
      await sql`DELETE FROM bus_binding`.execute(database.db);
      await bindToBus(database.db, staging, 's');
      await bindToBus(database.db, production, 's');
      await confirmBusBinding(database.db);
      await expect(bindToBus(database.db, staging, 's')).rejects.toThrow(/belongs to the deployment on NATS stream "INTAKE"/);
    } finally {
      await database.close();
    }
  });
});
