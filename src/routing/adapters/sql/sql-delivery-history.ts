import { PostgresAdapter, sql, type Kysely } from 'kysely';
import { keyPieces } from '../../../shared/sql/statement-shapes.js';
import type { DeliveryHistory } from '../../application/ports.js';

/** The one row of routing_forgotten. */
const ROW = 1;

/**
 * The oldest `limit` deliveries that succeeded before `before`, read through routing_deliveries_succeeded
 * (the condition in the literal form its index states); on PostgreSQL, those no other pruner holds.
 */
export const oldestSucceeded = (before: string, limit: number, postgres: boolean) =>
  sql<{ delivery_id: string; position: number | string | null }>`SELECT delivery_id, position FROM routing_deliveries
    WHERE status = 'succeeded' AND updated_at < ${before}
    ORDER BY updated_at LIMIT ${limit} ${postgres ? sql`FOR UPDATE SKIP LOCKED` : sql``}`;

/** Likewise the oldest deliveries of cancelled replay jobs, through routing_deliveries_cancelled. */
export const oldestCancelled = (before: string, limit: number, postgres: boolean) =>
  sql<{ delivery_id: string }>`SELECT delivery_id FROM routing_deliveries
    WHERE status = 'cancelled' AND updated_at < ${before}
    ORDER BY updated_at LIMIT ${limit} ${postgres ? sql`FOR UPDATE SKIP LOCKED` : sql``}`;

/** Deletes the deliveries and their attempts, in statements of a size the database takes. */
async function deleteDeliveries(trx: Kysely<object>, ids: readonly string[], status: 'succeeded' | 'cancelled') {
  for (const piece of keyPieces(trx, ids)) {
    await sql`DELETE FROM routing_attempts WHERE delivery_id IN (${sql.join(piece)})`.execute(trx);
    await sql`DELETE FROM routing_deliveries WHERE delivery_id IN (${sql.join(piece)}) AND status = ${status}`.execute(trx);
  }
}

export function sqlDeliveryHistory(db: Kysely<object>): DeliveryHistory {
  // Replicas pruning at once each take rows the other has not locked.
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;

  return {
    async forgetBefore(before, limit) {
      return db.transaction().execute(async (trx) => {
        const { rows } = await oldestSucceeded(before, limit, postgres).execute(trx);
        await deleteDeliveries(
          trx,
          rows.map((row) => row.delivery_id),
          'succeeded',
        );
        if (rows.length > 0) {
          const through = Math.max(...rows.map((row) => Number(row.position ?? 0)));
          await sql`INSERT INTO routing_forgotten (id, through_position) VALUES (${ROW}, ${through})
            ON CONFLICT (id) DO UPDATE SET through_position = CASE
              WHEN excluded.through_position > routing_forgotten.through_position THEN excluded.through_position
              ELSE routing_forgotten.through_position END`.execute(trx);
        }
        // The rest of the slice goes to a cancelled job's: no event is routed by them, so no mark moves.
        // A slice that comes up short ends the pass, so they cannot wait for one with no succeeded ones.
        if (rows.length === limit) return rows.length;
        const cancelled = (await oldestCancelled(before, limit - rows.length, postgres).execute(trx)).rows.map((row) => row.delivery_id);
        await deleteDeliveries(trx, cancelled, 'cancelled');
        return rows.length + cancelled.length;
      });
    },

    async forgottenThrough() {
      const { rows } = await sql<{ through_position: number | string }>`
        SELECT through_position FROM routing_forgotten WHERE id = ${ROW}`.execute(db);
      return Number(rows[0]?.through_position ?? 0);
    },
  };
}
