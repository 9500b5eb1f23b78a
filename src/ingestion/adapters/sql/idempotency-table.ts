import type { Kysely } from 'kysely';
import type { IdempotencyLog, RoutingSummary } from '../../application/ports.js';

type Tables = { ingest_idempotency: { app_id: string; idem_key: string; event_id: string; routing: string; created_at: string } };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** Lives in the database, not in memory: it survives restarts and is shared by every ingestion replica. */
export function sqlIdempotencyLog(db: Kysely<object>): IdempotencyLog {
  return {
    async find(appId, key, notBefore) {
      const row = await tables(db)
        .selectFrom('ingest_idempotency')
        .selectAll()
        .where('app_id', '=', appId)
        .where('idem_key', '=', key)
        .where('created_at', '>=', notBefore)
        .executeTakeFirst();
      return row && { eventId: row.event_id, routing: JSON.parse(row.routing) as RoutingSummary };
    },
    async remember(appId, key, result, at) {
      const values = { app_id: appId, idem_key: key, event_id: result.eventId, routing: JSON.stringify(result.routing), created_at: at };
      // A key past its window is reused: the new request replaces the expired record.
      await tables(db)
        .insertInto('ingest_idempotency')
        .values(values)
        .onConflict((oc) =>
          oc.columns(['app_id', 'idem_key']).doUpdateSet({ event_id: values.event_id, routing: values.routing, created_at: at }),
        )
        .execute();
    },
  };
}
