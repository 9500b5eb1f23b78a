import { sql, type Kysely } from 'kysely';
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

/** The fingerprint of a record stored before records had one: of a request's key or a message's id, unknown. */
export const UNKNOWN_KIND_FINGERPRINT = '*';

const firstOf = (row: IdempotencyRow): FirstResult => {
  const first = { eventId: row.event_id, routing: JSON.parse(row.routing) as RoutingSummary };
  if (row.fingerprint === null) return first;
  return row.fingerprint === UNKNOWN_KIND_FINGERPRINT ? { ...first, kindUnknown: true } : { ...first, fingerprint: row.fingerprint };
};

// Every message of a tracking-API batch carries a messageId: this insert runs for each of them.
// On PostgreSQL a row another transaction is inserting makes it wait for that one: if it commits,
// the key is taken and not returned.
const claimRows = insertTemplate<IdempotencyRow, { idem_key: string }>(
  ['app_id', 'idem_key', 'event_id', 'routing', 'created_at', 'fingerprint'],
  (db, rows) =>
    tables(db)
      .insertInto('ingest_idempotency')
      .values(rows)
      .onConflict((oc) => oc.columns(['app_id', 'idem_key']).doNothing())
      .returning('idem_key'),
);

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

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
        for (const row of rows) found.set(row.idem_key, firstOf(row));
      }
      return found;
    },
    async claimMany(appId, entries, at, notBefore) {
      const claimed = new Set<string>();
      const row = (key: string, result: FirstResult): IdempotencyRow => ({
        app_id: appId,
        idem_key: key,
        event_id: result.eventId,
        routing: JSON.stringify(result.routing),
        created_at: at,
        fingerprint: result.fingerprint ?? null,
      });
      // In key order, so that two transactions claiming the same keys wait for each other, never in a circle.
      const sorted = [...entries].sort(byKey);
      for (const piece of rowPieces(db, sorted)) {
        for (const { idem_key } of await claimRows(
          db,
          piece.map(({ key, result }) => row(key, result)),
        ))
          claimed.add(idem_key);
      }
      // Not inserted: recorded by another request, or past its window. An expired record is replaced,
      // unless a concurrent request replaced it first (PostgreSQL then checks the window again).
      const expiredOrTaken: Array<{ key: string; result: FirstResult }> = [];
      for (const { key, result } of sorted) {
        if (claimed.has(key)) continue;
        const { app_id: _app, idem_key: _key, ...fresh } = row(key, result);
        const replaced = await tables(db)
          .updateTable('ingest_idempotency')
          .set(fresh)
          .where('app_id', '=', appId)
          .where('idem_key', '=', key)
          .where('created_at', '<', notBefore)
          .returning('idem_key')
          .executeTakeFirst();
        if (replaced) claimed.add(key);
        else expiredOrTaken.push({ key, result });
      }
      // Neither inserted nor replaced: taken within its window, or an expired record deleted
      // (`forgetBefore`) between the insert and the update. Inserted now if it was that.
      for (const piece of rowPieces(db, expiredOrTaken)) {
        for (const { idem_key } of await claimRows(
          db,
          piece.map(({ key, result }) => row(key, result)),
        ))
          claimed.add(idem_key);
      }
      return claimed;
    },

    async forgetBefore(notBefore, limit) {
      // Through the creation-time index, oldest first; a row value names each record of the slice.
      const { numAffectedRows } = await sql`DELETE FROM ingest_idempotency
        WHERE (app_id, idem_key) IN (SELECT app_id, idem_key FROM ingest_idempotency
                                     WHERE created_at < ${notBefore} ORDER BY created_at LIMIT ${limit})`.execute(db);
      return Number(numAffectedRows ?? 0);
    },
  };
}
