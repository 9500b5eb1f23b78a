import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../shared/clock.js';
import { postgresEventStoreMigrations } from '../shared/event-store/postgres/migrations.js';
import { postgresEventStore } from '../shared/event-store/postgres/postgres-event-store.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import type { RecordedEvent } from '../shared/events.js';
import { uuidV7 } from '../shared/ids.js';
import { migratePostgresToLatest } from '../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../shared/postgres/temporary-schema.js';
import type { PostgresHandle } from '../shared/postgres/open-postgres.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';
import { routingMigrations } from './adapters/sql/migrations.js';
import { ruleStreamId, type RoutingRuleCreated } from './domain/routing-rule.js';
import { routingRulesReplica } from './module.js';

const logger = pino({ level: 'silent' });

if (!testPostgresUrl) console.warn('skipping the rules replica on PostgreSQL: TEST_POSTGRES_URL is not set');

const created = (ruleId: string): RecordedEvent => {
  const data: RoutingRuleCreated['data'] = {
    rule_id: ruleId,
    app_id: 'shop',
    rule_name: 'big orders',
    event_type_filter: 'order_created',
    condition: { 'payload.total': { $gt: 50 } },
    destination_type: 'webhook',
    destination_config: { url: 'http://127.0.0.1:1/hook' },
    priority: 10,
    is_active: true,
    ordering_key: null,
    created_at: new Date().toISOString(),
  };
  return {
    eventId: uuidV7(),
    streamId: ruleStreamId(ruleId),
    streamVersion: 1,
    position: 1,
    type: 'RoutingRuleCreated',
    data,
    metadata: {},
    recordedAt: new Date().toISOString(),
  };
};

const order = { app_id: 'shop', event_type: 'order_created', payload: { total: 99 }, metadata: {} };

// Ingestion evaluates rules on its own pooled connections while the replica's consumer commits on another:
// on SQLite one connection serialises the two, so only PostgreSQL can show the interleaving.
describe.skipIf(!testPostgresUrl)('the routing rules replica on PostgreSQL', () => {
  let postgres: PostgresHandle;
  let store: EventStore;

  beforeEach(async () => {
    postgres = await openTemporarySchema(testPostgresUrl ?? '');
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, routingMigrations]);
    store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
  });

  afterEach(async () => {
    await store.close();
    await postgres.close();
  });

  it('does not keep the rules a request read while a rule event was being committed', async () => {
    const replica = routingRulesReplica({ db: postgres.db, logger });
    expect((await replica.evaluate(order)).summary.rules_matched).toBe(0);

    await store.transaction(async (tx) => {
      await replica.subscriber.handle([created('r-1')], tx);
      // A request between the handler and the commit reads the table without the rule.
      expect((await replica.evaluate(order)).summary.rules_matched).toBe(0);
    });

    expect((await replica.evaluate(order)).summary).toMatchObject({ rules_evaluated: 1, rules_matched: 1 });
  });

  it('lets a replica that did not get the rule event see the change once its copy is older than the bound', async () => {
    // Two ingestion replicas over one schema: the shared durable consumer hands the event to one of them.
    let clock = 0;
    const cacheOptions = { maxAgeMs: 1000, now: () => clock };
    const consumer = routingRulesReplica({ db: postgres.db, logger }, cacheOptions);
    const sibling = routingRulesReplica({ db: postgres.db, logger }, cacheOptions);
    expect((await sibling.evaluate(order)).summary.rules_matched).toBe(0);

    await store.transaction((tx) => consumer.subscriber.handle([created('r-2')], tx));
    expect((await consumer.evaluate(order)).summary.rules_matched).toBe(1);
    clock = 1000;
    expect((await sibling.evaluate(order)).summary.rules_matched).toBe(0);
    clock = 1001;
    expect((await sibling.evaluate(order)).summary.rules_matched).toBe(1);
  });
});
