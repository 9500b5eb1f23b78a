import { sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
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

const routingSummary = { rules_evaluated: 0, rules_matched: 0, rules_executed: 0 };
const first = (eventId: string) => ({ eventId, routing: routingSummary });

/**
 * Each database, and a way to delete records past a time from outside the connection under test: on
 * SQLite a statement on the raw handle, which runs at once (its one connection is the test's).
 */
type Opened = { db: Kysely<object>; forget(before: string): Promise<unknown> };
const databases: Array<[string, () => Promise<Opened>]> = [
  [
    'SQLite',
    async () => {
      const sqlite = openSqlite(':memory:');
      closers.push(() => sqlite.close());
      await migrateToLatest(sqlite.db, [ingestionMigrations]);
      const forget = sqlite.raw.prepare('DELETE FROM ingest_idempotency WHERE created_at < ?');
      return { db: sqlite.db, forget: async (before) => forget.run(before) };
    },
  ],
];
if (testPostgresUrl) {
  const url = testPostgresUrl;
  databases.push([
    'PostgreSQL',
    async () => {
      const handle = await openTemporarySchema(url, 'intake_idempotency');
      closers.push(() => void handle.close());
      await migratePostgresToLatest(handle, [ingestionMigrations]);
      return { db: handle.db, forget: (before) => sqlIdempotencyLog(handle.db).forgetBefore(before, 10) };
    },
  ]);
} else console.warn('skipping the idempotency table on PostgreSQL: TEST_POSTGRES_URL is not set');

describe.each(databases)('idempotency records on %s', (_name, open) => {
  it('forgets the records made before a time, oldest first and a slice at a time, keeping the others and what they answer', async () => {
    const { db } = await open();
    const log = sqlIdempotencyLog(db);
    for (const [key, at] of [
      ['old-1', '2026-12-01T08:00:00.000Z'],
      ['old-2', '2026-12-01T09:00:00.000Z'],
      ['old-3', '2026-12-01T10:00:00.000Z'],
      ['fresh', '2026-12-02T10:00:00.000Z'],
    ] as const)
      await log.claimMany('shop', [{ key, result: first(`e-${key}`) }], at, '2026-11-30T00:00:00.000Z');
    const cutoff = '2026-12-02T00:00:00.000Z';
    expect(await log.forgetBefore(cutoff, 2)).toBe(2);
    const everything = '2026-01-01T00:00:00.000Z';
    expect([...(await log.findMany('shop', ['old-1', 'old-2', 'old-3', 'fresh'], everything)).keys()].sort()).toEqual(['fresh', 'old-3']);
    expect(await log.forgetBefore(cutoff, 2)).toBe(1);
    expect(await log.forgetBefore(cutoff, 2)).toBe(0);
    expect(await log.findMany('shop', ['fresh'], everything)).toEqual(new Map([['fresh', first('e-fresh')]]));
  });

  it('claims a key whose expired record is deleted between its insert and its replacement', async () => {
    const { db, forget } = await open();
    const log = sqlIdempotencyLog(db);
    await log.claimMany('shop', [{ key: 'K', result: first('e-old') }], '2026-12-01T08:00:00.000Z', '2026-11-30T00:00:00.000Z');
    // The record is there when the claim inserts, and deleted as an expired one before the claim replaces it.
    const racing = db.withPlugin({
      transformQuery: (args) => args.node,
      transformResult: async (args) => {
        if (args.result.rows.length === 0) await pruneOnce();
        return args.result;
      },
    });
    let pruned = false;
    const pruneOnce = async () => {
      if (pruned) return;
      pruned = true;
      await forget('2026-12-02T00:00:00.000Z');
    };
    const won = await sqlIdempotencyLog(racing).claimMany(
      'shop',
      [{ key: 'K', result: first('e-new') }],
      '2026-12-02T10:00:00.000Z',
      '2026-12-02T09:00:00.000Z',
    );
    expect(pruned).toBe(true);
    expect(won).toEqual(new Set(['K']));
    expect(await log.findMany('shop', ['K'], '2026-12-02T09:00:00.000Z')).toEqual(new Map([['K', first('e-new')]]));
  });
});
