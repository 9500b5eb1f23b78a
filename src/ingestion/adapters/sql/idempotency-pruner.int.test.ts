import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { fixedClock } from '../../../shared/clock.js';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import { sqlIdempotencyLog } from './idempotency-table.js';
import { ingestionMigrations } from './migrations.js';
import { idempotencyPruner } from '../../application/idempotency-pruner.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

const routing = { rules_evaluated: 0, rules_matched: 0, rules_executed: 0 };

/** Seven records an hour apart, the last made at 10:00; the clock stands at 10:30. */
async function recorded() {
  const sqlite = openSqlite(':memory:');
  closers.push(() => sqlite.close());
  await migrateToLatest(sqlite.db, [ingestionMigrations]);
  const log = sqlIdempotencyLog(sqlite.db);
  const keys = Array.from({ length: 7 }, (_, hour) => `k${hour}`);
  for (const [hour, key] of keys.entries()) {
    const at = `2026-12-02T${String(4 + hour).padStart(2, '0')}:00:00.000Z`;
    await log.claimMany('shop', [{ key, result: { eventId: `e-${key}`, routing } }], at, '2026-12-01T00:00:00.000Z');
  }
  const kept = async () => [...(await log.findMany('shop', keys, '2026-01-01T00:00:00.000Z')).keys()].sort();
  const deps = {
    db: sqlite.db,
    clock: fixedClock('2026-12-02T10:30:00.000Z'),
    logger: pino({ level: 'silent' }),
    idempotency: sqlIdempotencyLog,
  };
  return { deps, kept };
}

it('deletes every record past its window in slices, and keeps those within it', async () => {
  const { deps, kept } = await recorded();
  // A window of an hour, and the hour kept past it: the records of 09:00 and 10:00 stay.
  const pruner = idempotencyPruner({ ...deps, windowMs: 3600_000, slice: 2 });
  expect(await pruner.prune()).toBe(5);
  expect(await kept()).toEqual(['k5', 'k6']);
  expect(await pruner.prune()).toBe(0);
});

it('runs a pass after it starts and again at each interval, until stopped', async () => {
  const { deps, kept } = await recorded();
  let now = Date.parse('2026-12-02T10:30:00.000Z');
  const pruner = idempotencyPruner({ ...deps, clock: { now: () => new Date(now) }, windowMs: 2 * 3600_000, intervalMs: 20 });
  pruner.start();
  try {
    for (const deadline = performance.now() + 5000; (await kept()).length > 3 && performance.now() < deadline;)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await kept()).toEqual(['k4', 'k5', 'k6']);
    now += 2 * 3600_000;
    for (const deadline = performance.now() + 5000; (await kept()).length > 1 && performance.now() < deadline;)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await kept()).toEqual(['k6']);
  } finally {
    await pruner.stop();
  }
});
