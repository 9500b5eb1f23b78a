import { afterEach, beforeEach, expect, it } from 'vitest';
import { systemClock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../shared/event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../shared/event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../shared/ids.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, type SqliteHandle } from '../shared/sqlite/open-sqlite.js';
import { routingMigrations } from './adapters/sql/migrations.js';
import { sqlBreakerStore } from './adapters/sql/sql-breakers.js';
import { sqlDeletedRuleBacklogs } from './adapters/sql/sql-deleted-rule-backlogs.js';
import { sqlDeliveryStore } from './adapters/sql/sql-deliveries.js';
import { sqlRuleCatalog, sqlSecretVault } from './adapters/sql/sql-rules.js';
import { sqlTallyStore } from './adapters/sql/sql-tallies.js';
import { saveRuleChange } from './application/manage-rules.js';

let sqlite: SqliteHandle;
let store: EventStore;

beforeEach(async () => {
  sqlite = openSqlite(':memory:');
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, routingMigrations]);
  store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, durability: 'process-crash' });
});

afterEach(async () => {
  await store.close();
  await sqlite.close();
});

it('forgets the worker’s copy of a rule whose destination changed before it wakes the worker for the deliveries made due', async () => {
  // A delivery waiting a day for its retry to the old destination: the change makes it due now.
  await sqlDeliveryStore(sqlite.db).schedule([
    {
      deliveryId: 'waiting',
      ruleId: 'r1',
      itemId: 'item-1',
      appId: 'shop',
      eventType: 'order',
      destinationType: 'webhook',
      body: '{}',
      createdAt: '2026-12-02T10:00:00.000Z',
      orderingKey: null,
      position: 1,
      receivedAt: '2026-12-02T10:00:00.000Z',
    },
  ]);
  await sqlDeliveryStore(sqlite.db).record(
    {
      deliveryId: 'waiting',
      status: 'pending',
      attempts: 1,
      nextAttemptAt: '2026-12-03T10:00:00.000Z',
      lastError: 'HTTP 503',
      at: '2026-12-02T10:00:01.000Z',
    },
    undefined,
  );
  const told: string[] = [];
  const save = saveRuleChange({
    store,
    // No secret or credentials change: the vault is never opened.
    vault: sqlSecretVault(undefined as never),
    breakers: sqlBreakerStore,
    tallies: sqlTallyStore,
    newSigningSecret: () => 'whsec_test',
    rules: sqlRuleCatalog,
    deliveries: sqlDeliveryStore,
    backlogs: sqlDeletedRuleBacklogs,
    onDeliveriesDue: () => told.push('worker woken'),
    onBacklogLeft: () => told.push('sweeper woken'),
    onCommitted: (ruleId) => told.push(`forgot ${ruleId}`),
  });
  await save({
    ruleId: 'r1',
    append: { streamId: 'routing-rule-r1', events: [{ type: 'Noted', data: {} }] },
    newDestination: { destination: 'webhook:https://new.example/', at: '2026-12-02T10:00:02.000Z' },
  });
  expect(told).toEqual(['forgot r1', 'worker woken']);
  expect(await sqlDeliveryStore(sqlite.db).get('waiting')).toMatchObject({ nextAttemptAt: '2026-12-02T10:00:02.000Z' });
});
