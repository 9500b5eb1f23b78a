import type { Kysely } from 'kysely';
import { insertTemplate } from '../../../shared/sql/insert-template.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import type { FirstResult, IdempotencyLog, RoutingSummary } from '../../application/ports.js';

type IdempotencyRow = {
  app_id: string;
  idem_key: string;
  event_id: string;
  routing: string;
  created_at: string;
  fingerprint: string | null;
};
type Tables = { ingest_idempotency: IdempotencyRow };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

// Every message of a tracking-API batch carries a messageId: this insert runs for each of them.
const rememberRows = insertTemplate<IdempotencyRow>(
  ['app_id', 'idem_key', 'event_id', 'routing', 'created_at', 'fingerprint'],
  (db, rows) =>
    tables(db)
      .insertInto('ingest_idempotency')
      .values(rows)
      // A key past its window is reused: the new request replaces the expired record.
      .onConflict((oc) =>
        oc.columns(['app_id', 'idem_key']).doUpdateSet((eb) => ({
          event_id: eb.ref('excluded.event_id'),
          routing: eb.ref('excluded.routing'),
          created_at: eb.ref('excluded.created_at'),
          fingerprint: eb.ref('excluded.fingerprint'),
        })),
      ),
);

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
        for (const row of rows) {
          const first = { eventId: row.event_id, routing: JSON.parse(row.routing) as RoutingSummary };
          found.set(row.idem_key, row.fingerprint === null ? first : { ...first, fingerprint: row.fingerprint });
        }
      }
      return found;
    },
    async rememberMany(appId, entries, at) {
      for (const piece of rowPieces(db, entries)) {
        await rememberRows(
          db,
          piece.map(({ key, result }) => ({
            app_id: appId,
            idem_key: key,
            event_id: result.eventId,
            routing: JSON.stringify(result.routing),
            created_at: at,
            fingerprint: result.fingerprint ?? null,
          })),
        );
      }
    },
  };
}
