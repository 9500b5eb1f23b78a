import type { Kysely } from 'kysely';
import type { AttemptTally, TallyStore } from '../../application/ports.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';

type TallyRow = {
  rule_id: string;
  destination_key: string;
  attempts: number | string;
  delivered: number | string;
  failed: number | string;
  duration_ms: number;
  updated_at: string;
};
type Tables = { routing_tallies: TallyRow };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** Adds to the counts in place: replicas and concurrent transactions never overwrite each other's. */
const addTallies = insertTemplate<TallyRow>(
  ['rule_id', 'destination_key', 'attempts', 'delivered', 'failed', 'duration_ms', 'updated_at'],
  (db, rows) =>
    tables(db)
      .insertInto('routing_tallies')
      .values(rows)
      .onConflict((oc) =>
        oc.columns(['rule_id', 'destination_key']).doUpdateSet((eb) => ({
          attempts: eb('routing_tallies.attempts', '+', eb.ref('excluded.attempts')),
          delivered: eb('routing_tallies.delivered', '+', eb.ref('excluded.delivered')),
          failed: eb('routing_tallies.failed', '+', eb.ref('excluded.failed')),
          duration_ms: eb('routing_tallies.duration_ms', '+', eb.ref('excluded.duration_ms')),
          updated_at: eb.ref('excluded.updated_at'),
        })),
      ),
);

/** Attempt tallies in routing's tables, one row per rule and destination. */
export function sqlTallyStore(db: Kysely<object>): TallyStore {
  return {
    async add(increments, at) {
      // One row per rule and destination (a statement may not update a row twice on PostgreSQL), in
      // one order, so that transactions adding to the same rows lock them in the same order.
      const merged = new Map<string, TallyRow>();
      for (const i of increments) {
        const key = `${i.ruleId}\u0000${i.destination}`;
        const row = merged.get(key);
        if (row) {
          row.attempts = Number(row.attempts) + i.attempts;
          row.delivered = Number(row.delivered) + i.delivered;
          row.failed = Number(row.failed) + i.failed;
          row.duration_ms += i.totalDurationMs;
        } else
          merged.set(key, {
            rule_id: i.ruleId,
            destination_key: i.destination,
            attempts: i.attempts,
            delivered: i.delivered,
            failed: i.failed,
            duration_ms: i.totalDurationMs,
            updated_at: at,
          });
      }
      const rows = [...merged.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
      await addTallies(db, rows);
    },
    async get(rules) {
      const tallies = new Map<string, AttemptTally>();
      if (rules.length === 0) return tallies;
      const wanted = new Map(rules.map((r) => [r.ruleId, r.destination]));
      const rows = await tables(db)
        .selectFrom('routing_tallies')
        .selectAll()
        .where('rule_id', 'in', [...wanted.keys()])
        .execute();
      for (const row of rows) {
        if (wanted.get(row.rule_id) !== row.destination_key) continue;
        tallies.set(row.rule_id, {
          attempts: Number(row.attempts),
          delivered: Number(row.delivered),
          failed: Number(row.failed),
          totalDurationMs: Number(row.duration_ms),
        });
      }
      return tallies;
    },
    async clear(ruleId) {
      await tables(db).deleteFrom('routing_tallies').where('rule_id', '=', ruleId).execute();
    },
  };
}
