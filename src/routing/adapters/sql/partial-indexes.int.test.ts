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

/** One claim of ten deliveries at a fixed time: the statements its plans are read from. */
const claimTen = (store: ReturnType<typeof sqlDeliveryStore>) =>
  store.claimDue({ now: '2026-12-02T10:00:00.000Z', leaseUntil: '2026-12-02T10:01:00.000Z', limit: 10, owner: 'w1', excludeRules: [] });

it('finds pending deliveries of an ordering key, a replay’s deliveries and in-flight attempts through their partial indexes', async () => {
  const { store, plan, indexSql } = await recordingStore();
  // Partial: a delivery made as it is scheduled, without ordering key or replay, enters none of them.
  expect(indexSql('routing_deliveries_ordering')).toMatch(/WHERE status = 'pending' AND ordering_key IS NOT NULL/);
  expect(indexSql('routing_deliveries_replay')).toMatch(/WHERE replay_job_id IS NOT NULL/);
  expect(indexSql('routing_attempts_in_flight')).toMatch(/WHERE outcome = 'in_flight'/);
  await claimTen(store);
  await store.countByJob('job-1');
  await store.inFlightAttempts('w1');
  expect(plan(/update "routing_deliveries" set "lease_until"/)).toContain('routing_deliveries_ordering');
  expect(plan(/where "replay_job_id" = \? group by "status"/)).toContain('routing_deliveries_replay');
  expect(plan(/from "routing_attempts"/)).toContain('routing_attempts_in_flight');
});

it('claims live retries, other live deliveries, then a replay’s, each walking an index in claim order that stops at the limit (it sorted every due one)', async () => {
  const { store, plan, indexSql } = await recordingStore();
  expect(indexSql('routing_deliveries_claim_retrying')).toMatch(/WHERE status = 'pending' AND replay_job_id IS NULL AND attempts > 0/);
  expect(indexSql('routing_deliveries_claim_live')).toMatch(/WHERE status = 'pending' AND replay_job_id IS NULL/);
  expect(indexSql('routing_deliveries_claim_replayed')).toMatch(/WHERE status = 'pending' AND replay_job_id IS NOT NULL/);
  await claimTen(store);
  const claims = /update "routing_deliveries" set "lease_until"/;
  for (const [nth, index] of [
    [0, 'routing_deliveries_claim_retrying'],
    [1, 'routing_deliveries_claim_live'],
    [2, 'routing_deliveries_claim_replayed'],
  ] as const) {
    const claimed = plan(claims, nth);
    expect(claimed).toContain(index);
    expect(claimed).not.toContain('TEMP B-TREE');
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
