import { sql, type Kysely, type Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { bounded } from '../../domain/ordering-key.js';

const createTables: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('routing_rules')
      .addColumn('rule_id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('rule', 'text', (c) => c.notNull())
      .addColumn('priority', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('routing_rules_app').on('routing_rules').columns(['app_id', 'priority']).execute();
    await db.schema
      .createTable('routing_secrets')
      .addColumn('rule_id', 'text', (c) => c.primaryKey())
      .addColumn('secret', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('routing_deliveries')
      .addColumn('delivery_id', 'text', (c) => c.primaryKey())
      .addColumn('rule_id', 'text', (c) => c.notNull())
      .addColumn('item_id', 'text', (c) => c.notNull())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('destination_type', 'text', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_at', 'text')
      .addColumn('lease_until', 'text')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('routing_deliveries_due').on('routing_deliveries').columns(['status', 'next_attempt_at']).execute();
    await db.schema.createIndex('routing_deliveries_item').on('routing_deliveries').columns(['item_id']).execute();
    await db.schema.createIndex('routing_deliveries_rule').on('routing_deliveries').columns(['rule_id', 'created_at']).execute();
    await db.schema
      .createTable('routing_attempts')
      .addColumn('delivery_id', 'text', (c) => c.notNull())
      .addColumn('attempt', 'integer', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('status_code', 'integer')
      .addColumn('error', 'text')
      .addColumn('duration_ms', 'real', (c) => c.notNull())
      .addPrimaryKeyConstraint('routing_attempts_pk', ['delivery_id', 'attempt'])
      .execute();
    await db.schema
      .createTable('routing_destination_tables')
      .addColumn('table_name', 'text', (c) => c.primaryKey())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
};

/**
 * Ordered deliveries, circuit breakers, replay jobs, and attempts recorded before they are sent.
 * `position` is the routed event's place in the log (the order per ordering key); `webhook_id` is the
 * id receivers see when it differs from the delivery's own (a replay).
 */
const deliveryEngine: Migration = {
  async up(db: Kysely<unknown>) {
    const columns: Array<[string, 'text' | 'integer']> = [
      ['ordering_key', 'text'],
      ['position', 'integer'],
      ['received_at', 'text'],
      ['webhook_id', 'text'],
      ['replay_job_id', 'text'],
      ['lease_owner', 'text'],
    ];
    for (const [name, type] of columns) await db.schema.alterTable('routing_deliveries').addColumn(name, type).execute();
    await sql`UPDATE routing_deliveries SET position = 0, received_at = created_at`.execute(db);
    await db.schema
      .createIndex('routing_deliveries_ordering')
      .on('routing_deliveries')
      .columns(['rule_id', 'ordering_key', 'status', 'position'])
      .execute();
    await db.schema.createIndex('routing_deliveries_window').on('routing_deliveries').columns(['rule_id', 'received_at']).execute();
    await db.schema.createIndex('routing_deliveries_replay').on('routing_deliveries').columns(['replay_job_id', 'status']).execute();
    await db.schema.alterTable('routing_attempts').addColumn('worker', 'text').execute();
    await db.schema.createIndex('routing_attempts_in_flight').on('routing_attempts').columns(['outcome', 'worker']).execute();
    await db.schema
      .createTable('routing_breakers')
      .addColumn('rule_id', 'text', (c) => c.primaryKey())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('failures', 'integer', (c) => c.notNull())
      .addColumn('next_probe_at', 'text')
      .addColumn('opened_at', 'text')
      .addColumn('probe_owner', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('routing_replays')
      .addColumn('job_id', 'text', (c) => c.primaryKey())
      .addColumn('rule_id', 'text', (c) => c.notNull())
      .addColumn('from_at', 'text', (c) => c.notNull())
      .addColumn('to_at', 'text', (c) => c.notNull())
      .addColumn('reevaluate', 'integer', (c) => c.notNull())
      .addColumn('fresh_ids', 'integer', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('cursor_position', 'integer', (c) => c.notNull())
      .addColumn('cursor_id', 'text', (c) => c.notNull())
      .addColumn('scanned', 'integer', (c) => c.notNull())
      .addColumn('scheduled', 'integer', (c) => c.notNull())
      .addColumn('total', 'integer')
      .addColumn('error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      .execute();
    // One running replay per rule, enforced by the database so two concurrent requests cannot both start one.
    await db.schema
      .createIndex('routing_replays_one_running')
      .on('routing_replays')
      .column('rule_id')
      .unique()
      .where(sql.ref('status'), '=', 'running')
      .execute();
    await db.schema.createIndex('routing_replays_rule').on('routing_replays').columns(['rule_id', 'created_at']).execute();
  },
};

/**
 * Lookups that only ever concern a few rows index only those rows: a delivery that is made when it is
 * scheduled (a database destination), has no ordering key and belongs to no replay enters just the
 * indexes it is found by. Each partial index's condition is one its queries state in literal form.
 */
const partialIndexes: Migration = {
  async up(db) {
    for (const index of ['routing_deliveries_ordering', 'routing_deliveries_replay', 'routing_attempts_in_flight']) {
      await db.schema.dropIndex(index).execute();
    }
    await sql`CREATE INDEX routing_deliveries_ordering ON routing_deliveries (rule_id, ordering_key, position)
              WHERE status = 'pending' AND ordering_key IS NOT NULL`.execute(db);
    await sql`CREATE INDEX routing_deliveries_replay ON routing_deliveries (replay_job_id, status)
              WHERE replay_job_id IS NOT NULL`.execute(db);
    await sql`CREATE INDEX routing_attempts_in_flight ON routing_attempts (worker) WHERE outcome = 'in_flight'`.execute(db);
  },
};

/** The fingerprint of the key that seals this database's signing secrets: every process must hold that key. */
const secretKeyFingerprint: Migration = {
  async up(db) {
    await db.schema
      .createTable('routing_secret_key')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('fingerprint', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
};

/**
 * One delivery per (item, rule), besides replays: the store itself refuses a second one, whatever its id.
 * Delivery ids changed form (they now start with the item's arrival time), and a DataIngested routed
 * again after that must still find the delivery scheduled under the old id. It also serves the
 * lookups by item that the index it replaces served.
 */
const oneDeliveryPerItemAndRule: Migration = {
  async up(db) {
    await sql`CREATE UNIQUE INDEX routing_deliveries_item_rule
              ON routing_deliveries (item_id, rule_id, COALESCE(replay_job_id, ''))`.execute(db);
    await db.schema.dropIndex('routing_deliveries_item').execute();
  },
};

/**
 * Deliveries that succeeded (every database delivery, and each sent one in the end) are never looked
 * up by status: the index of due and failed deliveries leaves them out, so a database delivery is one
 * index entry lighter and a sent one leaves the index instead of moving in it.
 */
const dueIndexWithoutSucceeded: Migration = {
  async up(db) {
    await db.schema.dropIndex('routing_deliveries_due').execute();
    await sql`CREATE INDEX routing_deliveries_due ON routing_deliveries (status, next_attempt_at)
              WHERE status <> 'succeeded'`.execute(db);
  },
};

/**
 * The deliveries list, newest first: without a filter it sorted the whole table for each page (a
 * second for a million deliveries, on the thread that answers). Deliveries are created in time order,
 * so each entry lands at the end of this index.
 */
const deliveriesByCreation: Migration = {
  async up(db) {
    await db.schema.createIndex('routing_deliveries_created').on('routing_deliveries').columns(['created_at', 'delivery_id']).execute();
  },
};

/**
 * A dead letter replayed by hand starts the retry schedule over: the delivery keeps how many
 * attempts were made before, so attempt numbers go on and the schedule counts from there, across
 * restarts and on every replica.
 */
const earlierAttempts: Migration = {
  async up(db) {
    await db.schema
      .alterTable('routing_deliveries')
      .addColumn('earlier_attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

/**
 * Attempt tallies stored with the outcomes they count, per rule and destination, instead of in the
 * memory of each process; and the destination each circuit is about, so an attempt to a rule's
 * former destination that finishes after the change leaves the new destination's circuit alone.
 */
const talliesAndDestinationKeys: Migration = {
  async up(db) {
    await db.schema
      .createTable('routing_tallies')
      .addColumn('rule_id', 'text', (c) => c.notNull())
      .addColumn('destination_key', 'text', (c) => c.notNull())
      .addColumn('attempts', 'bigint', (c) => c.notNull())
      .addColumn('delivered', 'bigint', (c) => c.notNull())
      .addColumn('failed', 'bigint', (c) => c.notNull())
      .addColumn('duration_ms', 'double precision', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('routing_tallies_pk', ['rule_id', 'destination_key'])
      .execute();
    await db.schema.alterTable('routing_breakers').addColumn('destination_key', 'text').execute();
  },
};

/**
 * Whether a rule is on, beside its stored JSON, so that the claim can leave a disabled rule's deliveries
 * waiting (they go out when it is switched on again) instead of dead-lettering them.
 */
const ruleActivity: Migration = {
  async up(db) {
    await db.schema
      .alterTable('routing_rules')
      .addColumn('is_active', 'integer', (c) => c.notNull().defaultTo(1))
      .execute();
    const rules = await sql<{ rule_id: string; rule: string }>`SELECT rule_id, rule FROM routing_rules`.execute(db);
    for (const row of rules.rows) {
      if ((JSON.parse(row.rule) as { is_active?: boolean }).is_active === false)
        await sql`UPDATE routing_rules SET is_active = 0 WHERE rule_id = ${row.rule_id}`.execute(db);
    }
  },
};

/**
 * Ordering keys past 256 bytes are kept as their digest since this release: the deliveries still to
 * go under a longer one take the digest too, or a new delivery of the same value would not wait for them.
 */
const boundedOrderingKeys: Migration = {
  async up(db: Kysely<unknown>) {
    // A key of more than 256 bytes has more than 64 characters: the rest need no look.
    const rows = await sql<{ delivery_id: string; ordering_key: string }>`
      SELECT delivery_id, ordering_key FROM routing_deliveries
      WHERE ordering_key IS NOT NULL AND status <> 'succeeded' AND length(ordering_key) > 64`.execute(db);
    for (const row of rows.rows) {
      const stored = bounded(row.ordering_key);
      if (stored !== row.ordering_key)
        await sql`UPDATE routing_deliveries SET ordering_key = ${stored} WHERE delivery_id = ${row.delivery_id}`.execute(db);
    }
  },
};

/**
 * Destination credentials (webhook header values, broker passwords) sealed apart from the rules, which
 * refer to them; and the signing secret a rotation replaced, still signed with until `previous_until`.
 */
const sealedCredentials: Migration = {
  async up(db) {
    await db.schema
      .createTable('routing_sealed_values')
      .addColumn('rule_id', 'text', (c) => c.notNull())
      .addColumn('reference', 'text', (c) => c.notNull())
      .addColumn('sealed', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('routing_sealed_values_pk', ['rule_id', 'reference'])
      .execute();
    await db.schema.alterTable('routing_secrets').addColumn('previous_secret', 'text').execute();
    await db.schema.alterTable('routing_secrets').addColumn('previous_until', 'text').execute();
  },
};

/**
 * The claim takes live deliveries tried before (retries, attempts a stop interrupted), then the other
 * live ones, then a replay's, each by due time then log position: one index per kind, in that order,
 * lets it stop at its limit. Ordered by an expression instead, PostgreSQL read and sorted every due
 * delivery at each claim (67,000 pending: 0.3 s a claim, 20 deliveries a second). Deliveries made as
 * they are scheduled (database destinations) are never pending and enter none.
 */
const claimInIndexOrder: Migration = {
  async up(db) {
    await sql`CREATE INDEX routing_deliveries_claim_retrying ON routing_deliveries (next_attempt_at, position)
              WHERE status = 'pending' AND replay_job_id IS NULL AND attempts > 0`.execute(db);
    await sql`CREATE INDEX routing_deliveries_claim_live ON routing_deliveries (next_attempt_at, position)
              WHERE status = 'pending' AND replay_job_id IS NULL`.execute(db);
    await sql`CREATE INDEX routing_deliveries_claim_replayed ON routing_deliveries (next_attempt_at, position)
              WHERE status = 'pending' AND replay_job_id IS NOT NULL`.execute(db);
  },
};

/**
 * Beside the claim indexes in due order, the same kinds by rule: when the first deliveries in due
 * order are held back (a rule switched off, an open circuit, a destination with its share in flight),
 * the claim reads each other rule's own first due ones instead of reading through the held ones: with
 * 300,000 of them, every claim took 30–50 ms, and on SQLite that time is the pipeline's thread.
 */
const claimByRule: Migration = {
  async up(db) {
    await sql`CREATE INDEX routing_deliveries_rule_retrying ON routing_deliveries (rule_id, next_attempt_at, position)
              WHERE status = 'pending' AND replay_job_id IS NULL AND attempts > 0`.execute(db);
    await sql`CREATE INDEX routing_deliveries_rule_live ON routing_deliveries (rule_id, next_attempt_at, position)
              WHERE status = 'pending' AND replay_job_id IS NULL`.execute(db);
    await sql`CREATE INDEX routing_deliveries_rule_replayed ON routing_deliveries (rule_id, next_attempt_at, position)
              WHERE status = 'pending' AND replay_job_id IS NOT NULL`.execute(db);
  },
};

/**
 * Delivery history is kept for DELIVERY_RETENTION_DAYS: succeeded deliveries are deleted oldest first
 * by their last change (application/delivery-pruner.ts), through an index of only those (both
 * databases take the partial index when the statement states its condition literally). The highest log
 * position deleted is kept, so an event routed before is never scheduled again once its delivery is gone.
 */
const deliveryRetention: Migration = {
  async up(db) {
    await sql`CREATE INDEX routing_deliveries_succeeded ON routing_deliveries (updated_at)
              WHERE status = 'succeeded'`.execute(db);
    await db.schema
      .createTable('routing_forgotten')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('through_position', 'bigint', (c) => c.notNull())
      .execute();
  },
};

/**
 * Deliveries of a cancelled replay job are kept as long as succeeded ones, then deleted the same way,
 * through an index of only those: a job over a month of events, cancelled, left every one for good.
 */
const cancelledDeliveryRetention: Migration = {
  async up(db) {
    await sql`CREATE INDEX routing_deliveries_cancelled ON routing_deliveries (updated_at)
              WHERE status = 'cancelled'`.execute(db);
  },
};

/**
 * A deleted rule's waiting deliveries are dead-lettered a slice a transaction: the delete committed
 * with all of them in one, and 50,000 held every other write for two seconds. The rules with some left
 * are listed here until done, so a restart goes on with them, and the claim leaves them alone meanwhile.
 */
const deletedRuleBacklogs: Migration = {
  async up(db) {
    await db.schema
      .createTable('routing_deleted_backlogs')
      .addColumn('rule_id', 'text', (c) => c.primaryKey())
      .addColumn('deleted_at', 'text', (c) => c.notNull())
      .execute();
  },
};

export const routingMigrations: MigrationSet = {
  owner: 'routing',
  migrations: {
    '0001_create_rules_deliveries_attempts': createTables,
    '0002_delivery_engine': deliveryEngine,
    '0003_partial_delivery_indexes': partialIndexes,
    '0004_secret_key_fingerprint': secretKeyFingerprint,
    '0005_one_delivery_per_item_and_rule': oneDeliveryPerItemAndRule,
    '0006_due_index_without_succeeded': dueIndexWithoutSucceeded,
    '0007_deliveries_by_creation': deliveriesByCreation,
    '0008_earlier_attempts': earlierAttempts,
    '0009_tallies_and_destination_keys': talliesAndDestinationKeys,
    '0010_rule_activity': ruleActivity,
    '0011_bounded_ordering_keys': boundedOrderingKeys,
    '0012_sealed_credentials': sealedCredentials,
    '0013_claim_in_index_order': claimInIndexOrder,
    '0014_claim_by_rule': claimByRule,
    '0015_delivery_retention': deliveryRetention,
    '0016_cancelled_delivery_retention': cancelledDeliveryRetention,
    '0017_deleted_rule_backlogs': deletedRuleBacklogs,
  },
};
