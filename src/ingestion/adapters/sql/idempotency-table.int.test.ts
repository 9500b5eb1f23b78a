import { sql } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import { ingestionMigrations } from './migrations.js';
import { sqlIdempotencyLog } from './idempotency-table.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

it('reads a record stored before fingerprints as one of either kind, and one stored after without one as a message id', async () => {
  const sqlite = openSqlite(':memory:');
  closers.push(() => sqlite.close());
  // The tables as a release before fingerprints left them, with a request's key recorded.
  const before = Object.fromEntries(Object.entries(ingestionMigrations.migrations).filter(([name]) => name < '0004'));
  await migrateToLatest(sqlite.db, [{ ...ingestionMigrations, migrations: before }]);
  const routing = JSON.stringify({ rules_evaluated: 0, rules_matched: 0, rules_executed: 0 });
  const record = (key: string, at: string) =>
    sql`INSERT INTO ingest_idempotency (app_id, idem_key, event_id, routing, created_at)
        VALUES ('shop', ${key}, ${`e-${key}`}, ${routing}, ${at})`.execute(sqlite.db);
  await record('K-1', '2026-12-04T10:00:00.000Z');
  // A release with fingerprints (0004), and a message id it recorded without one; then today's.
  const through0005 = Object.fromEntries(Object.entries(ingestionMigrations.migrations).filter(([name]) => name < '0006'));
  await migrateToLatest(sqlite.db, [{ ...ingestionMigrations, migrations: through0005 }]);
  await record('M-1', new Date(Date.now() + 1000).toISOString());
  await migrateToLatest(sqlite.db, [ingestionMigrations]);
  const found = await sqlIdempotencyLog(sqlite.db).findMany('shop', ['K-1', 'M-1'], '2026-12-04T00:00:00.000Z');
  expect(found.get('K-1')).toEqual({ eventId: 'e-K-1', routing: JSON.parse(routing), kindUnknown: true });
  expect(found.get('M-1')).toEqual({ eventId: 'e-M-1', routing: JSON.parse(routing) });
});
