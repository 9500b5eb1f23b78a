import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { systemClock } from '../shared/clock.js';
import type { DataIngested } from '../shared/contracts/data-events.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../shared/event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../shared/event-store/sqlite/sqlite-event-store.js';
import type { RecordedEvent } from '../shared/events.js';
import { uuidV7 } from '../shared/ids.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { parkedRetryOf } from '../shared/subscriptions/checkpoints.js';
import { openSqlite, type SqliteHandle } from '../shared/sqlite/open-sqlite.js';
import { routingMigrations } from './adapters/sql/migrations.js';
import { sqlDeliveryStore } from './adapters/sql/sql-deliveries.js';
import { sqlDeliveryHistory } from './adapters/sql/sql-delivery-history.js';
import { sqlDestinationTables } from './adapters/sql/sql-destination-tables.js';
import { sqlTallyStore } from './adapters/sql/sql-tallies.js';
import { rulesProjection, sqlRuleCatalog } from './adapters/sql/sql-rules.js';
import { destinationKeyOf, ruleStreamId, type RoutingRuleCreated, type RoutingRuleToggled } from './domain/routing-rule.js';
import { routingScheduler } from './application/routing-scheduler.js';
import { ruleEvaluator } from './application/rule-evaluator.js';

let dir: string;
let sqlite: SqliteHandle;
let store: EventStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'intake-scheduler-'));
  sqlite = openSqlite(join(dir, 'db.sqlite'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, routingMigrations]);
  store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, durability: 'process-crash' });
});

afterEach(async () => {
  await store.close();
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
});

const recorded = <T extends { type: string; data: object }>(event: T, streamId: string, position: number): RecordedEvent => ({
  eventId: uuidV7(),
  streamId,
  streamVersion: 1,
  position,
  type: event.type,
  data: event.data,
  metadata: {},
  recordedAt: new Date().toISOString(),
});

/** A rule to one destination, as the rules projection stores it. */
async function storeRule(ruleId: string, destination: Pick<RoutingRuleCreated['data'], 'destination_type' | 'destination_config'>) {
  const rule: RoutingRuleCreated = {
    type: 'RoutingRuleCreated',
    data: {
      rule_id: ruleId,
      app_id: 'shop',
      rule_name: ruleId,
      event_type_filter: null,
      condition: {},
      ...destination,
      priority: 0,
      is_active: true,
      ordering_key: null,
      created_at: new Date().toISOString(),
    },
  };
  await rulesProjection.apply(sqlite.db, [recorded(rule, ruleStreamId(ruleId), 1)]);
}

/** An item ingested with `ruleIds` matched, as the log records it. */
function ingested(ruleIds: string | readonly string[], now: string): RecordedEvent {
  const itemId = uuidV7();
  const item: DataIngested = {
    type: 'DataIngested',
    data: {
      item_id: itemId,
      partner_id: 'shop',
      event_type: 'order',
      payload: { total: 5 },
      received_at: now,
      metadata: { channel: 'application_api', received_at: now, ip: null, user_agent: null, correlation_id: null, key_id: null },
      routing: { rules_evaluated: 1, matched_rule_ids: typeof ruleIds === 'string' ? [ruleIds] : [...ruleIds] },
    },
  };
  return recorded(item, `data-${itemId}`, 2);
}

const schedulerWith = (hooks: Pick<Parameters<typeof routingScheduler>[0], 'onScheduled' | 'onDelivered' | 'onDeadLettered'>) =>
  routingScheduler({
    clock: systemClock,
    rules: sqlRuleCatalog,
    deliveries: sqlDeliveryStore,
    tables: sqlDestinationTables(() => new Date()),
    history: sqlDeliveryHistory,
    tallies: sqlTallyStore,
    evaluator: ruleEvaluator(async () => []),
    ...hooks,
  });

it('counts a delivery made while scheduling once its pass commits, and creates its table again after a pass rolled back', async () => {
  const destination = { destination_type: 'database', destination_config: { table: 'orders_copy' } } as const;
  await storeRule('r-db', destination);
  const tally = async () =>
    (await sqlTallyStore(sqlite.db).get([{ ruleId: 'r-db', destination: destinationKeyOf(destination) }])).get('r-db');
  const delivered: string[] = [];
  const scheduler = schedulerWith({ onScheduled: () => undefined, onDelivered: ({ ruleId }) => delivered.push(ruleId) });
  const event = ingested('r-db', new Date().toISOString());

  await expect(
    store.transaction(async (tx) => {
      await scheduler.handle([event], tx);
      throw new Error('the pass fails after scheduling');
    }),
  ).rejects.toThrow('the pass fails after scheduling');
  expect(delivered).toEqual([]);
  expect(await tally()).toBeUndefined();

  // The retried pass creates the table the failed one took back with it, writes the row and counts it, once.
  await store.transaction((tx) => scheduler.handle([event], tx));
  expect(delivered).toEqual(['r-db']);
  // Stored with the row: a delivered attempt that took no time of its own.
  expect(await tally()).toEqual({ attempts: 1, delivered: 1, failed: 0, totalDurationMs: 0 });
  // Scheduled again (a redelivered event): nothing new is made, nothing more is counted.
  await store.transaction((tx) => scheduler.handle([event], tx));
  expect(await tally()).toEqual({ attempts: 1, delivered: 1, failed: 0, totalDurationMs: 0 });
  const rows = await sqlite.db
    .selectFrom('orders_copy' as never)
    .selectAll()
    .execute();
  expect(rows).toHaveLength(1);
});

it('schedules the delivery of an item a rule matched at ingestion though the rule was switched off since: it waits for the rule', async () => {
  await storeRule('r-db', { destination_type: 'database', destination_config: { table: 'waiting_copy' } });
  await storeRule('r-hook', { destination_type: 'webhook', destination_config: { url: 'https://hooks.example/a' } });
  for (const ruleId of ['r-db', 'r-hook']) {
    const off: RoutingRuleToggled = {
      type: 'RoutingRuleToggled',
      data: { rule_id: ruleId, app_id: 'shop', is_active: false, toggled_at: new Date().toISOString() },
    };
    await rulesProjection.apply(sqlite.db, [{ ...recorded(off, ruleStreamId(ruleId), 2), streamVersion: 2 }]);
  }
  const event = ingested(['r-db', 'r-hook'], new Date().toISOString());
  await store.transaction((tx) => schedulerWith({ onScheduled: () => undefined }).handle([event], tx));
  const scheduled = await sql<{ rule_id: string; status: string }>`SELECT rule_id, status FROM routing_deliveries ORDER BY rule_id`.execute(
    sqlite.db,
  );
  expect(scheduled.rows).toEqual([
    { rule_id: 'r-db', status: 'pending' },
    { rule_id: 'r-hook', status: 'pending' },
  ]);
  // The row goes into the table when the rule is on again and the worker delivers, not now.
  const tables = await sql<{ name: string }>`SELECT name FROM sqlite_master WHERE name = 'waiting_copy'`.execute(sqlite.db);
  expect(tables.rows).toEqual([]);
});

it('dead-letters only the deliveries of a table it cannot write, and schedules the item’s other deliveries', async () => {
  const destination = { destination_type: 'database', destination_config: { table: 'taken' } } as const;
  await storeRule('r-db', destination);
  await storeRule('r-ok', { destination_type: 'database', destination_config: { table: 'copies' } });
  await storeRule('r-hook', { destination_type: 'webhook', destination_config: { url: 'http://127.0.0.1:9/hook' } });
  // Saved while the name was free; since then a table Intake does not own took it, in another case.
  await sql`CREATE TABLE ${sql.table('Taken')} (id text)`.execute(sqlite.db);
  const delivered: string[] = [];
  const deadLettered: Array<[string, string]> = [];
  let woken = 0;
  const scheduler = schedulerWith({
    onScheduled: () => (woken += 1),
    onDelivered: ({ ruleId }) => delivered.push(ruleId),
    onDeadLettered: ({ ruleId }, reason) => deadLettered.push([ruleId, reason]),
  });
  const event = ingested(['r-db', 'r-ok', 'r-hook'], new Date().toISOString());
  const itemId = (event.data as DataIngested['data']).item_id;

  await store.transaction((tx) => scheduler.handle([event], tx));

  const { items } = await sqlDeliveryStore(sqlite.db).list({ itemId }, { limit: 10 });
  const byRule = Object.fromEntries(items.map((d) => [d.ruleId, d]));
  expect(byRule['r-hook']).toMatchObject({ status: 'pending', attempts: 0 });
  expect(byRule['r-ok']).toMatchObject({ status: 'succeeded', attempts: 1 });
  expect(byRule['r-db']).toMatchObject({ status: 'dead_lettered', attempts: 1, nextAttemptAt: null });
  expect(byRule['r-db']?.lastError).toMatch(/^table taken could not be written: .*already exists/);
  expect(await sqlDeliveryStore(sqlite.db).attemptsOf(byRule['r-db']?.deliveryId ?? '')).toMatchObject([
    { attempt: 1, outcome: 'rejected', error: byRule['r-db']?.lastError },
  ]);
  expect(delivered).toEqual(['r-ok']);
  expect(deadLettered).toEqual([['r-db', byRule['r-db']?.lastError]]);
  expect(woken).toBe(1);
  const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM copies`.execute(sqlite.db);
  expect(Number(rows[0]?.n)).toBe(1);
  expect((await sqlTallyStore(sqlite.db).get([{ ruleId: 'r-db', destination: destinationKeyOf(destination) }])).get('r-db')).toEqual({
    attempts: 1,
    delivered: 0,
    failed: 1,
    totalDurationMs: 0,
  });

  // The item's stream: DataRouted (only the row written carries delivered_at), then the failed attempt and its dead letter.
  const stream = await store.readStream(`data-${itemId}`);
  expect(stream.map((e) => e.type)).toEqual(['DataRouted', 'DeliveryAttempted', 'DeliveryFailed', 'DeliveryDeadLettered']);
  const routed = (stream[0]?.data as { deliveries: Array<{ rule_id: string; delivered_at?: string }> }).deliveries;
  expect(Object.fromEntries(routed.map((d) => [d.rule_id, d.delivered_at !== undefined]))).toEqual({
    'r-db': false,
    'r-ok': true,
    'r-hook': false,
  });
});

it('writes rules naming one table in different letter cases to that table, in the pass that creates it', async () => {
  await storeRule('r-upper', { destination_type: 'database', destination_config: { table: 'CaseTbl' } });
  await storeRule('r-lower', { destination_type: 'database', destination_config: { table: 'casetbl' } });
  const scheduler = schedulerWith({ onScheduled: () => undefined });

  await store.transaction((tx) => scheduler.handle([ingested(['r-upper', 'r-lower'], new Date().toISOString())], tx));

  const { items } = await sqlDeliveryStore(sqlite.db).list({}, { limit: 10 });
  expect(items.map((d) => d.status)).toEqual(['succeeded', 'succeeded']);
  const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM casetbl`.execute(sqlite.db);
  expect(Number(rows[0]?.n)).toBe(2);
});

it('schedules nothing for an item and rule whose delivery was stored under the older form of id', async () => {
  await storeRule('r-hook', { destination_type: 'webhook', destination_config: { url: 'http://127.0.0.1:9/hook' } });
  const now = new Date().toISOString();
  const event = ingested('r-hook', now);
  const itemId = (event.data as DataIngested['data']).item_id;
  // As a release before time-ordered ids scheduled it: a hash of item and rule only.
  const oldId = `msg_${createHash('sha256').update(`${itemId}:r-hook`).digest('hex').slice(0, 32)}`;
  await sqlDeliveryStore(sqlite.db).schedule([
    {
      deliveryId: oldId,
      ruleId: 'r-hook',
      itemId,
      appId: 'shop',
      eventType: 'order',
      destinationType: 'webhook',
      body: '{}',
      createdAt: now,
      orderingKey: null,
      position: 2,
      receivedAt: now,
    },
  ]);
  let woken = 0;
  const scheduler = schedulerWith({ onScheduled: () => (woken += 1) });
  const before = await store.readAll({ after: 0, limit: 100 });

  await store.transaction((tx) => scheduler.handle([event], tx));

  const { items: deliveries } = await sqlDeliveryStore(sqlite.db).list({ itemId }, { limit: 10 });
  expect(deliveries.map((d) => d.deliveryId)).toEqual([oldId]);
  expect(await store.readAll({ after: 0, limit: 100 })).toEqual(before);
  expect(woken).toBe(0);
});

const itemOf = (event: RecordedEvent) => (event.data as DataIngested['data']).item_id;
const deliveriesOfItem = async (event: RecordedEvent) =>
  (await sqlDeliveryStore(sqlite.db).list({ itemId: itemOf(event) }, { limit: 10 })).items;

/** Schedules the item's delivery, has it succeed, and deletes it as its retention would. */
async function routedThenForgotten(scheduler: ReturnType<typeof schedulerWith>, event: RecordedEvent, at: string) {
  await store.transaction((tx) => scheduler.handle([event], tx));
  const [made] = await deliveriesOfItem(event);
  await sqlDeliveryStore(sqlite.db).record(
    { deliveryId: made?.deliveryId ?? '', status: 'succeeded', attempts: 1, nextAttemptAt: null, lastError: null, at },
    undefined,
  );
  expect(await sqlDeliveryHistory(sqlite.db).forgetBefore('9999-01-01T00:00:00.000Z', 10)).toBe(1);
}

it('schedules nothing again for an item whose delivery was deleted past its retention (a replay of the subscriber sent it again)', async () => {
  await storeRule('r-hook', { destination_type: 'webhook', destination_config: { url: 'https://hooks.example/a' } });
  const at = new Date().toISOString();
  const first = { ...ingested('r-hook', at), position: 7 };
  const later = { ...ingested('r-hook', at), position: 8 };
  const scheduler = schedulerWith({ onScheduled: () => undefined });
  await routedThenForgotten(scheduler, first, at);
  const routed = await store.readAll({ after: 0, limit: 100 });

  // The log read again from its start: the item routed before is not sent again; one after it is scheduled.
  await store.transaction((tx) => scheduler.handle([first, later], tx));
  expect(await deliveriesOfItem(first)).toEqual([]);
  expect(await deliveriesOfItem(later)).toHaveLength(1);
  expect((await store.readAll({ after: 0, limit: 100 })).length).toBe(routed.length + 1);
});

it('schedules a parked item handed to it again, though older than a deleted delivery', async () => {
  await storeRule('r-hook', { destination_type: 'webhook', destination_config: { url: 'https://hooks.example/a' } });
  const at = new Date().toISOString();
  const parked = { ...ingested('r-hook', at), position: 5 };
  const later = { ...ingested('r-hook', at), position: 8 };
  const scheduler = schedulerWith({ onScheduled: () => undefined });
  await routedThenForgotten(scheduler, later, at);

  // Read in turn, the item is taken for one routed before; retried from the parking lot, it never was.
  await store.transaction((tx) => scheduler.handle([parked], tx));
  expect(await deliveriesOfItem(parked)).toEqual([]);
  await store.transaction((tx) => scheduler.handle([parked], parkedRetryOf(tx)));
  expect(await deliveriesOfItem(parked)).toHaveLength(1);
});

it('wants rule events and the items a rule matched at ingestion, and passes over the others', () => {
  const scheduler = schedulerWith({ onScheduled: () => undefined });
  const matched = ingested('r-1', new Date().toISOString());
  const unmatched = {
    ...matched,
    data: { ...(matched.data as DataIngested['data']), routing: { rules_evaluated: 3, matched_rule_ids: [] } },
  };
  const unrouted = { ...matched, data: { ...(matched.data as DataIngested['data']), routing: undefined } };
  const ruleEvent = { ...matched, type: 'RoutingRuleCreated' };
  expect([matched, unmatched, unrouted, ruleEvent].map((event) => scheduler.wants?.(event))).toEqual([true, false, false, true]);
});
