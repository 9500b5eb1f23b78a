import Database from 'better-sqlite3';
import { sql, type RootOperationNode } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TimePeriod } from '../../domain/buckets.js';
import type { BucketCounters } from '../../domain/counters.js';
import { statisticsMigrations } from './migrations.js';
import { sqlStatisticsReads } from './sql-statistics-reads.js';
import { sqlStatisticsTables } from './sql-statistics-tables.js';
import { testDatabases, type TestDatabase } from '../../../shared/sql/test-databases.js';

type Database = TestDatabase;

const databases = testDatabases([statisticsMigrations]);

const bucket = (
  period: TimePeriod,
  bucketStart: string,
  eventType: string,
  processed: number,
  failed = 0,
  appId = 'shop',
): BucketCounters => ({
  appId,
  period,
  bucketStart,
  eventType,
  counters: { totalEvents: processed + failed, processedEvents: processed, failedEvents: failed, pendingEvents: 0 },
});
const counters = (processed: number, failed = 0) => ({
  totalEvents: processed + failed,
  processedEvents: processed,
  failedEvents: failed,
  pendingEvents: 0,
});

const W1 = '2026-11-16T00:00:00.000Z';
const W2 = '2026-11-23T00:00:00.000Z';
const H1 = '2026-11-24T10:00:00.000Z';
const H2 = '2026-11-24T11:00:00.000Z';

for (const database of databases) {
  describe.skipIf(database.skip)(`the dashboard's statistics reads on ${database.name}`, () => {
    let handle: Database;
    beforeAll(async () => {
      handle = await database.open();
      await sqlStatisticsTables(handle.db).addToBuckets([
        // All time (weekly): a 5, b 3, c 3 (ties with b, after it by name), d 1; another application's a 100.
        bucket('weekly', W1, 'a', 2),
        bucket('weekly', W2, 'a', 2, 1),
        bucket('weekly', W2, 'b', 3),
        bucket('weekly', W1, 'c', 1),
        bucket('weekly', W2, 'c', 2),
        bucket('weekly', W2, 'd', 1),
        bucket('weekly', W2, 'a', 100, 0, 'blog'),
        bucket('hourly', H1, 'a', 2),
        bucket('hourly', H1, 'd', 1),
        bucket('hourly', H2, 'a', 1, 1),
        bucket('hourly', H2, 'b', 3),
        bucket('hourly', H2, 'c', 3),
      ]);
    });
    afterAll(async () => handle?.close());

    it('gives the totals across every event type, how many types, and only the busiest types', async () => {
      const totals = await sqlStatisticsReads(handle.db).eventTypeTotals('shop', 2);
      expect(totals).toEqual({
        totals: counters(11, 1),
        eventTypes: 4,
        busiest: [
          { eventType: 'a', counters: counters(4, 1) },
          { eventType: 'b', counters: counters(3) },
        ],
      });
    });

    it('gives zeros and no types for an application with no statistics', async () => {
      expect(await sqlStatisticsReads(handle.db).eventTypeTotals('nobody', 50)).toEqual({
        totals: counters(0),
        eventTypes: 0,
        busiest: [],
      });
    });

    it('sums each bucket across every event type, from the first bucket asked on', async () => {
      const reads = sqlStatisticsReads(handle.db);
      expect(await reads.bucketTotalsFrom('shop', 'hourly', H1)).toEqual([
        { bucketStart: H1, counters: counters(3) },
        { bucketStart: H2, counters: counters(7, 1) },
      ]);
      expect(await reads.bucketTotalsFrom('shop', 'hourly', H2)).toEqual([{ bucketStart: H2, counters: counters(7, 1) }]);
    });

    it('reads the bucket rows of the event types asked for only', async () => {
      const rows = await sqlStatisticsReads(handle.db).bucketsFrom('shop', 'hourly', H1, ['a', 'c']);
      expect(rows.map((row) => [row.bucketStart, row.eventType, row.counters.totalEvents])).toEqual([
        [H1, 'a', 2],
        [H2, 'a', 2],
        [H2, 'c', 3],
      ]);
      expect(await sqlStatisticsReads(handle.db).bucketsFrom('shop', 'hourly', H1, [])).toEqual([]);
    });

    it('reads the totals and the busiest types in one snapshot, whatever another connection commits between them', async () => {
      // Another connection's commit right after the first read: a subscriber's batch counting 100 more of `a`.
      const file =
        database.name === 'SQLite' ? ((await sql<{ file: string }>`PRAGMA database_list`.execute(handle.db)).rows[0]?.file ?? '') : '';
      const bump = async (by: number) => {
        const text = `UPDATE statistics_type_totals SET total_events = total_events + ${by} WHERE app_id = 'shop' AND event_type = 'a'`;
        if (database.name === 'PostgreSQL') return void (await sql.raw(text).execute(handle.db));
        const other = new Database(file);
        other.exec(text);
        other.close();
      };
      let bumped = false;
      const watched = handle.db.withPlugin({
        transformQuery: ({ node }) => node,
        transformResult: async ({ result }) => {
          if (!bumped) {
            bumped = true;
            await bump(100);
          }
          return result;
        },
      });
      try {
        const totals = await sqlStatisticsReads(watched).eventTypeTotals('shop', 50);
        const ofTypes = totals.busiest.reduce((sum, type) => sum + type.counters.totalEvents, 0);
        expect(ofTypes).toBe(totals.totals.totalEvents);
      } finally {
        await bump(-100);
      }
    });

    it("reads the dashboard's totals, its busiest types and its window from sums, never from every type's buckets", async () => {
      const statements: RootOperationNode[] = [];
      const watched = handle.db.withPlugin({
        transformQuery: ({ node }) => (statements.push(node), node),
        transformResult: async ({ result }) => result,
      });
      const reads = sqlStatisticsReads(watched);
      await reads.eventTypeTotals('shop', 2);
      await reads.bucketTotalsFrom('shop', 'hourly', H1);
      await reads.applications({ limit: 10 });
      const compiled = statements.map((node) => handle.db.getExecutor().compileQuery(node, { queryId: 'watched' } as never));
      expect(compiled.length).toBeGreaterThanOrEqual(5);
      for (const query of compiled) expect(query.sql).not.toMatch(/statistics_buckets\b/);
      if (database.name !== 'SQLite') return;
      // And the busiest types come in the index's order: no sort of every type of the application.
      const busiest = compiled.find((query) => /ORDER BY "total_events" desc/i.test(query.sql));
      if (!busiest) throw new Error('no read of the busiest types');
      const plan = await handle.db.executeQuery<{ detail: string }>({ ...busiest, sql: `EXPLAIN QUERY PLAN ${busiest.sql}` });
      const details = plan.rows.map((row) => row.detail).join('; ');
      expect(details).toMatch(/statistics_type_totals_busiest/);
      expect(details).not.toMatch(/TEMP B-TREE/);
    });
  });
}
