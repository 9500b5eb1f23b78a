import type { Kysely } from 'kysely';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import type { FirstResult, IdempotencyLog, RoutingSummary } from '../../application/ports.js';

type Tables = { ingest_idempotency: { app_id: string; idem_key: string; event_id: string; routing: string; created_at: string } };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** Lives in the database, not in memory: it survives restarts and is shared by every ingestion replica. */
export function sqlIdempotencyLog(db: Kysely<object>): IdempotencyLog {
  return {
    async findMany(appId, keys, notBefore) {
      const found = new Map<string, FirstResult>();
      for (const piece of keyPieces(db, keys)) {
        const rows = await tables(db)
          .selectFrom('ingest_idempotency')
          .selectAll()
          .where('app_id', '=', appId)
          .where('idem_key', 'in', piece)
          .where('created_at', '>=', notBefore)
          .execute();
        for (const row of rows) found.set(row.idem_key, { eventId: row.event_id, routing: JSON.parse(row.routing) as RoutingSummary });
      }
      return found;
    },
    async rememberMany(appId, entries, at) {
      for (const piece of rowPieces(db, entries)) {
        const values = piece.map(({ key, result }) => ({
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
