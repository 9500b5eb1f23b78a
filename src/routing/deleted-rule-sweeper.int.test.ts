import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { systemClock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../shared/event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../shared/event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../shared/ids.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, type SqliteHandle } from '../shared/sqlite/open-sqlite.js';
import { routingMigrations } from './adapters/sql/migrations.js';
import { sqlDeletedRuleBacklogs } from './adapters/sql/sql-deleted-rule-backlogs.js';
import { sqlDeliveryStore } from './adapters/sql/sql-deliveries.js';
import { deletedRuleSweeper, type DeletedRuleSweeper } from './application/deleted-rule-backlogs.js';
import type { DeliveryStoreFor, DeliverySummary } from './application/ports.js';

let sqlite: SqliteHandle;
let store: EventStore;
let sweeper: DeletedRuleSweeper | undefined;

beforeEach(async () => {
  sqlite = openSqlite(':memory:');
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, routingMigrations]);
  store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, durability: 'process-crash' });
});

afterEach(async () => {
  await sweeper?.stop();
  await store.close();
  await sqlite.close();
});

const DELETED_AT = '2026-12-02T10:00:00.000Z';

/** Deliveries of a rule deleted at DELETED_AT, left for the sweeper as a delete leaves them, and one of a rule kept. */
async function leftBehind(count: number) {
  const deliveries = Array.from({ length: count }, (_, i) => ({
    deliveryId: `d${i}`,
    ruleId: 'gone',
    itemId: `item-${i}`,
    appId: 'shop',
    eventType: 'order',
    destinationType: 'webhook' as const,
    body: '{}',
    createdAt: DELETED_AT,
    orderingKey: null,
    position: i + 1,
    receivedAt: DELETED_AT,
  }));
  const kept = { ...deliveries[0], deliveryId: 'kept', ruleId: 'kept', itemId: 'item-kept', position: count + 1 };
  await sqlDeliveryStore(sqlite.db).schedule([...deliveries, kept as (typeof deliveries)[number]]);
  await sqlDeletedRuleBacklogs(sqlite.db).add({ ruleId: 'gone', deletedAt: DELETED_AT });
}

const deadLettered = async () => (await store.readAll({ after: 0, limit: 1000 })).filter((event) => event.type === 'DeliveryDeadLettered');

it('goes on at its start with what a delete left, a slice a transaction, each delivery with its event', async () => {
  await leftBehind(5);
  const slices: number[] = [];
  sweeper = deletedRuleSweeper({
    store,
    db: sqlite.db,
    deliveries: sqlDeliveryStore,
    backlogs: sqlDeletedRuleBacklogs,
    logger: { warn: () => undefined },
    onGivenUp: (_ruleId, given) => slices.push(given.length),
    slice: 2,
  });
  sweeper.start();
  await vi.waitFor(async () => expect(await sqlDeletedRuleBacklogs(sqlite.db).list()).toEqual([]));
  expect(slices).toEqual([2, 2, 1]);
  const events = await deadLettered();
  expect(events.map((event) => event.streamId).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `data-item-${i}`));
  expect(events.map((event) => (event.data as { reason: string; dead_lettered_at: string }).dead_lettered_at)).toEqual(
    Array(5).fill(DELETED_AT),
  );
  expect(await sqlDeliveryStore(sqlite.db).get('d4')).toMatchObject({ status: 'dead_lettered', lastError: 'the rule was deleted' });
  expect(await sqlDeliveryStore(sqlite.db).get('kept')).toMatchObject({ status: 'pending' });
});

it('tries again after a failure, whose slice rolled back with its events', async () => {
  await leftBehind(3);
  let failures = 1;
  const failingOnce: DeliveryStoreFor = (db) => {
    const deliveries = sqlDeliveryStore(db);
    return {
      ...deliveries,
      deadLetterWaiting: (...args): Promise<DeliverySummary[]> =>
        failures-- > 0 ? Promise.reject(new Error('disk I/O error')) : deliveries.deadLetterWaiting(...args),
    };
  };
  const warn = vi.fn();
  const warned = () => warn.mock.calls.map((call) => call[1] as string);
  sweeper = deletedRuleSweeper({
    store,
    db: sqlite.db,
    deliveries: failingOnce,
    backlogs: sqlDeletedRuleBacklogs,
    logger: { warn },
    slice: 2,
  });
  sweeper.start();
  await vi.waitFor(() => expect(warned()).toEqual(['could not dead-letter the deliveries a deleted rule left; trying again']));
  // Nothing was dead-lettered by the failed slice: it rolled back with its events.
  expect(await deadLettered()).toEqual([]);
  await vi.waitFor(async () => expect(await sqlDeletedRuleBacklogs(sqlite.db).list()).toEqual([]), { timeout: 3000 });
  expect(await deadLettered()).toHaveLength(3);
  expect(warned().at(-1)).toBe('the rule was deleted: more of its waiting deliveries were dead-lettered');
});
