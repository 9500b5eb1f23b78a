import { Kysely, SqliteDialect } from 'kysely';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { routingMigrations } from './migrations.js';
import { sqlDeliveryStore } from './sql-deliveries.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** The delivery store on SQLite, noting every statement it runs with its parameters. */
async function recordingStore() {
  const raw = new Database(':memory:');
  const statements: Array<{ sql: string; parameters: readonly unknown[] }> = [];
  const db = new Kysely<object>({
    dialect: new SqliteDialect({ database: raw }),
    log: (event) => {
      if (event.level === 'query') statements.push({ sql: event.query.sql, parameters: event.query.parameters });
    },
  });
  closers.push(() => db.destroy());
  await migrateToLatest(db, [routingMigrations]);
  statements.length = 0;
  const plan = (match: RegExp, nth = 0) => {
    const statement = statements.filter((s) => match.test(s.sql))[nth];
    if (!statement) throw new Error(`no statement matching ${match}`);
    const rows = raw.prepare(`EXPLAIN QUERY PLAN ${statement.sql}`).all(...(statement.parameters as unknown[])) as Array<{
      detail: string;
    }>;
    return rows.map((row) => row.detail).join('\n');
  };
  const indexSql = (name: string) => (raw.prepare('SELECT sql FROM sqlite_master WHERE name = ?').get(name) as { sql: string }).sql;
  return { store: sqlDeliveryStore(db), plan, indexSql };
}

/** The statement that reads a kind's first due deliveries in due order. */
const IN_ORDER = (kind: string) =>
  new RegExp(`^SELECT d\\.delivery_id FROM \\(SELECT [^]*INDEXED BY routing_deliveries_claim_${kind}\\b[^]*LIMIT \\?\\) AS d\\s+WHERE`);
/** The statement that reads each rule's first due deliveries of a kind. */
const HEADS = (kind: string) => new RegExp(`^SELECT \\* FROM \\(SELECT d\\.delivery_id[^]*INDEXED BY routing_deliveries_rule_${kind}\\b`);

const AT = '2026-12-02T09:00:00.000Z';
const delivery = (id: string, ruleId: string, position: number, replayJobId?: string) => ({
  deliveryId: id,
  ruleId,
  itemId: `item-${id}`,
  appId: 'shop',
  eventType: 'order',
  destinationType: 'webhook',
  body: '{}',
  createdAt: AT,
  orderingKey: replayJobId ? 'replayed' : 'k',
  position,
  receivedAt: AT,
  ...(replayJobId ? { replayJobId } : {}),
});

/**
 * One claim of ten deliveries at a fixed time, of two rules with fresh, retried and replayed ones,
 * behind `held` deliveries of each kind of a rule the worker has its share of in flight: the
 * statements its plans are read from.
 */
async function claimTen(store: ReturnType<typeof sqlDeliveryStore>, held = 0) {
  const backlog = Array.from({ length: held }, (_, i) => [
    { ...delivery(`h${i}`, 'busy', -3 * held + i), orderingKey: null },
    { ...delivery(`t${i}`, 'busy', -2 * held + i), orderingKey: null },
    { ...delivery(`p${i}`, 'busy', -held + i, 'job-0'), orderingKey: null },
  ]).flat();
  await store.schedule([
    ...backlog,
    delivery('a1', 'r1', 1),
    delivery('a2', 'r1', 2),
    delivery('b1', 'r2', 3),
    delivery('c1', 'r2', 4, 'job-1'),
  ]);
  for (const retried of ['a1', ...backlog.filter((d) => d.deliveryId.startsWith('t')).map((d) => d.deliveryId)])
    await store.record({ deliveryId: retried, status: 'pending', attempts: 1, nextAttemptAt: AT, lastError: null, at: AT }, undefined);
  return store.claimDue({
    now: '2026-12-02T10:00:00.000Z',
    leaseUntil: '2026-12-02T10:01:00.000Z',
    limit: 10,
    owner: 'w1',
    excludeRules: held > 0 ? ['busy'] : [],
  });
}

it('finds pending deliveries of an ordering key, a replay’s deliveries and in-flight attempts through their partial indexes', async () => {
  const { store, plan, indexSql } = await recordingStore();
  // Partial: a delivery made as it is scheduled, without ordering key or replay, enters none of them.
  expect(indexSql('routing_deliveries_ordering')).toMatch(/WHERE status = 'pending' AND ordering_key IS NOT NULL/);
  expect(indexSql('routing_deliveries_replay')).toMatch(/WHERE replay_job_id IS NOT NULL/);
  expect(indexSql('routing_attempts_in_flight')).toMatch(/WHERE outcome = 'in_flight'/);
  await claimTen(store);
  await store.countByJob('job-1');
  await store.inFlightAttempts('w1');
  expect(plan(IN_ORDER('live'))).toContain('routing_deliveries_ordering');
  expect(plan(/where "replay_job_id" = \? group by "status"/)).toContain('routing_deliveries_replay');
  expect(plan(/from "routing_attempts"/)).toContain('routing_attempts_in_flight');
});

it('claims live retries, other live deliveries, then a replay’s, each read in due order through an index that stops at its limit (it sorted every due one)', async () => {
  const { store, plan, indexSql } = await recordingStore();
  expect(indexSql('routing_deliveries_claim_retrying')).toMatch(/WHERE status = 'pending' AND replay_job_id IS NULL AND attempts > 0/);
  expect(indexSql('routing_deliveries_claim_live')).toMatch(/WHERE status = 'pending' AND replay_job_id IS NULL/);
  expect(indexSql('routing_deliveries_claim_replayed')).toMatch(/WHERE status = 'pending' AND replay_job_id IS NOT NULL/);
  expect((await claimTen(store)).map((d) => d.deliveryId)).toEqual(['a1', 'b1', 'c1']);
  for (const kind of ['retrying', 'live', 'replayed']) {
    const read = plan(IN_ORDER(kind));
    expect(read).toContain(`SEARCH d USING INDEX routing_deliveries_claim_${kind} (next_attempt_at<?)`);
    // Read as it comes (a co-routine), so the outer limit ends the read: no sort of every row read.
    expect(read).toMatch(/CO-ROUTINE d/);
    expect(read).not.toContain('TEMP B-TREE');
  }
});

it('past a backlog it may not take, finds the other rules one index seek each and reads each one’s first due deliveries of each kind, not the backlog', async () => {
  const { store, plan, indexSql } = await recordingStore();
  for (const [kind, condition] of [
    ['retrying', "status = 'pending' AND replay_job_id IS NULL AND attempts > 0"],
    ['live', "status = 'pending' AND replay_job_id IS NULL"],
    ['replayed', "status = 'pending' AND replay_job_id IS NOT NULL"],
  ] as const)
    expect(indexSql(`routing_deliveries_rule_${kind}`)).toContain(`(rule_id, next_attempt_at, position)\n              WHERE ${condition}`);
  // More of the busy rule's deliveries of each kind lie ahead than a claim reads in due order.
  expect((await claimTen(store, 600)).map((d) => d.deliveryId)).toEqual(['a1', 'b1', 'c1']);
  for (const [nth, index] of [
    [0, 'routing_deliveries_rule_live'],
    [1, 'routing_deliveries_rule_live'],
    [2, 'routing_deliveries_rule_replayed'],
  ] as const) {
    const rules = plan(/^WITH RECURSIVE pending/, nth);
    expect(rules).toContain(`SEARCH d USING INDEX ${index} (rule_id>?)`);
    expect(rules).not.toMatch(/SCAN d$/m);
  }
  for (const [nth, kind] of ['retrying', 'live', 'replayed'].entries()) {
    // The rules ranked by their first due delivery, in one statement whatever their number.
    expect(plan(/^SELECT r\.value AS rule_id/, nth)).toContain(
      `USING INDEX routing_deliveries_rule_${kind} (rule_id=? AND next_attempt_at<?)`,
    );
    const heads = plan(HEADS(kind));
    expect(heads).toContain(`USING INDEX routing_deliveries_rule_${kind} (rule_id=? AND next_attempt_at<?)`);
    expect(heads).not.toContain('TEMP B-TREE');
  }
});

it('finds due, failed and pending deliveries through an index that succeeded ones stay out of', async () => {
  const { store, plan, indexSql } = await recordingStore();
  expect(indexSql('routing_deliveries_due')).toMatch(/WHERE status <> 'succeeded'/);
  const now = '2026-12-02T10:00:00.000Z';
  await store.nextDueAt(now, []);
  await store.list({ status: 'dead_lettered' }, { limit: 10 });
  await store.pendingByRule(['r1']);
  expect(plan(/select "d"\."next_attempt_at"/)).toContain('routing_deliveries_due');
  expect(plan(/where "status" = \? and status <> 'succeeded'/)).toContain('routing_deliveries_due');
  expect(plan(/group by "rule_id"/)).toContain('routing_deliveries_due');
});

it('pages the deliveries list, newest first, through an index instead of sorting the whole table', async () => {
  const { store, plan } = await recordingStore();
  const first = await store.list({}, { limit: 10 });
  expect(first.items).toEqual([]);
  const listed = plan(/from "routing_deliveries" order by "created_at" desc/);
  expect(listed).toContain('routing_deliveries_created');
  expect(listed).not.toContain('TEMP B-TREE');
});
