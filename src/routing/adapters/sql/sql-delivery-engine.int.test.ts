import { CompiledQuery, sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../../../shared/errors.js';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import type { Delivery, NewDelivery, ReplayJob } from '../../application/ports.js';
import { closedBreaker } from '../../domain/circuit-breaker.js';
import { routingMigrations } from './migrations.js';
import { sqlBreakerStore } from './sql-breakers.js';
import { sqlDeletedRuleBacklogs } from './sql-deleted-rule-backlogs.js';
import { sqlDeliveryStore } from './sql-deliveries.js';
import { sqlReplayStore } from './sql-replays.js';
import { sqlTallyStore } from './sql-tallies.js';

if (!testPostgresUrl) console.warn('skipping the routing tables on PostgreSQL: TEST_POSTGRES_URL is not set');

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

const databases: Array<[string, () => Promise<Kysely<object>>]> = [
  [
    'sqlite',
    async () => {
      const sqlite = openSqlite(':memory:');
      closers.push(() => sqlite.close());
      await migrateToLatest(sqlite.db, [routingMigrations]);
      return sqlite.db;
    },
  ],
];
if (testPostgresUrl) {
  const url = testPostgresUrl;
  databases.push([
    'postgres',
    async () => {
      const handle = await openTemporarySchema(url, 'intake_routing');
      closers.push(() => handle.close());
      await migratePostgresToLatest(handle, [routingMigrations]);
      return handle.db;
    },
  ]);
}

/** The database as the code under test sees it, noting its reads, which `plans` explains as PostgreSQL runs them with the same parameters. */
function explainingReads(db: Kysely<object>) {
  const reads: Array<{ sql: string; parameters: readonly unknown[] }> = [];
  const recording = db.withPlugin({
    transformQuery: (args) => {
      const compiled = db.getExecutor().compileQuery(args.node, args.queryId);
      if (/^(SELECT|WITH)/.test(compiled.sql)) reads.push(compiled);
      return args.node;
    },
    transformResult: async (args) => args.result,
  });
  const plans = async () => {
    const explained: string[] = [];
    for (const read of reads) {
      const { rows } = await db.executeQuery<{ 'QUERY PLAN': string }>(
        CompiledQuery.raw(`EXPLAIN (ANALYZE, COSTS OFF) ${read.sql}`, [...read.parameters]),
      );
      explained.push(rows.map((row) => row['QUERY PLAN']).join('\n'));
    }
    return explained;
  };
  return { recording, plans };
}

const T0 = '2026-12-02T10:00:00.000Z';
const T1 = '2026-12-02T10:00:01.000Z';
const LATER = '2026-12-02T11:00:00.000Z';
const delivery = (id: string, position: number, orderingKey: string | null, ruleId = 'r1'): NewDelivery => ({
  deliveryId: id,
  ruleId,
  itemId: `item-${id}`,
  appId: 'shop',
  eventType: 'order',
  destinationType: 'webhook',
  body: '{}',
  createdAt: T0,
  orderingKey,
  position,
  receivedAt: T0,
});
const claim = (db: Kysely<object>, now = T1, excludeRules: string[] = []) =>
  sqlDeliveryStore(db)
    .claimDue({ now, leaseUntil: LATER, limit: 10, owner: 'w1', excludeRules })
    .then((rows) => rows.map((d) => d.deliveryId).sort());
const settle = (db: Kysely<object>, deliveryId: string, status: 'pending' | 'succeeded' | 'dead_lettered', nextAttemptAt: string | null) =>
  sqlDeliveryStore(db).record({ deliveryId, status, attempts: 1, nextAttemptAt, lastError: null, at: T1 }, undefined);

/**
 * Two workers claiming ten at once: the second reads its ten, then waits while the first claims the
 * same ten (and `then` does what it likes with them), and leases only after.
 */
async function claimedWhileAnotherReads(db: Kysely<object>, then: (claimed: Delivery[]) => Promise<void>) {
  let release: () => void = () => undefined;
  const firstDone = new Promise<void>((resolve) => (release = resolve));
  let paused = false;
  const slowed = db.withPlugin({
    transformQuery: (args) => args.node,
    transformResult: async (args) => {
      if (!paused && args.result.rows.length === 10) {
        paused = true;
        await firstDone;
      }
      return args.result;
    },
  });
  const request = { now: T1, leaseUntil: LATER, limit: 10, excludeRules: [] };
  const second = sqlDeliveryStore(slowed).claimDue({ ...request, owner: 'w2' });
  while (!paused) await new Promise((resolve) => setTimeout(resolve, 5));
  const first = await sqlDeliveryStore(db).claimDue({ ...request, owner: 'w1' });
  await then(first);
  release();
  return { first, second: await second };
}

describe.each(databases)('routing tables on %s', (_name, open) => {
  it('lets only the first pending delivery of an ordering key go, until it succeeds or is dead-lettered', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([
      delivery('a3', 3, 'k'),
      delivery('a1', 1, 'k'),
      delivery('a2', 2, 'k'),
      delivery('b1', 2, 'other'),
      delivery('u', 5, null),
    ]);
    expect(await claim(db)).toEqual(['a1', 'b1', 'u']);
    expect(await claim(db)).toEqual([]);
    await settle(db, 'a1', 'succeeded', null);
    expect(await claim(db)).toEqual(['a2']);
    await settle(db, 'a2', 'pending', LATER);
    expect(await claim(db)).toEqual([]);
    expect(await store.nextDueAt(T1, [])).toBe(LATER);
    // What is due already is the claim's business: the next due time is a later one.
    await store.schedule([delivery('due', 6, null)]);
    expect(await store.nextDueAt(T1, [])).toBe(LATER);
    expect(await claim(db)).toEqual(['due']);
    await settle(db, 'a2', 'dead_lettered', null);
    expect(await claim(db)).toEqual(['a3']);
  });

  it('holds the deliveries of an open circuit until its probe time, and gives one worker the probe', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    const breakers = sqlBreakerStore(db);
    await store.schedule([delivery('x', 1, null, 'down'), delivery('y', 2, null, 'up')]);
    expect(await store.nextDueAt(T1, ['down', 'up'])).toBeUndefined();
    expect(await claim(db, T1, ['up', 'other'])).toEqual(['x']);
    await store.release(['x'], 'w1');
    const opened = { state: 'open' as const, failures: 3, nextProbeAt: '2026-12-02T10:00:05.000Z', openedAt: T0 };
    expect(await breakers.save('down', opened, T0, 'dest-1')).toBe(true);
    expect(await claim(db)).toEqual(['y']);
    expect(await store.nextDueAt(T1, [])).toBeUndefined();
    expect(await breakers.nextProbeAt(T1)).toBe(opened.nextProbeAt);
    expect(await breakers.nextProbeAt(opened.nextProbeAt)).toBeUndefined();
    expect(await breakers.startProbe('down', { ...opened, state: 'half_open', nextProbeAt: LATER }, T1, 'w1')).toBe(false);

    const probeTime = '2026-12-02T10:00:06.000Z';
    expect(await claim(db, probeTime)).toEqual(['x']);
    const probing = { ...opened, state: 'half_open' as const, nextProbeAt: LATER };
    expect(await breakers.startProbe('down', probing, probeTime, 'w1')).toBe(true);
    expect(await breakers.startProbe('down', probing, probeTime, 'w2')).toBe(false);
    await breakers.releaseProbes('w1', probeTime);
    // No probe is in flight any more: the circuit is open, its probe due at once.
    expect((await breakers.get(['down'])).get('down')).toMatchObject({ state: 'open', nextProbeAt: probeTime });
    expect(await breakers.startProbe('down', probing, probeTime, 'w2')).toBe(true);
    await breakers.releaseProbes('w2', probeTime);
    expect(await breakers.save('down', closedBreaker, probeTime, 'dest-1')).toBe(true);
    expect((await breakers.all()).map((b) => b.breaker.state)).toEqual(['closed']);
  });

  it('keeps a rule’s circuit for the destination it was set for: an outcome of another destination stores nothing', async () => {
    const db = await open();
    const breakers = sqlBreakerStore(db);
    const failing = { state: 'closed' as const, failures: 2, nextProbeAt: null, openedAt: null };
    // A circuit stored before destinations were told apart belongs to whichever destination comes next.
    await db
      .withTables<{ routing_breakers: { rule_id: string; state: string; failures: number; updated_at: string } }>()
      .insertInto('routing_breakers')
      .values({ rule_id: 'r1', state: 'closed', failures: 1, updated_at: T0 })
      .execute();
    expect(await breakers.save('r1', failing, T0, 'old')).toBe(true);
    // The rule's destination changes: a closed circuit for the new one.
    await breakers.reset('r1', 'new', T1);
    expect((await breakers.get(['r1'])).get('r1')).toEqual(closedBreaker);
    // An attempt to the old destination finishes late, failing: it is not the new destination's failure.
    expect(await breakers.save('r1', { ...failing, failures: 1 }, T1, 'old')).toBe(false);
    expect((await breakers.get(['r1'])).get('r1')).toEqual(closedBreaker);
    expect(await breakers.save('r1', { ...failing, failures: 1 }, T1, 'new')).toBe(true);
    expect((await breakers.get(['r1'])).get('r1')).toMatchObject({ failures: 1 });
    // A rule without a circuit yet gets one for the destination of its first outcome.
    expect(await breakers.save('r2', failing, T1, 'first')).toBe(true);
    expect(await breakers.save('r2', closedBreaker, T1, 'other')).toBe(false);
    expect((await breakers.get(['r2'])).get('r2')).toMatchObject({ failures: 2 });
  });

  it('adds attempt tallies per rule and destination, in place, and forgets a rule’s', async () => {
    const db = await open();
    const tallies = sqlTallyStore(db);
    const attempt = (ruleId: string, destination: string, delivered: number, durationMs: number) => ({
      ruleId,
      destination,
      attempts: 1,
      delivered,
      failed: 1 - delivered,
      totalDurationMs: durationMs,
    });
    await tallies.add([attempt('r1', 'a', 1, 10), attempt('r1', 'a', 0, 2.5), attempt('r2', 'b', 1, 1)], T0);
    await tallies.add([attempt('r1', 'a', 1, 7.5), attempt('r1', 'old', 0, 15_000)], T1);
    await tallies.add(
      [{ ruleId: 'r2', destination: 'b', attempts: 3_000_000_000, delivered: 3_000_000_000, failed: 0, totalDurationMs: 0 }],
      T1,
    );
    const read = await tallies.get([
      { ruleId: 'r1', destination: 'a' },
      { ruleId: 'r2', destination: 'b' },
      { ruleId: 'r3', destination: 'c' },
    ]);
    expect([...read.entries()].sort()).toEqual([
      ['r1', { attempts: 3, delivered: 2, failed: 1, totalDurationMs: 20 }],
      ['r2', { attempts: 3_000_000_001, delivered: 3_000_000_001, failed: 0, totalDurationMs: 1 }],
    ]);
    // Another destination of the rule (its former one, say) is not its current tally.
    expect((await tallies.get([{ ruleId: 'r1', destination: 'elsewhere' }])).size).toBe(0);
    await tallies.clear('r1');
    expect((await tallies.get([{ ruleId: 'r1', destination: 'a' }])).size).toBe(0);
    expect((await tallies.get([{ ruleId: 'r2', destination: 'b' }])).get('r2')?.attempts).toBe(3_000_000_001);
  });

  it('serves live deliveries before a replay’s, even when the replay’s are due earlier', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([
      { ...delivery('replayed', 1, null), createdAt: '2026-12-02T09:00:00.000Z', replayJobId: 'j1' },
      delivery('live', 2, null),
    ]);
    const first = await store.claimDue({ now: T1, leaseUntil: LATER, limit: 1, owner: 'w1', excludeRules: [] });
    expect(first.map((d) => d.deliveryId)).toEqual(['live']);
  });

  it.runIf(_name === 'postgres')(
    'leaves to another replica the deliveries it is claiming, rather than wait for them (or deadlock)',
    async () => {
      const db = await open();
      const store = sqlDeliveryStore(db);
      await store.schedule([delivery('a', 1, null), delivery('b', 2, null)]);
      // Another replica's claim, between choosing its rows and committing.
      await db.transaction().execute(async (other) => {
        await sql`SELECT delivery_id FROM routing_deliveries WHERE delivery_id = 'a' FOR UPDATE`.execute(other);
        const claimed = await Promise.race([
          store
            .claimDue({ now: T1, leaseUntil: LATER, limit: 10, owner: 'w2', excludeRules: [] })
            .then((rows) => rows.map((d) => d.deliveryId)),
          new Promise((resolve) => setTimeout(() => resolve('waited for the other replica'), 3000)),
        ]);
        expect(claimed).toEqual(['b']);
      });
    },
  );

  it.runIf(_name === 'postgres')(
    'counts outcomes recorded at once on one circuit each after the other (both read the same count, and one was lost)',
    async () => {
      const db = await open();
      await sqlBreakerStore(db).save('r1', { ...closedBreaker, failures: 1 }, T0, 'dest');
      const countFailure = (ruleId = 'r1') =>
        db.transaction().execute(async (trx) => {
          const breakers = sqlBreakerStore(trx);
          const current = (await breakers.getForChange(ruleId, 'dest', T1)) ?? closedBreaker;
          // As attempts finishing together: the other reads before this one writes, unless it must wait.
          await new Promise((resolve) => setTimeout(resolve, 200));
          await breakers.save(ruleId, { ...current, failures: current.failures + 1 }, T1, 'dest');
        });
      await Promise.all([countFailure(), countFailure()]);
      expect((await sqlBreakerStore(db).get(['r1'])).get('r1')?.failures).toBe(3);
      // A rule that never failed has no circuit row yet: its first failures at once count one after the other too.
      await Promise.all([countFailure('r2'), countFailure('r2'), countFailure('r2')]);
      expect((await sqlBreakerStore(db).get(['r2'])).get('r2')?.failures).toBe(3);
    },
  );

  it('claims a retry due now before the fresh backlog due earlier, and answers it first (it waited behind the whole backlog)', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([delivery('fresh-1', 1, null), delivery('fresh-2', 2, null), delivery('retried', 0, null)]);
    await settle(db, 'retried', 'pending', '2026-12-02T10:00:00.900Z');
    const first = await store.claimDue({ now: T1, leaseUntil: LATER, limit: 1, owner: 'w1', excludeRules: [] });
    expect(first.map((d) => d.deliveryId)).toEqual(['retried']);
    await store.release(['retried'], 'w1');
    const all = await store.claimDue({ now: T1, leaseUntil: LATER, limit: 10, owner: 'w1', excludeRules: [] });
    expect(all.map((d) => d.deliveryId)).toEqual(['retried', 'fresh-1', 'fresh-2']);
  });

  it('fills what live deliveries leave of a claim with a replay’s, in order', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([
      delivery('live', 9, null),
      ...[1, 2, 3, 4].map((position) => ({ ...delivery(`replayed-${position}`, position, null), replayJobId: 'j1' })),
    ]);
    const claimed = await store.claimDue({ now: T1, leaseUntil: LATER, limit: 3, owner: 'w1', excludeRules: [] });
    expect(claimed.map((d) => d.deliveryId)).toEqual(['live', 'replayed-1', 'replayed-2']);
  });

  it.runIf(_name === 'postgres')(
    'claims past a held backlog without reading it: a bounded read in due order, then each other rule’s first due deliveries',
    async () => {
      const db = await open();
      // 3,000 deliveries of a rule held back, due before the 40 of four others.
      const held = Array.from({ length: 3000 }, (_, i) => delivery(`h${i}`, i, null, 'held'));
      const others = Array.from({ length: 40 }, (_, i) => delivery(`d${i}`, 3000 + i, null, `r${i % 4}`));
      await sqlDeliveryStore(db).schedule([...held, ...others]);
      await sql`ANALYZE routing_deliveries`.execute(db);
      const { recording, plans } = explainingReads(db);
      const claimed = await sqlDeliveryStore(recording).claimDue({
        now: T1,
        leaseUntil: LATER,
        limit: 8,
        owner: 'w1',
        excludeRules: ['held'],
      });
      expect(claimed.map((d) => d.deliveryId)).toEqual(['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']);
      const explained = (await plans()).join('\n');
      expect(explained).toMatch(
        /Index Scan using routing_deliveries_rule_live on routing_deliveries d\s+\(actual[^)]*\)\s+Index Cond: \(\(rule_id = r\.rule_id\)/,
      );
      // Walked in due order alone, the claim read and passed over all 3,000 held ones.
      const rowsRead = [...explained.matchAll(/rows=(\d+) loops=(\d+)|Rows Removed by Filter: (\d+)/g)].map((m) =>
        m[3] !== undefined ? Number(m[3]) : Number(m[1]) * Number(m[2]),
      );
      expect(Math.max(...rowsRead)).toBeLessThanOrEqual(512);
    },
  );

  it.runIf(_name === 'postgres')(
    'finds the head of each ordering key through its index whatever the statistics say, never by reading the backlog once a row',
    async () => {
      const db = await open();
      // Statistics of a table whose deliveries went out, as a deployment has them before a backlog builds.
      const delivered = Array.from({ length: 2000 }, (_, i) => delivery(`s${i}`, -2000 + i, `k${i % 5}`, 'ordered'));
      await sqlDeliveryStore(db).schedule(delivered);
      await sql`UPDATE routing_deliveries SET status = 'succeeded'`.execute(db);
      await sqlDeliveryStore(db).schedule([delivery('first', 0, 'k0', 'ordered')]);
      await sql`ANALYZE routing_deliveries`.execute(db);
      const backlog = Array.from({ length: 3000 }, (_, i) => delivery(`o${i}`, i + 1, `k${i % 5}`, 'ordered'));
      const others = Array.from({ length: 3 }, (_, i) => delivery(`u${i}`, 3001 + i, null, 'unordered'));
      await sqlDeliveryStore(db).schedule([...backlog, ...others]);
      const { recording, plans } = explainingReads(db);
      const claimed = await sqlDeliveryStore(recording).claimDue({ now: T1, leaseUntil: LATER, limit: 20, owner: 'w1', excludeRules: [] });
      // The head of each key (the first one's, then the four others'), and every unordered one.
      expect(claimed.map((d) => d.deliveryId).sort()).toEqual(['first', 'o1', 'o2', 'o3', 'o4', 'u0', 'u1', 'u2']);
      const explained = await plans();
      // An anti-join on the rule alone compared each delivery with the whole backlog: 3,000 × 3,000 rows.
      for (const plan of explained) expect(plan).not.toMatch(/Anti Join[\s\S]*routing_deliveries e\b/);
      const removed = [...explained.join('\n').matchAll(/Rows Removed by (?:Join )?Filter: (\d+)/g)].map((m) => Number(m[1]));
      expect(Math.max(0, ...removed)).toBeLessThanOrEqual(10_000);
    },
  );

  it.runIf(_name === 'postgres')(
    'leases what it chose with its lock taken once, whatever the statistics say, never once for each pending delivery',
    async () => {
      const db = await open();
      // Statistics taken while almost nothing was pending, then a burst of 3,000 to one rule.
      const delivered = Array.from({ length: 2000 }, (_, i) => delivery(`s${i}`, -2000 + i, null, 'hook'));
      await sqlDeliveryStore(db).schedule(delivered);
      await sql`UPDATE routing_deliveries SET status = 'succeeded'`.execute(db);
      await sql`ANALYZE routing_deliveries`.execute(db);
      await sqlDeliveryStore(db).schedule(Array.from({ length: 3000 }, (_, i) => delivery(`b${i}`, i + 1, null, 'hook')));
      const updates: Array<{ sql: string; parameters: readonly unknown[] }> = [];
      const recording = db.withPlugin({
        transformQuery: (args) => {
          const compiled = db.getExecutor().compileQuery(args.node, args.queryId);
          if (/^update/i.test(compiled.sql) && compiled.sql.includes('lease_owner')) updates.push(compiled);
          return args.node;
        },
        transformResult: async (args) => args.result,
      });
      const claimed = await sqlDeliveryStore(recording).claimDue({ now: T1, leaseUntil: LATER, limit: 20, owner: 'w1', excludeRules: [] });
      expect(claimed).toHaveLength(20);
      expect(updates.length).toBeGreaterThan(0);
      for (const update of updates) {
        const { rows } = await db.executeQuery<{ 'QUERY PLAN': string }>(
          CompiledQuery.raw(`EXPLAIN ${update.sql}`, [...update.parameters]),
        );
        const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
        // A semi-join re-ran the locking read for every pending delivery: minutes with 10,000 waiting.
        expect(plan).not.toMatch(/Semi Join/);
        expect(plan).toMatch(/InitPlan[\s\S]*LockRows/);
      }
    },
  );

  it('past a held backlog, takes from each other rule at most its share of the worker, earliest rules first', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    const held = Array.from({ length: 600 }, (_, i) => delivery(`h${i}`, i, null, 'held'));
    const r1 = Array.from({ length: 10 }, (_, i) => delivery(`a${i}`, 1000 + i, null, 'r1'));
    const r2 = Array.from({ length: 10 }, (_, i) => delivery(`b${i}`, 2000 + i, null, 'r2'));
    await store.schedule([...held, ...r2, ...r1]);
    const claimed = await store.claimDue({ now: T1, leaseUntil: LATER, limit: 8, owner: 'w1', excludeRules: ['held'], perRule: 2 });
    expect(claimed.map((d) => d.deliveryId)).toEqual(['a0', 'a1', 'b0', 'b1']);
  });

  // Replicas share a database on PostgreSQL only; SQLite's one connection serves one worker.
  it.runIf(_name === 'postgres')(
    'reads on past what another worker leased between its read and its lease, rather than come back empty',
    async () => {
      const db = await open();
      await sqlDeliveryStore(db).schedule(Array.from({ length: 30 }, (_, i) => delivery(`d${i}`, i, null, `r${i % 3}`)));
      // The second worker reads, then waits while the first claims the same ten, then leases.
      const { first, second } = await claimedWhileAnotherReads(db, async () => undefined);
      const ids = [...first, ...second].map((d) => d.deliveryId);
      expect(first).toHaveLength(10);
      expect(ids).toHaveLength(20);
      expect(new Set(ids).size).toBe(20);
    },
  );

  it.runIf(_name === 'postgres')('never leases what another worker leased, sent and recorded between its read and its lease', async () => {
    const db = await open();
    await sqlDeliveryStore(db).schedule(Array.from({ length: 10 }, (_, i) => delivery(`d${i}`, i, null, `r${i % 3}`)));
    // The first worker claims the same ten, sends them and records them: their leases are cleared.
    const { first, second } = await claimedWhileAnotherReads(db, async (claimed) => {
      for (const d of claimed) await settle(db, d.deliveryId, 'succeeded', null);
    });
    expect(first).toHaveLength(10);
    // Leased again by id alone, each was sent a second time: two replicas doubled 0.5–2.4 % of webhooks.
    expect(second).toEqual([]);
  });

  it('answers the claimed deliveries in the order it chose them: live retries, other live ones, a replay’s; each by due time and log position', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([
      { ...delivery('a-retried', 1, null), createdAt: '2026-12-02T09:00:00.000Z' },
      { ...delivery('b-replayed', 0, null), createdAt: '2026-12-02T09:00:00.000Z', replayJobId: 'j1' },
      delivery('c-later', 3, null),
      delivery('d-sooner', 2, null),
    ]);
    await settle(db, 'a-retried', 'pending', '2026-12-02T10:00:00.500Z');
    const claimed = await store.claimDue({ now: T1, leaseUntil: LATER, limit: 10, owner: 'w1', excludeRules: [] });
    expect(claimed.map((d) => d.deliveryId)).toEqual(['a-retried', 'd-sooner', 'c-later', 'b-replayed']);
  });

  it('takes back an attempt begun but never sent, leaving one that was recorded', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([delivery('a', 1, null), delivery('b', 2, null)]);
    for (const deliveryId of ['a', 'b']) expect(await store.beginAttempt({ deliveryId, attempt: 1, at: T1, worker: 'w1' })).toBe(true);
    // Begun again by its own worker, it is; another's in flight is left as it was (that worker stopped).
    expect(await store.beginAttempt({ deliveryId: 'b', attempt: 1, at: T1, worker: 'w1' })).toBe(true);
    expect(await store.beginAttempt({ deliveryId: 'b', attempt: 1, at: LATER, worker: 'w2' })).toBe(false);
    await store.withdrawAttempt({ deliveryId: 'a', attempt: 1 });
    expect(await store.inFlightAttempts('w1')).toEqual([{ deliveryId: 'b', attempt: 1 }]);
    expect(await store.attemptsOf('a')).toEqual([]);
  });

  it('keeps, in the attempt log, when an attempt begun before it was sent went out, once its outcome is recorded', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([delivery('a', 1, null)]);
    await store.beginAttempt({ deliveryId: 'a', attempt: 1, at: T1, worker: 'w1' });
    await store.record(
      { deliveryId: 'a', status: 'succeeded', attempts: 1, nextAttemptAt: null, lastError: null, at: LATER },
      { deliveryId: 'a', attempt: 1, at: LATER, outcome: 'delivered', statusCode: 200, error: null, durationMs: 1500 },
    );
    expect(await store.attemptsOf('a')).toEqual([expect.objectContaining({ attempt: 1, at: T1, outcome: 'delivered', durationMs: 1500 })]);
  });

  it('gives back leases, and finds the attempts a worker left in flight', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([delivery('a', 1, null), delivery('b', 2, null)]);
    expect(await claim(db)).toEqual(['a', 'b']);
    await store.beginAttempt({ deliveryId: 'a', attempt: 1, at: T1, worker: 'w1' });
    await store.release(['b'], 'w1');
    expect(await claim(db)).toEqual(['b']);
    expect(await store.inFlightAttempts('w1')).toEqual([{ deliveryId: 'a', attempt: 1 }]);
    expect(await store.inFlightAttempts('w2')).toEqual([]);
    await store.releaseOwned('w1');
    expect(await claim(db)).toEqual(['a', 'b']);
  });

  it('keeps one running replay per rule, and a window of the rule’s own deliveries in log order', async () => {
    const db = await open();
    const replays = sqlReplayStore(db);
    const job: ReplayJob = {
      jobId: 'j1',
      ruleId: 'r1',
      from: T0,
      to: T1,
      reevaluate: false,
      freshIds: false,
      status: 'running',
      cursor: { position: 0, deliveryId: '' },
      scanned: 0,
      scheduled: 0,
      total: 2,
      error: null,
      createdAt: T0,
      updatedAt: T0,
      finishedAt: null,
    };
    await replays.create(job);
    await expect(replays.create({ ...job, jobId: 'j2' })).rejects.toBeInstanceOf(ConflictError);
    expect(await replays.finish('j1', 'cancelled', T1)).toBe(true);
    expect(await replays.finish('j1', 'completed', T1)).toBe(false);
    await replays.create({ ...job, jobId: 'j2' });
    expect((await replays.running()).map((j) => j.jobId)).toEqual(['j2']);
    // Two replicas step the job from the same cursor: the second finds it moved on.
    const from = { position: 0, deliveryId: '' };
    expect(await replays.claimStep('j2', from, T1)).toBe(true);
    await replays.advance('j2', { cursor: { position: 7, deliveryId: '' }, scanned: 3, scheduled: 3, at: T1 });
    expect(await replays.claimStep('j2', from, T1)).toBe(false);
    expect(await replays.claimStep('j2', { position: 7, deliveryId: '' }, T1)).toBe(true);
    expect(await replays.claimStep('j1', from, T1)).toBe(false);

    const store = sqlDeliveryStore(db);
    await store.schedule([
      delivery('w2', 2, null),
      delivery('w1', 1, null),
      { ...delivery('late', 3, null), receivedAt: LATER },
      { ...delivery('copy', 1, null), replayJobId: 'j2' },
    ]);
    expect(await store.countWindow('r1', { from: T0, to: T1 })).toBe(2);
    const page = await store.window('r1', { from: T0, to: T1 }, { position: 0, deliveryId: '' }, 1);
    expect(page.map((d) => d.deliveryId)).toEqual(['w1']);
    const rest = await store.window('r1', { from: T0, to: T1 }, { position: 1, deliveryId: 'w1' }, 10);
    expect(rest.map((d) => d.deliveryId)).toEqual(['w2']);
    expect(await store.countByJob('j2')).toEqual({ pending: 1, succeeded: 0, dead_lettered: 0, cancelled: 0 });
    expect(await store.cancelJob('j2', T1)).toBe(1);
    expect((await store.countByJob('j2')).cancelled).toBe(1);
  });

  it('holds one delivery per item and rule whatever its id, besides replays, and gives the id each receiver saw', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    const first = { ...delivery('msg_old_form', 1, null), itemId: 'item-1' };
    expect(await store.schedule([first, { ...first, deliveryId: 'msg_other_rule', ruleId: 'r2' }])).toEqual([
      'msg_old_form',
      'msg_other_rule',
    ]);
    // The same item and rule again, under a new form of id: refused, and the rest of the batch still goes in.
    const again = { ...first, deliveryId: 'msg_new_form' };
    const next = { ...delivery('msg_next', 2, null), itemId: 'item-2' };
    expect(await store.schedule([again, next])).toEqual(['msg_next']);
    const replayed = { ...first, deliveryId: 'rpl_1', replayJobId: 'j1', webhookId: 'msg_old_form' };
    expect(await store.schedule([replayed, { ...replayed, deliveryId: 'rpl_2', replayJobId: 'j2' }])).toEqual(['rpl_1', 'rpl_2']);

    const ids = await store.webhookIdsOf('r1', ['item-1', 'item-2', 'item-3']);
    expect([...ids].sort()).toEqual([
      ['item-1', 'msg_old_form'],
      ['item-2', 'msg_next'],
    ]);
    expect((await store.list({ itemId: 'item-1', ruleId: 'r1' }, { limit: 10 })).items).toHaveLength(3);
  });

  it('lists deliveries without their bodies, which only a single delivery and its attempts carry', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    const big = { ...delivery('msg_big', 1, null), body: JSON.stringify({ note: 'x'.repeat(100_000) }) };
    await store.schedule([big]);
    const [listed] = (await store.list({}, { limit: 10 })).items;
    expect(listed).toMatchObject({ deliveryId: 'msg_big', status: 'pending', attempts: 0 });
    expect(listed).not.toHaveProperty('body');
    expect((await store.get('msg_big'))?.body).toBe(big.body);
  });

  it('requeues only a dead letter, due at once, remembering the attempts made before so the schedule starts over after them', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    await store.schedule([delivery('dead', 1, null), delivery('live', 2, null)]);
    expect(await store.get('dead')).toMatchObject({ earlierAttempts: 0 });
    await store.record(
      { deliveryId: 'dead', status: 'dead_lettered', attempts: 3, nextAttemptAt: null, lastError: 'HTTP 500', at: T1 },
      undefined,
    );
    expect(await store.requeue('live', LATER)).toBeUndefined();

    expect(await store.requeue('dead', LATER)).toMatchObject({
      status: 'pending',
      attempts: 3,
      earlierAttempts: 3,
      nextAttemptAt: LATER,
      lastError: null,
    });
    // Read back as any worker after a restart would: the count is in the row.
    expect(await store.get('dead')).toMatchObject({ attempts: 3, earlierAttempts: 3 });
    await store.record(
      { deliveryId: 'dead', status: 'pending', attempts: 4, nextAttemptAt: LATER, lastError: 'HTTP 500', at: LATER },
      undefined,
    );
    expect(await store.get('dead')).toMatchObject({ attempts: 4, earlierAttempts: 3 });
    expect(await store.get('live')).toMatchObject({ earlierAttempts: 0 });
  });

  it('dead-letters a deleted rule’s waiting deliveries a slice at a time, and claims none of a rule with some left', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    const backlogs = sqlDeletedRuleBacklogs(db);
    await store.schedule([...['a', 'b', 'c', 'd', 'e'].map((id, i) => delivery(id, i + 1, null, 'gone')), delivery('z', 9, null, 'kept')]);
    // One being attempted is left to its attempt.
    expect(await claim(db, T1, ['kept'])).toEqual(['a', 'b', 'c', 'd', 'e']);
    await store.release(['b', 'c', 'd', 'e'], 'w1');
    await backlogs.add({ ruleId: 'gone', deletedAt: T1 });
    expect(await backlogs.list()).toEqual([{ ruleId: 'gone', deletedAt: T1 }]);
    expect(await claim(db)).toEqual(['z']);
    await store.release(['z'], 'w1');
    expect(await store.nextDueAt(T0, ['kept'])).toBeUndefined();

    const first = await store.deadLetterWaiting('gone', T1, 'the rule was deleted', 3);
    expect(first).toHaveLength(3);
    expect(first.every((d) => d.status === 'dead_lettered' && d.lastError === 'the rule was deleted')).toBe(true);
    const rest = await store.deadLetterWaiting('gone', T1, 'the rule was deleted', 3);
    expect([...first, ...rest].map((d) => d.deliveryId).sort()).toEqual(['b', 'c', 'd', 'e']);
    expect(await store.deadLetterWaiting('gone', T1, 'the rule was deleted', 3)).toEqual([]);
    expect(await store.get('a')).toMatchObject({ status: 'pending' });
    expect(await store.get('z')).toMatchObject({ status: 'pending' });

    await backlogs.remove('gone');
    expect(await backlogs.list()).toEqual([]);
  });

  it('stores no attempt row for a delivery made as it was scheduled', async () => {
    const db = await open();
    const store = sqlDeliveryStore(db);
    const made = { ...delivery('msg_db', 1, null), destinationType: 'database', deliveredAt: T1 };
    const sent = delivery('msg_hook', 2, null);
    await store.schedule([made, sent]);
    const rows = await db.withTables<{ routing_attempts: { delivery_id: string } }>().selectFrom('routing_attempts').selectAll().execute();
    expect(rows).toEqual([]);
    expect(await store.get('msg_db')).toMatchObject({ status: 'succeeded', attempts: 1, updatedAt: T1 });
    expect(await store.attemptsOf('msg_db')).toEqual([]);
  });
});
