import type { Kysely } from 'kysely';
import type { Attempt, Delivery, DeliveryStatus, DeliveryStore } from '../../application/ports.js';

type DeliveryRow = {
  delivery_id: string;
  rule_id: string;
  item_id: string;
  app_id: string;
  event_type: string;
  destination_type: string;
  body: string;
  status: string;
  attempts: number;
  next_attempt_at: string | null;
  lease_until: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
};
type AttemptRow = {
  delivery_id: string;
  attempt: number;
  at: string;
  outcome: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
};
type Tables = { routing_deliveries: DeliveryRow; routing_attempts: AttemptRow };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

const toDelivery = (row: DeliveryRow): Delivery => ({
  deliveryId: row.delivery_id,
  ruleId: row.rule_id,
  itemId: row.item_id,
  appId: row.app_id,
  eventType: row.event_type,
  destinationType: row.destination_type,
  body: row.body,
  status: row.status as DeliveryStatus,
  attempts: row.attempts,
  nextAttemptAt: row.next_attempt_at,
  lastError: row.last_error,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export function sqlDeliveryStore(db: Kysely<object>): DeliveryStore {
  return {
    async schedule(deliveries) {
      const inserted: string[] = [];
      for (const d of deliveries) {
        const result = await tables(db)
          .insertInto('routing_deliveries')
          .values({
            delivery_id: d.deliveryId,
            rule_id: d.ruleId,
            item_id: d.itemId,
            app_id: d.appId,
            event_type: d.eventType,
            destination_type: d.destinationType,
            body: d.body,
            status: 'pending',
            attempts: 0,
            next_attempt_at: d.createdAt,
            lease_until: null,
            last_error: null,
            created_at: d.createdAt,
            updated_at: d.createdAt,
          })
          .onConflict((oc) => oc.column('delivery_id').doNothing())
          .executeTakeFirst();
        if (Number(result.numInsertedOrUpdatedRows ?? 0) > 0) inserted.push(d.deliveryId);
      }
      return inserted;
    },

    async claimDue(now, leaseUntil, limit) {
      // ISO-8601 UTC strings compare in time order, on SQLite and PostgreSQL alike.
      const due = tables(db)
        .selectFrom('routing_deliveries')
        .select('delivery_id')
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', now)]))
        .orderBy('next_attempt_at')
        .limit(limit);
      const rows = await tables(db)
        .updateTable('routing_deliveries')
        .set({ lease_until: leaseUntil })
        .where('delivery_id', 'in', due)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', now)]))
        .returningAll()
        .execute();
      return rows.map(toDelivery);
    },

    async record(update, attempt) {
      await tables(db)
        .updateTable('routing_deliveries')
        .set({
          status: update.status,
          attempts: update.attempts,
          next_attempt_at: update.nextAttemptAt,
          last_error: update.lastError,
          lease_until: null,
          updated_at: update.at,
        })
        .where('delivery_id', '=', update.deliveryId)
        .execute();
      if (attempt) {
        await tables(db)
          .insertInto('routing_attempts')
          .values({
            delivery_id: attempt.deliveryId,
            attempt: attempt.attempt,
            at: attempt.at,
            outcome: attempt.outcome,
            status_code: attempt.statusCode,
            error: attempt.error,
            duration_ms: attempt.durationMs,
          })
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
    },

    async requeue(deliveryId, at) {
      const row = await tables(db)
        .updateTable('routing_deliveries')
        .set({ status: 'pending', next_attempt_at: at, lease_until: null, updated_at: at })
        .where('delivery_id', '=', deliveryId)
        .where('status', '=', 'dead_lettered')
        .returningAll()
        .executeTakeFirst();
      return row && toDelivery(row);
    },

    async get(deliveryId) {
      const row = await tables(db).selectFrom('routing_deliveries').selectAll().where('delivery_id', '=', deliveryId).executeTakeFirst();
      return row && toDelivery(row);
    },

    async list(filter) {
      let query = tables(db)
        .selectFrom('routing_deliveries')
        .selectAll()
        .orderBy('created_at', 'desc')
        .orderBy('delivery_id')
        .limit(filter.limit);
      if (filter.itemId !== undefined) query = query.where('item_id', '=', filter.itemId);
      if (filter.ruleId !== undefined) query = query.where('rule_id', '=', filter.ruleId);
      if (filter.status === 'pending' || filter.status === 'retrying') {
        query = query.where('status', '=', 'pending').where('attempts', filter.status === 'pending' ? '=' : '>', 0);
      } else if (filter.status !== undefined) query = query.where('status', '=', filter.status);
      return (await query.execute()).map(toDelivery);
    },

    async attemptsOf(deliveryId) {
      const rows = await tables(db)
        .selectFrom('routing_attempts')
        .selectAll()
        .where('delivery_id', '=', deliveryId)
        .orderBy('attempt')
        .execute();
      return rows.map((row): Attempt => ({
        deliveryId: row.delivery_id,
        attempt: row.attempt,
        at: row.at,
        outcome: row.outcome,
        statusCode: row.status_code,
        error: row.error,
        durationMs: row.duration_ms,
      }));
    },

    async nextDueAt() {
      const row = await tables(db)
        .selectFrom('routing_deliveries')
        .select('next_attempt_at')
        .where('status', '=', 'pending')
        .orderBy('next_attempt_at')
        .limit(1)
        .executeTakeFirst();
      return row?.next_attempt_at ?? undefined;
    },
  };
}
