import type { Kysely } from 'kysely';
import type { FirstResult, IdempotencyLog, RoutingSummary } from '../../application/ports.js';

type Tables = { ingest_idempotency: { app_id: string; idem_key: string; event_id: string; routing: string; created_at: string } };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

// Five columns a row: 500 rows stay far below SQLite's and PostgreSQL's bound-parameter limits.
const CHUNK = 500;

/** Lives in the database, not in memory: it survives restarts and is shared by every ingestion replica. */
export function sqlIdempotencyLog(db: Kysely<object>): IdempotencyLog {
  return {
    async findMany(appId, keys, notBefore) {
      const found = new Map<string, FirstResult>();
      for (let i = 0; i < keys.length; i += CHUNK) {
        const rows = await tables(db)
          .selectFrom('ingest_idempotency')
          .selectAll()
          .where('app_id', '=', appId)
          .where('idem_key', 'in', keys.slice(i, i + CHUNK))
          .where('created_at', '>=', notBefore)
          .execute();
        for (const row of rows) found.set(row.idem_key, { eventId: row.event_id, routing: JSON.parse(row.routing) as RoutingSummary });
      }
      return found;
    },
    async rememberMany(appId, entries, at) {
      for (let i = 0; i < entries.length; i += CHUNK) {
        const values = entries.slice(i, i + CHUNK).map(({ key, result }) => ({
          app_id: appId,
          idem_key: key,
          event_id: result.eventId,
          routing: JSON.stringify(result.routing),
          created_at: at,
        }));
        // A key past its window is reused: the new request replaces the expired record.
        await tables(db)
          .insertInto('ingest_idempotency')
          .values(values)
          .onConflict((oc) =>
            oc.columns(['app_id', 'idem_key']).doUpdateSet((eb) => ({
              event_id: eb.ref('excluded.event_id'),
              routing: eb.ref('excluded.routing'),
              created_at: eb.ref('excluded.created_at'),
            })),
          )
          .execute();
      }
    },
  };
}
