import { sql, type Kysely } from 'kysely';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { fixedClock } from '../../../shared/clock.js';
import type { NewDelivery } from '../../application/ports.js';
import { deliveryPruner } from '../../application/delivery-pruner.js';
import { routingTestDatabases } from './routing-test-databases.js';
import { sqlDeliveryStore } from './sql-deliveries.js';
import { oldestCancelled, oldestSucceeded, sqlDeliveryHistory } from './sql-delivery-history.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

const NOW = '2026-12-02T10:00:00.000Z';
const OLD = '2026-10-01T10:00:00.000Z';
const RECENT = '2026-12-01T10:00:00.000Z';
const THIRTY_DAYS = 30 * 24 * 3600_000;

const delivery = (id: string, position: number, createdAt = OLD, deliveredAt?: string): NewDelivery => ({
  deliveryId: id,
  ruleId: 'r1',
  itemId: `item-${id}`,
  appId: 'shop',
  eventType: 'order',
  destinationType: deliveredAt ? 'database' : 'webhook',
  body: '{}',
  createdAt,
  orderingKey: null,
  position,
  receivedAt: createdAt,
  ...(deliveredAt ? { deliveredAt } : {}),
});

/** A sent delivery's end: its status as of `at`, with the attempt that brought it there. */
async function settle(db: Kysely<object>, id: string, status: 'pending' | 'succeeded' | 'dead_lettered', at: string) {
  await sqlDeliveryStore(db).record(
    { deliveryId: id, status, attempts: 1, nextAttemptAt: status === 'pending' ? NOW : null, lastError: null, at },
    {
      deliveryId: id,
      attempt: 1,
      at,
      outcome: status === 'succeeded' ? 'delivered' : 'retry',
      statusCode: 200,
      error: null,
      durationMs: 5,
    },
  );
}

/**
 * Five webhook deliveries and a database one that succeeded long ago; one that succeeded recently, and
 * one made long ago that succeeded recently (a dead letter replayed); a dead letter, a pending and a
 * retrying delivery, all old.
 */
async function history(db: Kysely<object>) {
  const store = sqlDeliveryStore(db);
  await store.schedule([
    ...[1, 2, 3, 4, 5].map((n) => delivery(`old-${n}`, n)),
    delivery('old-table', 6, OLD, OLD),
    delivery('recent', 7, RECENT),
    delivery('dead', 8),
    delivery('pending', 9),
    delivery('retrying', 10),
    delivery('replayed-lately', 11),
  ]);
  for (const n of [1, 2, 3, 4, 5]) await settle(db, `old-${n}`, 'succeeded', OLD);
  await settle(db, 'recent', 'succeeded', RECENT);
  await settle(db, 'dead', 'dead_lettered', OLD);
  await settle(db, 'retrying', 'pending', OLD);
  await settle(db, 'replayed-lately', 'succeeded', RECENT);
  const left = async () => {
    const { rows } = await sql<{ delivery_id: string }>`SELECT delivery_id FROM routing_deliveries ORDER BY delivery_id`.execute(db);
    return rows.map((row) => row.delivery_id);
  };
  const attempted = async () => {
    const { rows } = await sql<{ delivery_id: string }>`SELECT DISTINCT delivery_id FROM routing_attempts ORDER BY delivery_id`.execute(db);
    return rows.map((row) => row.delivery_id);
  };
  return { left, attempted };
}

const KEPT = ['dead', 'pending', 'recent', 'replayed-lately', 'retrying'];

const prunerOf = (db: Kysely<object>, retentionMs: number, slice?: number) =>
  deliveryPruner({
    db,
    clock: fixedClock(NOW),
    logger: pino({ level: 'silent' }),
    history: sqlDeliveryHistory,
    retentionMs,
    ...(slice === undefined ? {} : { slice }),
  });

for (const database of routingTestDatabases) {
  describe.runIf(database.available)(`delivery retention on ${database.name}`, () => {
    const open = async () => {
      const { db, close } = await database.open();
      closers.push(close);
      return db;
    };

    it('deletes succeeded deliveries past the retention with their attempts, in slices, and keeps dead letters, pending and recent ones', async () => {
      const db = await open();
      const { left, attempted } = await history(db);
      expect(await sqlDeliveryHistory(db).forgottenThrough()).toBe(0);
      // One slice takes no more than its limit, oldest first.
      expect(await sqlDeliveryHistory(db).forgetBefore('2026-11-02T10:00:00.000Z', 2)).toBe(2);
      // Six in all, more than one slice holds: the pass goes on until a slice comes up short.
      expect(await prunerOf(db, THIRTY_DAYS, 2).prune()).toBe(4);
      expect(await left()).toEqual(KEPT);
      expect(await attempted()).toEqual(['dead', 'recent', 'replayed-lately', 'retrying']);
      expect(await sqlDeliveryStore(db).get('old-1')).toBeUndefined();
      expect(await sqlDeliveryStore(db).attemptsOf('old-1')).toEqual([]);
      // The events routed up to the last position deleted are known as routed.
      expect(await sqlDeliveryHistory(db).forgottenThrough()).toBe(6);
      expect(await prunerOf(db, THIRTY_DAYS, 2).prune()).toBe(0);

      // A delivery of an earlier event deleted later leaves the highest position as it was.
      await sqlDeliveryStore(db).schedule([{ ...delivery('late', 3, OLD, OLD), itemId: 'item-late' }]);
      expect(await prunerOf(db, THIRTY_DAYS).prune()).toBe(1);
      expect(await sqlDeliveryHistory(db).forgottenThrough()).toBe(6);

      // The lists and the dead letters read on over the gaps.
      const listed = await sqlDeliveryStore(db).list({}, { limit: 100 });
      expect(listed.items.map((d) => d.deliveryId).sort()).toEqual(KEPT);
      expect((await sqlDeliveryStore(db).list({ status: 'dead_lettered' }, { limit: 10 })).items.map((d) => d.deliveryId)).toEqual([
        'dead',
      ]);
    });

    it('keeps everything with a retention of 0, and does not start', async () => {
      const db = await open();
      const { left } = await history(db);
      const pruner = prunerOf(db, 0, 2);
      expect(await pruner.prune()).toBe(0);
      pruner.start();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await pruner.stop();
      expect(await left()).toHaveLength(11);
    });

    it('runs a pass a second after it starts', async () => {
      const db = await open();
      const { left } = await history(db);
      const pruner = prunerOf(db, THIRTY_DAYS);
      pruner.start();
      try {
        for (const deadline = performance.now() + 5000; (await left()).length > KEPT.length && performance.now() < deadline;)
          await new Promise((resolve) => setTimeout(resolve, 20));
        expect(await left()).toEqual(KEPT);
      } finally {
        await pruner.stop();
      }
    });

    it('deletes the deliveries of a replay job cancelled past the retention, once no succeeded one is left, moving no mark', async () => {
      const db = await open();
      const { left } = await history(db);
      const store = sqlDeliveryStore(db);
      await store.schedule([
        { ...delivery('rpl-old', 20), replayJobId: 'job-old' },
        { ...delivery('rpl-recent', 21), replayJobId: 'job-recent' },
      ]);
      expect(await store.cancelJob('job-old', OLD)).toBe(1);
      expect(await store.cancelJob('job-recent', RECENT)).toBe(1);
      // Six succeeded ones past the retention, then the cancelled one in what is left of the second
      // slice: that slice comes up short and ends the pass.
      expect(await prunerOf(db, THIRTY_DAYS, 4).prune()).toBe(7);
      expect(await left()).toEqual([...KEPT, 'rpl-recent'].sort());
      expect(await sqlDeliveryHistory(db).forgottenThrough()).toBe(6);
    });

    for (const [kind, statement, index] of [
      ['succeeded', oldestSucceeded, 'routing_deliveries_succeeded'],
      ['cancelled', oldestCancelled, 'routing_deliveries_cancelled'],
    ] as const) {
      it(`finds the oldest ${kind} deliveries through their own index, not the whole table`, async () => {
        const db = await open();
        const oldest = statement(NOW, 1000, database.name === 'PostgreSQL');
        if (database.name === 'SQLite') {
          const { rows } = await sql<{ detail: string }>`EXPLAIN QUERY PLAN ${oldest}`.execute(db);
          const plan = rows.map((row) => row.detail).join('\n');
          expect(plan).toContain(`USING INDEX ${index} (updated_at<?)`);
          expect(plan).not.toContain('TEMP B-TREE');
          return;
        }
        // On an empty table a sequential scan costs nothing: the planner is asked whether the index serves at all.
        const plan = await db.transaction().execute(async (trx) => {
          await sql`SET LOCAL enable_seqscan = off`.execute(trx);
          const { rows } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN ${oldest}`.execute(trx);
          return rows.map((row) => row['QUERY PLAN']).join('\n');
        });
        expect(plan).toMatch(new RegExp(`Index Scan using ${index}`));
        expect(plan).not.toMatch(/Sort/);
      });
    }
  });
}
