import { PostgresAdapter, type Kysely } from 'kysely';
import type { BreakerStore } from '../../application/ports.js';
import { closedBreaker, type Breaker, type BreakerState } from '../../domain/circuit-breaker.js';

type BreakerRow = {
  rule_id: string;
  state: string;
  failures: number;
  next_probe_at: string | null;
  opened_at: string | null;
  probe_owner: string | null;
  updated_at: string;
  /** The destination the circuit is about; null on rows stored before destinations were told apart. */
  destination_key: string | null;
};
type Tables = { routing_breakers: BreakerRow };

const tables = (db: Kysely<object>) => db.withTables<Tables>();
const toBreaker = (row: BreakerRow): Breaker => ({
  state: row.state as BreakerState,
  failures: row.failures,
  nextProbeAt: row.next_probe_at,
  openedAt: row.opened_at,
});

/** A circuit's stored columns, as an attempt to `destination` left it at `at`. */
const columnsOf = (breaker: Breaker, at: string, destination: string): Omit<BreakerRow, 'rule_id'> => ({
  state: breaker.state,
  failures: breaker.failures,
  next_probe_at: breaker.nextProbeAt,
  opened_at: breaker.openedAt,
  probe_owner: null,
  updated_at: at,
  destination_key: destination,
});

/** Circuit breakers live in routing's tables, so an open circuit stays open across a restart. */
export function sqlBreakerStore(db: Kysely<object>): BreakerStore {
  // SQLite has one writer at a time: its transactions never read a count another is changing.
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  return {
    async get(ruleIds) {
      if (ruleIds.length === 0) return new Map();
      const rows = await tables(db).selectFrom('routing_breakers').selectAll().where('rule_id', 'in', ruleIds).execute();
      return new Map(rows.map((row) => [row.rule_id, toBreaker(row)]));
    },
    async getForChange(ruleId, destination, at) {
      const held = () =>
        tables(db)
          .selectFrom('routing_breakers')
          .selectAll()
          .where('rule_id', '=', ruleId)
          .$if(postgres, (query) => query.forUpdate())
          .executeTakeFirst();
      const row = await held();
      if (row || !postgres) return row && toBreaker(row);
      // No row to lock: the first failures of a rule that never failed each read "closed, 0" at once.
      await tables(db)
        .insertInto('routing_breakers')
        .values({ rule_id: ruleId, ...columnsOf(closedBreaker, at, destination) })
        .onConflict((oc) => oc.column('rule_id').doNothing())
        .execute();
      const made = await held();
      return made && toBreaker(made);
    },
    async all() {
      const rows = await tables(db).selectFrom('routing_breakers').selectAll().execute();
      return rows.map((row) => ({ ruleId: row.rule_id, breaker: toBreaker(row), updatedAt: row.updated_at }));
    },
    async save(ruleId, breaker, at, destination) {
      const values = columnsOf(breaker, at, destination);
      const result = await tables(db)
        .insertInto('routing_breakers')
        .values({ rule_id: ruleId, ...values })
        .onConflict((oc) =>
          oc
            .column('rule_id')
            .doUpdateSet(values)
            // Only the circuit of the destination the attempt went to (or of one not told apart yet).
            .where((eb) =>
              eb.or([
                eb('routing_breakers.destination_key', 'is', null),
                eb('routing_breakers.destination_key', '=', eb.ref('excluded.destination_key')),
              ]),
            ),
        )
        .executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    },
    async reset(ruleId, destination, at) {
      const values = columnsOf(closedBreaker, at, destination);
      await tables(db)
        .insertInto('routing_breakers')
        .values({ rule_id: ruleId, ...values })
        .onConflict((oc) => oc.column('rule_id').doUpdateSet(values))
        .execute();
    },
    async startProbe(ruleId, breaker, now, owner) {
      // Only the worker whose update finds the circuit still due takes the probe.
      const result = await tables(db)
        .updateTable('routing_breakers')
        .set({ state: 'half_open', next_probe_at: breaker.nextProbeAt, probe_owner: owner, updated_at: now })
        .where('rule_id', '=', ruleId)
        // Or closed with failures past a lowered threshold, as this worker read it.
        .where((eb) => eb.or([eb('state', '<>', 'closed'), eb('failures', '=', breaker.failures)]))
        .where((eb) => eb.or([eb('next_probe_at', 'is', null), eb('next_probe_at', '<=', now)]))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    async releaseProbes(owner, now, ruleId) {
      let update = tables(db)
        .updateTable('routing_breakers')
        // Open again, with its probe due now: half-open says a probe is in flight, and none is. When the
        // lost probe's delivery is dead-lettered rather than retried, nothing would take it for a while.
        .set({ state: 'open', next_probe_at: now, probe_owner: null, updated_at: now })
        .where('state', '=', 'half_open')
        .where('probe_owner', '=', owner);
      if (ruleId !== undefined) update = update.where('rule_id', '=', ruleId);
      await update.execute();
    },
    async nextProbeAt(now) {
      const row = await tables(db)
        .selectFrom('routing_breakers')
        .select('next_probe_at')
        .where('state', '<>', 'closed')
        .where('next_probe_at', '>', now)
        .orderBy('next_probe_at')
        .limit(1)
        .executeTakeFirst();
      return row?.next_probe_at ?? undefined;
    },
  };
}
