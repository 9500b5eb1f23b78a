import {
  PostgresAdapter,
  sql,
  type ExpressionBuilder,
  type Generated,
  type Kysely,
  type RawBuilder,
  type Selectable,
  type SqlBool,
} from 'kysely';
import { decodeKeyParts, pageOf } from '../../../shared/pagination.js';
import type {
  Attempt,
  ClaimRequest,
  Delivery,
  DeliveryStatus,
  DeliveryStore,
  DeliverySummary,
  NewDelivery,
} from '../../application/ports.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';

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
  ordering_key: string | null;
  position: number | null;
  received_at: string | null;
  webhook_id: string | null;
  replay_job_id: string | null;
  lease_owner: string | null;
  /** Attempts made before the last replay from the dead-letter queue: the retry schedule starts over after them. */
  earlier_attempts: Generated<number>;
};
type AttemptRow = {
  delivery_id: string;
  attempt: number;
  at: string;
  outcome: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  worker: string | null;
};
type BreakerRow = { rule_id: string; state: string; next_probe_at: string | null };
type Tables = { routing_deliveries: DeliveryRow; routing_attempts: AttemptRow; routing_breakers: BreakerRow };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** The columns a new delivery is written with. */
const INSERTED_COLUMNS = [
  'delivery_id',
  'rule_id',
  'item_id',
  'app_id',
  'event_type',
  'destination_type',
  'body',
  'status',
  'attempts',
  'next_attempt_at',
  'lease_until',
  'last_error',
  'created_at',
  'updated_at',
  'ordering_key',
  'position',
  'received_at',
  'webhook_id',
  'replay_job_id',
  'lease_owner',
] as const satisfies ReadonlyArray<keyof DeliveryRow>;

/**
 * A rule's pending deliveries, live and replayed, as the rules indexes state them (the planners match
 * the literal form): read through the rule's part of them, never through all its deliveries since it was made.
 */
const PENDING_OF_RULE = [
  sql<SqlBool>`d.status = 'pending' AND d.replay_job_id IS NULL`,
  sql<SqlBool>`d.status = 'pending' AND d.replay_job_id IS NOT NULL`,
];

/**
 * A delivery not being attempted now: no live lease, and no attempt of it written as in flight (a
 * worker that stopped mid-attempt: the receiver may have seen it, and that attempt is recorded by the
 * worker that takes it over).
 */
const notInFlight = (at: string) =>
  sql<SqlBool>`(d.lease_until IS NULL OR d.lease_until <= ${at})
    AND NOT EXISTS (SELECT 1 FROM routing_attempts a WHERE a.delivery_id = d.delivery_id AND a.outcome = 'in_flight')`;

/** Every column but the body, for lists. */
const SUMMARY_COLUMNS = [
  ...INSERTED_COLUMNS.filter((column): column is Exclude<(typeof INSERTED_COLUMNS)[number], 'body'> => column !== 'body'),
  'earlier_attempts' as const,
];

const toDelivery = (row: Selectable<DeliveryRow>): Delivery => ({ ...toSummary(row), body: row.body });

const toSummary = (row: Omit<Selectable<DeliveryRow>, 'body'>): DeliverySummary => ({
  deliveryId: row.delivery_id,
  ruleId: row.rule_id,
  itemId: row.item_id,
  appId: row.app_id,
  eventType: row.event_type,
  destinationType: row.destination_type,
  status: row.status as DeliveryStatus,
  attempts: row.attempts,
  nextAttemptAt: row.next_attempt_at,
  lastError: row.last_error,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  orderingKey: row.ordering_key,
  position: Number(row.position ?? 0),
  receivedAt: row.received_at ?? row.created_at,
  webhookId: row.webhook_id ?? row.delivery_id,
  replayJobId: row.replay_job_id,
  earlierAttempts: Number(row.earlier_attempts),
});

const toRow = (d: NewDelivery): Omit<DeliveryRow, 'earlier_attempts'> => ({
  delivery_id: d.deliveryId,
  rule_id: d.ruleId,
  item_id: d.itemId,
  app_id: d.appId,
  event_type: d.eventType,
  destination_type: d.destinationType,
  body: d.body,
  status: d.deliveredAt === undefined ? 'pending' : 'succeeded',
  attempts: d.deliveredAt === undefined ? 0 : 1,
  next_attempt_at: d.deliveredAt === undefined ? d.createdAt : null,
  lease_until: null,
  last_error: null,
  created_at: d.createdAt,
  updated_at: d.deliveredAt ?? d.createdAt,
  ordering_key: d.orderingKey,
  position: d.position,
  received_at: d.receivedAt,
  webhook_id: d.webhookId ?? null,
  replay_job_id: d.replayJobId ?? null,
  lease_owner: null,
});

const insertDeliveries = insertTemplate<Omit<DeliveryRow, 'earlier_attempts'>, { delivery_id: string }>(INSERTED_COLUMNS, (db, rows) =>
  tables(db)
    .insertInto('routing_deliveries')
    .values(rows)
    // Any conflict: the same id, or the same (item, rule) already scheduled under an older form of id.
    .onConflict((oc) => oc.doNothing())
    .returning('delivery_id'),
);

/** Deliveries after the cursor's, newest first: created_at never changes, and the id settles ties. */
function olderThan(cursor: string) {
  const [createdAt, deliveryId] = decodeKeyParts(cursor, ['string', 'string']);
  return (eb: ExpressionBuilder<Tables, 'routing_deliveries'>) =>
    eb.or([eb('created_at', '<', createdAt), eb.and([eb('created_at', '=', createdAt), eb('delivery_id', '<', deliveryId)])]);
}

/**
 * The condition of the partial index routing_deliveries_due, in the literal form a query must state for
 * SQLite to use it (a bound status proves nothing to the planner).
 */
const unsettled = (alias?: string) => sql<SqlBool>`${sql.raw(alias ? `${alias}.` : '')}status <> 'succeeded'`;

/**
 * What makes a pending delivery claimable, for the next due time (the claim decides the rules' part
 * apart, see `claimDue`): its rule neither excluded nor disabled (its deliveries wait until it is
 * switched on again), its circuit not open (an open circuit whose probe time has come lets its
 * deliveries through, and the worker picks one as the probe), and the delivery itself `unblocked`.
 *
 * The rules held back (`held`: disabled, or an open circuit) are read first, from their small tables,
 * and named in the statement. Past HELD_RULES_NAMED of them, each row looks them up.
 */
function claimable(now: string, excludeRules: readonly string[], held: readonly string[] | undefined, postgres: boolean) {
  const named = [...excludeRules, ...(held ?? [])];
  const excluded = named.length > 0 ? sql`AND d.rule_id NOT IN (${sql.join(named)})` : sql``;
  const lookedUp =
    held === undefined
      ? sql`AND NOT EXISTS (SELECT 1 FROM routing_rules r WHERE r.rule_id = d.rule_id AND r.is_active = 0)
    AND NOT EXISTS (SELECT 1 FROM routing_breakers b
                    WHERE b.rule_id = d.rule_id AND b.state <> 'closed' AND b.next_probe_at > ${now})`
      : sql``;
  return sql<SqlBool>`d.status = 'pending' AND ${unsettled('d')}
    ${excluded}
    ${lookedUp}
    AND ${unblocked(now, postgres)}`;
}

const HELD_RULES_NAMED = 500;

/** Rules whose deliveries wait now: switched off, or behind a circuit open until a later probe; undefined past HELD_RULES_NAMED. */
async function heldRules(db: Kysely<object>, now: string): Promise<string[] | undefined> {
  const { rows } = await sql<{ rule_id: string }>`SELECT rule_id FROM routing_rules WHERE is_active = 0
    UNION SELECT rule_id FROM routing_breakers WHERE state <> 'closed' AND next_probe_at > ${now}
    UNION SELECT rule_id FROM routing_deleted_backlogs
    LIMIT ${HELD_RULES_NAMED + 1}`.execute(db);
  return rows.length > HELD_RULES_NAMED ? undefined : rows.map((row) => row.rule_id);
}

/**
 * Each kind of pending delivery as its claim indexes state it (the planners match the literal form). A
 * live delivery tried before is also in the live indexes: the pass for the others leaves it out.
 */
const KIND_CONDITION = {
  retrying: sql`d.status = 'pending' AND d.replay_job_id IS NULL AND d.attempts > 0`,
  live: sql`d.status = 'pending' AND d.replay_job_id IS NULL AND d.attempts = 0`,
  replayed: sql`d.status = 'pending' AND d.replay_job_id IS NOT NULL`,
};
type Kind = keyof typeof KIND_CONDITION;
/** The kinds in claim order, and the indexes each is read through: in due order, and by rule then due order. */
const KINDS: ReadonlyArray<{ kind: Kind; inOrder: string; byRule: string; rulesIn: 'live' | 'replayed' }> = [
  { kind: 'retrying', inOrder: 'routing_deliveries_claim_retrying', byRule: 'routing_deliveries_rule_retrying', rulesIn: 'live' },
  { kind: 'live', inOrder: 'routing_deliveries_claim_live', byRule: 'routing_deliveries_rule_live', rulesIn: 'live' },
  { kind: 'replayed', inOrder: 'routing_deliveries_claim_replayed', byRule: 'routing_deliveries_rule_replayed', rulesIn: 'replayed' },
];
const RULES_INDEX = { live: 'routing_deliveries_rule_live', replayed: 'routing_deliveries_rule_replayed' };

/**
 * How many of a kind's first due deliveries a claim reads in due order. When those hold fewer it may
 * take than it wants and there are more behind them (held back: a rule switched off, an open circuit, a
 * destination with its share in flight), it reads each rule's own first ones instead.
 */
const READ_IN_ORDER = 512;

/** A claimed delivery's kind, in the order they are claimed. */
const rankOf = (d: Delivery) => (d.replayJobId !== null ? 2 : d.attempts > 0 ? 0 : 1);

/** The claim's order, which RETURNING does not keep: by kind (`rankOf`), then by due time and log position. */
function claimOrder(a: Delivery, b: Delivery): number {
  const kinds = rankOf(a) - rankOf(b);
  if (kinds !== 0) return kinds;
  const [x, y] = [a.nextAttemptAt ?? '', b.nextAttemptAt ?? ''];
  return x < y ? -1 : x > y ? 1 : a.position - b.position;
}

/**
 * Not leased, and no earlier pending delivery of its ordering key (for a live delivery, no earlier live
 * one: a replay's copy of an old item keeps its place among the replayed, and a failing one never holds
 * live traffic back). Looked up for each row, by rule, key and position: on PostgreSQL, `OFFSET 0`
 * keeps the planner from making it an anti-join, which, on statistics taken while few deliveries were
 * pending, it keyed on the rule alone, comparing every delivery of a backlog with every other (16 s a
 * claim with 10,000 waiting, and every rule's deliveries held up meanwhile).
 */
function unblocked(now: string, postgres: boolean) {
  return sql<SqlBool>`(d.lease_until IS NULL OR d.lease_until <= ${now})
    AND NOT EXISTS (SELECT 1 FROM routing_deliveries e
                    WHERE e.rule_id = d.rule_id AND e.ordering_key = d.ordering_key AND e.status = 'pending'
                      AND e.ordering_key IS NOT NULL AND e.position <= d.position
                      AND (e.position < d.position OR (e.position = d.position AND e.delivery_id < d.delivery_id))
                      AND (e.replay_job_id IS NULL OR d.replay_job_id IS NOT NULL)
                    ${postgres ? sql`OFFSET 0` : sql``})`;
}

/** The columns a claim reads of a row it may pass over: never the body. */
const CLAIM_COLUMNS = sql.raw(
  'd.delivery_id, d.rule_id, d.ordering_key, d.position, d.replay_job_id, d.lease_until, d.status, d.next_attempt_at',
);

/**
 * The rules with pending deliveries of a kind, found one index seek each (a loose scan of the rules
 * index's leading column: a rule's backlog is never read to find the next rule), less those held back
 * now: switched off, or behind a circuit open until a later probe.
 */
async function rulesPendingIn(db: Kysely<object>, postgres: boolean, index: 'live' | 'replayed', now: string): Promise<string[]> {
  const from = sql`routing_deliveries AS d ${postgres ? sql`` : sql`INDEXED BY ${sql.raw(RULES_INDEX[index])}`}`;
  const indexed = index === 'replayed' ? KIND_CONDITION.replayed : sql`d.status = 'pending' AND d.replay_job_id IS NULL`;
  const { rows } = await sql<{ rule_id: string }>`WITH RECURSIVE pending (rule_id) AS (
      SELECT (SELECT d.rule_id FROM ${from} WHERE ${indexed} ORDER BY d.rule_id LIMIT 1)
      UNION ALL
      SELECT (SELECT d.rule_id FROM ${from} WHERE ${indexed} AND d.rule_id > p.rule_id ORDER BY d.rule_id LIMIT 1)
      FROM pending AS p WHERE p.rule_id IS NOT NULL)
    SELECT p.rule_id FROM pending AS p
    WHERE p.rule_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM routing_rules r WHERE r.rule_id = p.rule_id AND r.is_active = 0)
      AND NOT EXISTS (SELECT 1 FROM routing_breakers b
                      WHERE b.rule_id = p.rule_id AND b.state <> 'closed' AND b.next_probe_at > ${now})`.execute(db);
  return rows.map((row) => row.rule_id);
}

/** SQLite's bound on the selects of one compound statement is 500: a claim reads the rules' heads this many at a time. */
const RULES_PER_STATEMENT = 128;

type Candidate = { delivery_id: string; rule_id: string; next_attempt_at: string; position: number };
const dueOrder = (a: Candidate, b: Candidate) =>
  a.next_attempt_at < b.next_attempt_at ? -1 : a.next_attempt_at > b.next_attempt_at ? 1 : a.position - b.position;

/**
 * The first `count` claimable deliveries of a kind among these rules, by due time and log position:
 * each rule's own first `each` through its part of the rules index, then the earliest of all. On
 * PostgreSQL one statement (a lateral join over the rules); on SQLite, which has none, one select
 * per rule, a compound statement at a time.
 */
async function headsOf(
  db: Kysely<object>,
  postgres: boolean,
  kind: (typeof KINDS)[number],
  ruleIds: readonly string[],
  now: string,
  { each, count }: { readonly each: number; readonly count: number },
) {
  const headOf = (rule: RawBuilder<unknown>) => sql`SELECT d.delivery_id, d.rule_id, d.next_attempt_at, d.position
    FROM routing_deliveries AS d ${postgres ? sql`` : sql`INDEXED BY ${sql.raw(kind.byRule)}`}
    WHERE d.rule_id = ${rule} AND d.next_attempt_at <= ${now} AND ${KIND_CONDITION[kind.kind]} AND ${unblocked(now, postgres)}
    ORDER BY d.next_attempt_at, d.position LIMIT ${each}`;
  if (postgres) {
    const { rows } = await sql<Candidate>`SELECT head.* FROM unnest(${[...ruleIds]}::text[]) AS r (rule_id)
      CROSS JOIN LATERAL (${headOf(sql`r.rule_id`)}) AS head
      ORDER BY head.next_attempt_at, head.position LIMIT ${count}`.execute(db);
    return rows.map((row) => ({ ...row, position: Number(row.position) }));
  }
  const heads = new Map<string, Candidate>();
  for (let at = 0; at < ruleIds.length; at += RULES_PER_STATEMENT) {
    for (const piece of keyPieces(db, ruleIds.slice(at, at + RULES_PER_STATEMENT))) {
      const selects = piece.map((ruleId) => sql`SELECT * FROM (${headOf(sql`${ruleId}`)}) AS head`);
      const { rows } = await sql<Candidate>`${sql.join(selects, sql` UNION ALL `)}`.execute(db);
      for (const row of rows) heads.set(row.delivery_id, { ...row, position: Number(row.position) });
    }
  }
  return [...heads.values()].sort(dueOrder).slice(0, count);
}

/**
 * The rules that have a claimable delivery of a kind, earliest first by their first one. On SQLite one
 * statement whatever the number of rules (a scalar subquery per rule over a JSON list of them): as a
 * select per rule, 200 rules cost 13 ms a claim.
 */
async function rulesByFirstDue(
  db: Kysely<object>,
  postgres: boolean,
  kind: (typeof KINDS)[number],
  ruleIds: readonly string[],
  now: string,
) {
  if (postgres) return (await headsOf(db, postgres, kind, ruleIds, now, { each: 1, count: ruleIds.length })).map((head) => head.rule_id);
  const { rows } = await sql<{ rule_id: string; first: string | null }>`SELECT r.value AS rule_id,
      (SELECT d.next_attempt_at || ' ' || printf('%020d', d.position)
       FROM routing_deliveries AS d INDEXED BY ${sql.raw(kind.byRule)}
       WHERE d.rule_id = r.value AND d.next_attempt_at <= ${now} AND ${KIND_CONDITION[kind.kind]} AND ${unblocked(now, postgres)}
       ORDER BY d.next_attempt_at, d.position LIMIT 1) AS first
    FROM json_each(${JSON.stringify(ruleIds)}) AS r`.execute(db);
  return rows
    .filter((row): row is { rule_id: string; first: string } => row.first !== null)
    .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0))
    .map((row) => row.rule_id);
}

export function sqlDeliveryStore(db: Kysely<object>): DeliveryStore {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;

  // FOR UPDATE SKIP LOCKED: replicas claiming at once chose overlapping rows and locked them in
  // different orders (deadlocks); rows another replica is claiming are left to it.
  const skipLocked = postgres ? sql`FOR UPDATE SKIP LOCKED` : sql``;

  /**
   * Up to `count` claimable deliveries of a kind, read in due order among its first READ_IN_ORDER due
   * ones; the read stops at the `count`th that may be taken. `more`: it came up short while those
   * READ_IN_ORDER did not end the kind's due deliveries. Chosen first and leased apart: on
   * PostgreSQL a lock taken in the read would mark every row it passed over.
   */
  const inOrder = async (
    kind: (typeof KINDS)[number],
    count: number,
    request: ClaimRequest,
    held: readonly string[] | undefined,
    lost: readonly string[],
  ) => {
    const { now } = request;
    const notLost = lost.length > 0 ? sql`AND d.delivery_id NOT IN (${sql.join(lost)})` : sql``;
    const first = sql`(SELECT ${CLAIM_COLUMNS} FROM routing_deliveries AS d ${postgres ? sql`` : sql`INDEXED BY ${sql.raw(kind.inOrder)}`}
      WHERE d.next_attempt_at <= ${now} AND ${KIND_CONDITION[kind.kind]}
      ORDER BY d.next_attempt_at, d.position LIMIT ${READ_IN_ORDER}) AS d`;
    // The first ones come out in the inner order, and the outer limit ends the read: no sort of all of them.
    const { rows } = await sql<{ delivery_id: string }>`SELECT d.delivery_id FROM ${first}
      WHERE ${claimable(now, request.excludeRules, held, postgres)} ${notLost} LIMIT ${count}`.execute(db);
    const chosen = rows.map((row) => row.delivery_id);
    if (chosen.length === count) return { chosen, more: false };
    const { rows: read } = await sql<{ n: number | string }>`SELECT count(*) AS n FROM ${first}`.execute(db);
    return { chosen, more: Number(read[0]?.n ?? 0) === READ_IN_ORDER };
  };

  /**
   * Leases these deliveries where they may still be taken: chosen by a read that took no lock, each may
   * since have been leased, sent and recorded by another replica (which clears its lease), rescheduled
   * or dead-lettered, so the whole claim is checked again, not the lease alone.
   */
  const lease = async (deliveryIds: readonly string[], { now, leaseUntil, owner }: ClaimRequest) => {
    if (deliveryIds.length === 0) return [];
    const free = sql<string>`(SELECT d.delivery_id FROM routing_deliveries AS d
      WHERE d.delivery_id IN (${sql.join(deliveryIds)}) AND d.status = 'pending' AND d.next_attempt_at <= ${now} AND ${unblocked(now, postgres)}
      ${skipLocked})`;
    const rows = await tables(db)
      .updateTable('routing_deliveries')
      .set({ lease_until: leaseUntil, lease_owner: owner })
      // On PostgreSQL the locking read is an array computed once: as `IN (…)`, statistics taken while
      // little was pending made it a semi-join that ran the read again for every pending delivery, and
      // the worker sent nothing for minutes behind a burst of 10,000.
      .where(postgres ? sql<SqlBool>`delivery_id = ANY(ARRAY${free})` : sql<SqlBool>`delivery_id IN ${free}`)
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', now)]))
      .returningAll()
      .execute();
    return rows.map(toDelivery);
  };

  /**
   * Locks the rule's pending deliveries (of them, those `narrowed` names) until the transaction ends,
   * on PostgreSQL (SQLite has one writer): an attempt that finishes meanwhile waits to record, and
   * one that recorded first is seen by the statements after this.
   */
  const lockPending = async (ruleId: string, narrowed: RawBuilder<unknown>) => {
    if (!postgres) return;
    for (const kind of PENDING_OF_RULE)
      await sql`SELECT d.delivery_id FROM routing_deliveries AS d WHERE d.rule_id = ${ruleId} AND ${kind} ${narrowed} FOR UPDATE`.execute(
        db,
      );
  };

  return {
    async schedule(deliveries) {
      const inserted: string[] = [];
      // 20 columns a row: 256 rows stay well below the bound-parameter limits of SQLite and PostgreSQL.
      for (const piece of rowPieces(db, deliveries, 256)) {
        const rows = await insertDeliveries(db, piece.map(toRow));
        inserted.push(...rows.map((row) => row.delivery_id));
      }
      const made = new Set(inserted);
      // In the order given, as callers match them against what they planned.
      return deliveries.filter((d) => made.has(d.deliveryId)).map((d) => d.deliveryId);
    },

    async claimDue(request: ClaimRequest) {
      // ISO-8601 UTC strings compare in time order, on SQLite and PostgreSQL alike. Live deliveries go
      // before a replay's, so a replay never starves them; and of those, the ones tried before: a retry
      // due now waited behind the destination's whole backlog of fresh ones, and with it every later
      // delivery of its ordering key. Each kind is read in due order first; when what it read was held
      // back (a rule switched off, an open circuit, a destination with its share in flight) and more
      // lies behind, each other rule's own first due ones are read instead of the held backlog.
      const held = await heldRules(db, request.now);
      const excluded = new Set([...request.excludeRules, ...(held ?? [])]);
      const claimed: Delivery[] = [];
      for (const kind of KINDS) {
        const wanted = request.limit - claimed.length;
        if (wanted <= 0) break;
        // Another replica may lease what this one chose, between its read and its lease (those rows are
        // skipped): the next ones in due order are read then, at most twice more.
        const lost: string[] = [];
        let read = await inOrder(kind, wanted, request, held, lost);
        let leased = await lease(read.chosen, request);
        for (let again = 0; again < 2 && leased.length < wanted && leased.length < read.chosen.length; again++) {
          const got = new Set(leased.map((d) => d.deliveryId));
          lost.push(...read.chosen.filter((id) => !got.has(id)));
          read = await inOrder(kind, wanted - leased.length, request, held, lost);
          leased = [...leased, ...(await lease(read.chosen, request))];
        }
        if (leased.length < wanted && read.more) {
          // Each rule's first due delivery ranks the rules; the first ones give as many as each may take.
          const need = wanted - leased.length;
          const ruleIds = (await rulesPendingIn(db, postgres, kind.rulesIn, request.now)).filter((ruleId) => !excluded.has(ruleId));
          const ranked = (await rulesByFirstDue(db, postgres, kind, ruleIds, request.now)).slice(0, need);
          const each = Math.min(need, request.perRule ?? need);
          // What this claim leased already is leased: no head names it again.
          const heads = await headsOf(db, postgres, kind, ranked, request.now, { each, count: need });
          leased = [
            ...leased,
            ...(await lease(
              heads.map((head) => head.delivery_id),
              request,
            )),
          ];
        }
        claimed.push(...leased);
      }
      // In the order they were chosen: the worker sends the first ones when it cannot send them all.
      return claimed.sort(claimOrder);
    },

    async release(deliveryIds, owner) {
      if (deliveryIds.length === 0) return;
      await tables(db)
        .updateTable('routing_deliveries')
        .set({ lease_until: null, lease_owner: null })
        .where('delivery_id', 'in', deliveryIds)
        .where('lease_owner', '=', owner)
        .execute();
    },

    async beginAttempt({ deliveryId, attempt, at, worker }) {
      const begun = await tables(db)
        .insertInto('routing_attempts')
        .values({ delivery_id: deliveryId, attempt, at, outcome: 'in_flight', status_code: null, error: null, duration_ms: 0, worker })
        // Begun again by the same worker; another's is not overwritten (it was lost from the log).
        .onConflict((oc) =>
          oc
            .columns(['delivery_id', 'attempt'])
            .doUpdateSet({ at, outcome: 'in_flight', worker })
            .where((eb) => eb.or([eb('routing_attempts.worker', '=', worker), eb('routing_attempts.outcome', '<>', 'in_flight')])),
        )
        .returning('delivery_id')
        .executeTakeFirst();
      return begun !== undefined;
    },

    async withdrawAttempt({ deliveryId, attempt }) {
      await tables(db)
        .deleteFrom('routing_attempts')
        .where('delivery_id', '=', deliveryId)
        .where('attempt', '=', attempt)
        .where('outcome', '=', 'in_flight')
        .execute();
    },

    async inFlightAttempts(worker) {
      const rows = await tables(db)
        .selectFrom('routing_attempts')
        .select(['delivery_id', 'attempt'])
        // A literal, as the partial index routing_attempts_in_flight states it, so the planner may use it.
        .where(sql<SqlBool>`outcome = 'in_flight'`)
        .where('worker', '=', worker)
        .execute();
      return rows.map((row) => ({ deliveryId: row.delivery_id, attempt: row.attempt }));
    },

    async releaseOwned(owner) {
      await tables(db)
        .updateTable('routing_deliveries')
        .set({ lease_until: null, lease_owner: null })
        .where('lease_owner', '=', owner)
        .execute();
    },

    async record(update, attempt) {
      await tables(db)
        .updateTable('routing_deliveries')
        .set({
          ...(update.destinationType === undefined ? {} : { destination_type: update.destinationType }),
          status: update.status,
          attempts: update.attempts,
          next_attempt_at: update.nextAttemptAt,
          last_error: update.lastError,
          lease_until: null,
          lease_owner: null,
          updated_at: update.at,
        })
        .where('delivery_id', '=', update.deliveryId)
        .execute();
      if (attempt) {
        const outcome = {
          outcome: attempt.outcome,
          status_code: attempt.statusCode,
          error: attempt.error,
          duration_ms: attempt.durationMs,
        };
        // An attempt begun before it was sent keeps that time: when the receiver got it, to match with its logs.
        await tables(db)
          .insertInto('routing_attempts')
          .values({ delivery_id: attempt.deliveryId, attempt: attempt.attempt, worker: null, at: attempt.at, ...outcome })
          .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doUpdateSet(outcome))
          .execute();
      }
    },

    async requeue(deliveryId, at) {
      const row = await tables(db)
        .updateTable('routing_deliveries')
        // The schedule starts over after the attempts made so far, which keep their numbers. The
        // reason it was given up no longer holds: each attempt's error stays in the attempt log.
        .set((eb) => ({
          status: 'pending',
          next_attempt_at: at,
          lease_until: null,
          updated_at: at,
          earlier_attempts: eb.ref('attempts'),
          last_error: null,
        }))
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

    async list(filter, page) {
      let query = tables(db)
        .selectFrom('routing_deliveries')
        .select(SUMMARY_COLUMNS)
        .orderBy('created_at', 'desc')
        .orderBy('delivery_id', 'desc')
        .limit(page.limit + 1);
      if (filter.itemId !== undefined) query = query.where('item_id', '=', filter.itemId);
      if (filter.ruleId !== undefined) query = query.where('rule_id', '=', filter.ruleId);
      if (filter.status === 'pending' || filter.status === 'retrying') {
        query = query.where('status', '=', 'pending').where('attempts', filter.status === 'pending' ? '=' : '>', 0);
      } else if (filter.status !== undefined) query = query.where('status', '=', filter.status);
      if (filter.status !== undefined && filter.status !== 'succeeded') query = query.where(unsettled());
      if (page.cursor !== undefined) query = query.where(olderThan(page.cursor));
      return pageOf((await query.execute()).map(toSummary), page.limit, (d) => [d.createdAt, d.deliveryId]);
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

    async nextDueAt(now, excludeRules) {
      // From now on in the due index: a backlog already due but held (an open circuit, an ordering key
      // behind a failing delivery) is not read through again at every wake-up.
      const row = await tables(db)
        .selectFrom('routing_deliveries as d')
        .select('d.next_attempt_at')
        .where('d.next_attempt_at', '>', now)
        .where(claimable(now, excludeRules, await heldRules(db, now), postgres))
        .orderBy('d.next_attempt_at')
        .limit(1)
        .executeTakeFirst();
      return row?.next_attempt_at ?? undefined;
    },

    async pendingByRule(ruleIds) {
      if (ruleIds.length === 0) return new Map();
      const rows = await tables(db)
        .selectFrom('routing_deliveries')
        .select(['rule_id', (eb) => eb.fn.countAll<number>().as('n')])
        .where('status', '=', 'pending')
        .where(unsettled())
        .where('rule_id', 'in', ruleIds)
        .groupBy('rule_id')
        .execute();
      return new Map(rows.map((row) => [row.rule_id, Number(row.n)]));
    },

    async window(ruleId, { from, to }, after, limit) {
      const rows = await tables(db)
        .selectFrom('routing_deliveries')
        .selectAll()
        .where('rule_id', '=', ruleId)
        .where('replay_job_id', 'is', null)
        .where('received_at', '>=', from)
        .where('received_at', '<=', to)
        .where((eb) =>
          eb.or([
            eb('position', '>', after.position),
            eb.and([eb('position', '=', after.position), eb('delivery_id', '>', after.deliveryId)]),
          ]),
        )
        .orderBy('position')
        .orderBy('delivery_id')
        .limit(limit)
        .execute();
      return rows.map(toDelivery);
    },

    async webhookIdsOf(ruleId, itemIds) {
      const ids = new Map<string, string>();
      for (const piece of keyPieces(db, itemIds)) {
        const rows = await tables(db)
          .selectFrom('routing_deliveries')
          .select(['item_id', 'delivery_id', 'webhook_id'])
          .where('item_id', 'in', piece)
          .where('rule_id', '=', ruleId)
          .where('replay_job_id', 'is', null)
          .execute();
        for (const row of rows) ids.set(row.item_id, row.webhook_id ?? row.delivery_id);
      }
      return ids;
    },

    async countWindow(ruleId, { from, to }) {
      const row = await tables(db)
        .selectFrom('routing_deliveries')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('rule_id', '=', ruleId)
        .where('replay_job_id', 'is', null)
        .where('received_at', '>=', from)
        .where('received_at', '<=', to)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },

    async dueAgain(ruleId, at) {
      // The attempts in flight are held first: one that finishes meanwhile records once this committed,
      // and reads the new destination then; one that recorded first is made due here with the others.
      await lockPending(ruleId, sql`AND d.lease_until > ${at}`);
      let due = 0;
      for (const kind of PENDING_OF_RULE) {
        const result = await tables(db)
          .updateTable('routing_deliveries as d')
          .set({ next_attempt_at: at, updated_at: at })
          .where('d.rule_id', '=', ruleId)
          .where(kind)
          .where('d.next_attempt_at', '>', at)
          .where(notInFlight(at))
          .executeTakeFirst();
        due += Number(result.numUpdatedRows);
      }
      return due;
    },

    async deadLetterWaiting(ruleId, at, reason, limit) {
      // The attempts in flight are held first: one that finishes meanwhile records once this committed,
      // and finds the rule gone. Of the others, those chosen are held until the update.
      await lockPending(ruleId, sql`AND d.lease_until > ${at}`);
      const given: DeliverySummary[] = [];
      for (const kind of PENDING_OF_RULE) {
        const room = limit - given.length;
        if (room <= 0) break;
        const { rows: chosen } = await sql<{ delivery_id: string }>`SELECT d.delivery_id FROM routing_deliveries AS d
          WHERE d.rule_id = ${ruleId} AND ${kind} AND ${notInFlight(at)} LIMIT ${room} ${postgres ? sql`FOR UPDATE` : sql``}`.execute(db);
        if (chosen.length === 0) continue;
        const rows = await tables(db)
          .updateTable('routing_deliveries as d')
          .set({ status: 'dead_lettered', next_attempt_at: null, last_error: reason, lease_until: null, lease_owner: null, updated_at: at })
          .where(
            'd.delivery_id',
            'in',
            chosen.map((row) => row.delivery_id),
          )
          .where(kind)
          .where(notInFlight(at))
          .returning(SUMMARY_COLUMNS)
          .execute();
        given.push(...rows.map(toSummary));
      }
      return given;
    },

    async countByJob(jobId) {
      const rows = await tables(db)
        .selectFrom('routing_deliveries')
        .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('replay_job_id', '=', jobId)
        .groupBy('status')
        .execute();
      const counts: Record<DeliveryStatus, number> = { pending: 0, succeeded: 0, dead_lettered: 0, cancelled: 0 };
      for (const row of rows) counts[row.status as DeliveryStatus] = Number(row.n);
      return counts;
    },

    async cancelJob(jobId, at) {
      const result = await tables(db)
        .updateTable('routing_deliveries')
        .set({ status: 'cancelled', next_attempt_at: null, updated_at: at })
        .where('replay_job_id', '=', jobId)
        .where('status', '=', 'pending')
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', at)]))
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    },
  };
}
