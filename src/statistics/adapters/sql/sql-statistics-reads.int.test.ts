import { CompiledQuery, type Kysely, type KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../../shared/clock.js';
import { getDashboard, MAX_DASHBOARD_EVENT_TYPES } from '../../application/queries.js';
import type { TimePeriod } from '../../domain/buckets.js';
import type { BucketCounters } from '../../domain/counters.js';
import { statisticsMigrations } from './migrations.js';
import { sqlStatisticsReads } from './sql-statistics-reads.js';
import { sqlStatisticsTables } from './sql-statistics-tables.js';
import { toBucketRow, type Tables } from './tables.js';
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
  });
}

/** 120 types in the week of W2 and the hour H2, their all-time counts 1 to 8 (ties at the 50th place), some failed. */
const manyTypes = Array.from({ length: 120 }, (_, i) => ({
  eventType: `t${String(i).padStart(3, '0')}`,
  processed: 1 + ((i * 7) % 8),
  failed: i % 3 === 0 ? 1 : 0,
}));
const manyTypeBuckets = (appId: string) =>
  manyTypes.flatMap(({ eventType, processed, failed }) => [
    bucket('weekly', W2, eventType, processed, failed, appId),
    bucket('hourly', H2, eventType, processed, failed, appId),
  ]);

/** What the dashboard must say, from the rows themselves: the busiest by count then name, in order of name, and the rest summed. */
function expectedBreakdown() {
  const byCount = [...manyTypes].sort((a, b) => b.processed + b.failed - (a.processed + a.failed) || (a.eventType < b.eventType ? -1 : 1));
  const busiest = byCount.slice(0, MAX_DASHBOARD_EVENT_TYPES);
  const rest = byCount.slice(MAX_DASHBOARD_EVENT_TYPES);
  const sum = (types: typeof manyTypes) => ({
    totalEvents: types.reduce((n, t) => n + t.processed + t.failed, 0),
    processedEvents: types.reduce((n, t) => n + t.processed, 0),
    failedEvents: types.reduce((n, t) => n + t.failed, 0),
    pendingEvents: 0,
  });
  return {
    byEventType: busiest
      .map((t) => ({ eventType: t.eventType, counters: counters(t.processed, t.failed) }))
      .sort((a, b) => (a.eventType < b.eventType ? -1 : 1)),
    otherEventTypes: sum(rest),
    totals: sum(manyTypes),
  };
}

const clock: Clock = { now: () => new Date('2026-11-24T11:30:00.000Z') } as Clock;

for (const database of databases) {
  describe.skipIf(database.skip)(
    `the dashboard of an application with more than ${MAX_DASHBOARD_EVENT_TYPES} event types on ${database.name}`,
    () => {
      let handle: Database;
      beforeAll(async () => {
        handle = await database.open();
        const tables = sqlStatisticsTables(handle.db);
        // In several batches, as the subscriber writes them: a type counted in two batches is one type.
        const rows = manyTypeBuckets('shop');
        for (let i = 0; i < rows.length; i += 37) {
          const piece = rows.slice(i, i + 37);
          await tables.addToBuckets(
            piece.map((row) => ({ ...row, counters: { ...row.counters, totalEvents: 0, processedEvents: 0, failedEvents: 0 } })),
          );
          await tables.addToBuckets(piece);
        }
        await tables.addToBuckets(manyTypeBuckets('blog').slice(0, 10));
      });
      afterAll(async () => handle?.close());

      it(`names the ${MAX_DASHBOARD_EVENT_TYPES} busiest (ties to the first by name) in order of name, and sums the others`, async () => {
        const dashboard = await getDashboard(sqlStatisticsReads(handle.db), clock)('shop', 'hourly');
        const expected = expectedBreakdown();
        expect(dashboard.eventTypes).toBe(120);
        expect(dashboard.totals).toEqual(expected.totals);
        expect(dashboard.byEventType).toEqual(expected.byEventType);
        expect(dashboard.otherEventTypes).toEqual(expected.otherEventTypes);
        const hour = dashboard.buckets.find((b) => b.bucketStart === H2);
        expect(hour?.counters).toEqual(expected.totals);
        expect(Object.keys(hour?.byEventType ?? {})).toHaveLength(MAX_DASHBOARD_EVENT_TYPES);
      });

      it('lists the applications with their all-time totals', async () => {
        const page = await sqlStatisticsReads(handle.db).applications({ limit: 10 });
        expect(page.items.map((app) => [app.appId, app.counters.totalEvents])).toEqual([
          ['blog', manyTypes.slice(0, 5).reduce((n, t) => n + t.processed + t.failed, 0)],
          ['shop', expectedBreakdown().totals.totalEvents],
        ]);
      });

      it('keeps the same answer when an application is recounted (its rows replaced)', async () => {
        const before = await getDashboard(sqlStatisticsReads(handle.db), clock)('shop', 'hourly');
        await sqlStatisticsTables(handle.db).replaceApplication('shop', [], manyTypeBuckets('shop'));
        expect(await getDashboard(sqlStatisticsReads(handle.db), clock)('shop', 'hourly')).toEqual(before);
      });

      it('builds the roll-ups from the buckets counted before they existed (migration 0003)', async () => {
        const { '0003_rollups': rollups, ...before } = statisticsMigrations.migrations;
        const kind = testDatabases([{ ...statisticsMigrations, migrations: before }]).find((k) => k.name === database.name);
        const older = await kind?.open();
        if (!older || !rollups) throw new Error('no database to migrate');
        try {
          await older.db.withTables<Tables>().insertInto('statistics_buckets').values(manyTypeBuckets('shop').map(toBucketRow)).execute();
          await rollups.up(older.db);
          expect(await getDashboard(sqlStatisticsReads(older.db), clock)('shop', 'hourly')).toEqual(
            await getDashboard(sqlStatisticsReads(handle.db), clock)('shop', 'hourly'),
          );
        } finally {
          await older.close();
        }
      });

      // SQLite runs the dashboard's reads on the thread serving HTTP: no statement may go through every
      // type's rows (62,500 types held it for about 100 ms). PostgreSQL plans tiny tables with scans anyway.
      it.skipIf(database.name !== 'SQLite')(
        'reads a few rows by index, whatever the number of types: no scan, no sort, no sum',
        async () => {
          const issued: CompiledQuery[] = [];
          const capture: KyselyPlugin = {
            transformQuery: (args) => {
              issued.push(handle.db.getExecutor().compileQuery(args.node, args.queryId));
              return args.node;
            },
            transformResult: async (args) => args.result,
          };
          await getDashboard(sqlStatisticsReads(handle.db.withPlugin(capture)), clock)('shop', 'hourly');
          expect(issued.length).toBeGreaterThanOrEqual(4);
          for (const query of issued) {
            const plan = await queryPlan(handle.db, query);
            expect(plan, query.sql).not.toMatch(/\bSCAN\b|TEMP B-TREE/);
            if (/statistics_buckets\b/.test(query.sql)) expect(plan, query.sql).toMatch(/statistics_buckets USING .*event_type=\?/);
          }
        },
      );
    },
  );
}

async function queryPlan(db: Kysely<object>, query: CompiledQuery): Promise<string> {
  const { rows } = await db.executeQuery<{ detail: string }>(CompiledQuery.raw(`EXPLAIN QUERY PLAN ${query.sql}`, [...query.parameters]));
  return rows.map((row) => row.detail).join('\n');
}
