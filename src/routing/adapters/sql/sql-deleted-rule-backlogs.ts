import type { Kysely } from 'kysely';
import type { DeletedRuleBacklogs } from '../../application/ports.js';

type Tables = { routing_deleted_backlogs: { rule_id: string; deleted_at: string } };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** The deleted rules with deliveries left to dead-letter, in routing's tables. */
export function sqlDeletedRuleBacklogs(db: Kysely<object>): DeletedRuleBacklogs {
  return {
    async add({ ruleId, deletedAt }) {
      await tables(db)
        .insertInto('routing_deleted_backlogs')
        .values({ rule_id: ruleId, deleted_at: deletedAt })
        .onConflict((oc) => oc.column('rule_id').doNothing())
        .execute();
    },
    async list() {
      const rows = await tables(db).selectFrom('routing_deleted_backlogs').selectAll().orderBy('deleted_at').orderBy('rule_id').execute();
      return rows.map((row) => ({ ruleId: row.rule_id, deletedAt: row.deleted_at }));
    },
    async remove(ruleId) {
      await tables(db).deleteFrom('routing_deleted_backlogs').where('rule_id', '=', ruleId).execute();
    },
  };
}
