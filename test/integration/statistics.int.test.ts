import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { fixedClock, systemClock } from '../../src/shared/clock.js';
import { startReplayCheckpoint } from '../../src/shared/subscriptions/checkpoints.js';
import { sqlStatisticsTables } from '../../src/statistics/adapters/sql/sql-statistics-tables.js';
import { refreshStatistics } from '../../src/statistics/application/refresh-statistics.js';
import { statisticsSubscriber } from '../../src/statistics/application/statistics-subscriber.js';
import {
  auth,
  explodeOnBoom,
  explodingProcessors,
  ingestItem,
  requireTotal,
  startStatisticsIntake,
  type StatisticsIntake,
  type StatisticsIntakeOptions,
} from '../support/intake-with-statistics.js';

let intake: StatisticsIntake | undefined;
afterEach(async () => {
  await intake?.dispose();
  intake = undefined;
});

async function start(options: StatisticsIntakeOptions = {}) {
  intake = await startStatisticsIntake({ processors: explodingProcessors, ...options });
  return intake;
}

interface CountersBody {
  total_events: number;
  processed_events: number;
  failed_events: number;
  pending_events: number;
}

const dashboard = async (app: StatisticsIntake, appId: string, period = 'hourly') => {
  const response = await app.app.inject({ method: 'GET', url: `/api/statistics/dashboard/${appId}?time_period=${period}`, headers: auth });
  expect(response.statusCode).toBe(200);
  return response.json() as { totals: CountersBody; by_event_type: Array<CountersBody & { event_type: string }> };
};

const dump = (app: StatisticsIntake) =>
  app.store.transaction(async (tx) => ({
    buckets: (await sql`SELECT * FROM statistics_buckets ORDER BY app_id, period, bucket_start, event_type`.execute(tx.db)).rows,
    items: (await sql`SELECT * FROM statistics_items ORDER BY item_id`.execute(tx.db)).rows,
    typeTotals: (await sql`SELECT * FROM statistics_type_totals ORDER BY app_id, event_type`.execute(tx.db)).rows,
    bucketTotals: (await sql`SELECT * FROM statistics_bucket_totals ORDER BY app_id, period, bucket_start`.execute(tx.db)).rows,
  }));

type BucketDump = CountersBody & { app_id: string; period: string };

/** total = processed + failed + pending in every row, and each period sums to the same totals. */
function expectConsistent(rows: readonly unknown[]) {
  const buckets = rows as BucketDump[];
  for (const row of buckets) expect(row.total_events).toBe(row.processed_events + row.failed_events + row.pending_events);
  const sums = (period: string) =>
    buckets
      .filter((row) => row.period === period)
      .reduce((sum, row) => sum + row.total_events * 1_000_000 + row.processed_events * 1_000 + row.failed_events, 0);
  expect(sums('hourly')).toBe(sums('weekly'));
  expect(sums('daily')).toBe(sums('weekly'));
}

/** Two applications over three hours: valid, invalid and failing items. */
async function seed(app: StatisticsIntake, clock: ReturnType<typeof fixedClock>) {
  await requireTotal(app, 'order');
  await explodeOnBoom(app, 'risky');
  clock.set('2026-11-29T22:10:00.000Z');
  await ingestItem(app, 'shop', 'order', { total: 1 });
  await ingestItem(app, 'shop', 'order', { total: 2 });
  clock.set('2026-11-29T23:59:00.000Z');
  await ingestItem(app, 'shop', 'order', { note: 'no total' });
  await ingestItem(app, 'shop', 'risky', { boom: true });
  clock.set('2026-11-30T00:01:00.000Z');
  await ingestItem(app, 'shop', 'risky', { boom: false });
  await ingestItem(app, 'blog', 'order', { total: 3 });
}

describe('event types beyond U+FFFF', () => {
  it('come in the same order in the dashboard as in the statistics, by bytes', async () => {
    const clock = fixedClock('2026-11-29T10:00:00.000Z');
    const app = await start({ clock });
    // UTF-16 puts the emoji first (a surrogate pair, 0xD83D, before 0xE000); UTF-8 bytes, as SQL sorts, the other.
    for (const type of ['\u{1F600}-smile', '\uE000-private']) await ingestItem(app, 'shop', type, {});
    await app.subscriptions.caughtUp();
    const inDashboard = (await dashboard(app, 'shop')).by_event_type.map((row) => row.event_type);
    const response = await app.app.inject({ method: 'GET', url: '/api/statistics/shop?time_period=hourly', headers: auth });
    const inStatistics = (response.json().buckets as Array<{ event_type: string }>).map((row) => row.event_type);
    expect(inDashboard).toEqual(['\uE000-private', '\u{1F600}-smile']);
    expect(inStatistics).toEqual(inDashboard);
  });
});

describe('statistics follow the pipeline', () => {
  it('count items pending until processing reaches them, then processed or failed', async () => {
    const clock = fixedClock('2026-11-29T00:00:00.000Z');
    // Processing is held back: validated items stay pending.
    const app = await start({ clock, running: ['validation', 'query', 'statistics'] });
    await seed(app, clock);
    await app.subscriptions.caughtUp();

    expect((await dashboard(app, 'shop')).totals).toEqual({ total_events: 5, processed_events: 0, failed_events: 1, pending_events: 4 });

    await app.runOnce(['processing']);
    await app.subscriptions.caughtUp();

    const shop = await dashboard(app, 'shop');
    expect(shop.totals).toEqual({ total_events: 5, processed_events: 3, failed_events: 2, pending_events: 0 });
    expect(shop.by_event_type).toEqual([
      { event_type: 'order', total_events: 3, processed_events: 2, failed_events: 1, pending_events: 0 },
      { event_type: 'risky', total_events: 2, processed_events: 1, failed_events: 1, pending_events: 0 },
    ]);
    expect((await dashboard(app, 'blog')).totals).toEqual({ total_events: 1, processed_events: 1, failed_events: 0, pending_events: 0 });

    // Sunday 23:59 and Monday 00:01 fall in different weeks.
    const weekly = await app.app.inject({ method: 'GET', url: '/api/statistics/shop?time_period=weekly&event_type=risky', headers: auth });
    expect(weekly.json().buckets).toEqual([
      {
        bucket_start: '2026-11-23T00:00:00.000Z',
        event_type: 'risky',
        total_events: 1,
        processed_events: 0,
        failed_events: 1,
        pending_events: 0,
      },
      {
        bucket_start: '2026-11-30T00:00:00.000Z',
        event_type: 'risky',
        total_events: 1,
        processed_events: 1,
        failed_events: 0,
        pending_events: 0,
      },
    ]);
    expectConsistent((await dump(app)).buckets);
  });

  it('change nothing when the same events are delivered again, whole or in overlapping slices', async () => {
    const { app, before } = await seeded();
    expect(before.items).toHaveLength(6);

    const events = await app.store.readAll({ after: 0, limit: 10_000 });
    const again = statisticsSubscriber(sqlStatisticsTables);
    const relevant = events.filter((event) => again.handles.includes(event.type));
    await app.store.transaction((tx) => again.handle(relevant, tx));
    await app.store.transaction((tx) => again.handle(relevant.slice(3, 12), tx));
    await app.store.transaction((tx) => again.handle([...relevant.slice(5, 9), ...relevant.slice(5, 9)], tx));

    expect(await dump(app)).toEqual(before);
    expectConsistent(before.buckets);
  });

  it('are rebuilt by a replay into the same rows', async () => {
    const { app, before } = await seeded();
    const replay = await app.app.inject({ method: 'POST', url: '/api/admin/subscriptions/statistics/replay', headers: auth });
    expect(replay.statusCode).toBe(202);
    await app.subscriptions.caughtUp();
    expect(await dump(app)).toEqual(before);
  });
});

/** An intake holding the seed's items, counted: its clock, and its statistics as they stand. */
async function seeded() {
  const clock = fixedClock('2026-11-29T00:00:00.000Z');
  const app = await start({ clock });
  await seed(app, clock);
  await app.subscriptions.caughtUp();
  return { app, clock, before: await dump(app) };
}

describe('POST /api/statistics/refresh/{app_id}', () => {
  it('reproduces an application’s counters after its rows were wiped, and leaves other applications alone', async () => {
    const { app, before } = await seeded();

    await app.store.transaction(async (tx) => {
      for (const table of ['statistics_buckets', 'statistics_items', 'statistics_type_totals', 'statistics_bucket_totals']) {
        await sql`DELETE FROM ${sql.table(table)} WHERE app_id = 'shop'`.execute(tx.db);
      }
    });
    expect((await dashboard(app, 'shop')).totals.total_events).toBe(0);

    const refreshed = await app.app.inject({ method: 'POST', url: '/api/statistics/refresh/shop', headers: auth });
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json()).toMatchObject({
      app_id: 'shop',
      items: 5,
      up_to_position: await app.store.headPosition(),
      totals: { total_events: 5, processed_events: 3, failed_events: 2, pending_events: 0 },
    });
    expect(await dump(app)).toEqual(before);

    // A refresh of intact counters changes nothing either.
    await app.app.inject({ method: 'POST', url: '/api/statistics/refresh/blog', headers: auth });
    expect(await dump(app)).toEqual(before);
  });

  it('repairs counters that drifted from their items', async () => {
    const { app, before } = await seeded();
    await app.store.transaction(async (tx) => {
      for (const table of ['statistics_buckets', 'statistics_type_totals', 'statistics_bucket_totals']) {
        await sql`UPDATE ${sql.table(table)} SET total_events = 99, pending_events = 7`.execute(tx.db);
      }
    });
    await app.app.inject({ method: 'POST', url: '/api/statistics/refresh/shop', headers: auth });
    await app.app.inject({ method: 'POST', url: '/api/statistics/refresh/blog', headers: auth });
    expect(await dump(app)).toEqual(before);
  });

  it('puts right a tally that drifted, adds a missing one and forgets one the log does not have', async () => {
    const { app, before } = await seeded();
    await app.store.transaction(async (tx) => {
      const [first, second] = (
        await sql<{ item_id: string }>`SELECT item_id FROM statistics_items WHERE app_id = 'shop' ORDER BY item_id`.execute(tx.db)
      ).rows;
      await sql`UPDATE statistics_items SET state = 'pending', event_type = 'drifted' WHERE item_id = ${first?.item_id}`.execute(tx.db);
      await sql`DELETE FROM statistics_items WHERE item_id = ${second?.item_id}`.execute(tx.db);
      await sql`INSERT INTO statistics_items (item_id, app_id, event_type, received_at, state, position)
                VALUES ('not-in-the-log', 'shop', 'ghost', '2026-11-29T00:00:00.000Z', 'processed', 1)`.execute(tx.db);
    });
    await app.app.inject({ method: 'POST', url: '/api/statistics/refresh/shop', headers: auth });
    expect(await dump(app)).toEqual(before);
  });

  it('lets other writers in while it reads the log, holding them off only to write', async () => {
    const { app, clock } = await seeded();
    const refresh = refreshStatistics({ log: app.store, tables: sqlStatisticsTables, clock, batchSize: 1 });
    // Queued as the refresh starts: it runs at the loop's next turn, which a refresh in one piece would hold off to the end.
    let refreshed = false;
    const seenBeforeTheEnd = new Promise<boolean>((resolve) => setImmediate(() => resolve(!refreshed)));
    await refresh('shop').then(() => (refreshed = true));
    expect(await seenBeforeTheEnd).toBe(true);
  });

  it('keeps what the subscriber counted after the position it read the log up to', async () => {
    const { app, clock, before } = await seeded();
    const head = await app.store.headPosition();

    // As if the log had ended halfway when the refresh read it, while the subscriber went on to the end.
    const halfway = Math.floor(head / 2);
    const refresh = refreshStatistics({
      log: { ...app.store, headPosition: async () => halfway, transaction: (work) => app.store.transaction(work) },
      tables: sqlStatisticsTables,
      clock,
      batchSize: 1,
    });
    const result = await refresh('shop');
    expect(result.upToPosition).toBe(halfway);
    expect(await dump(app)).toEqual(before);
  });

  it('changes nothing, and says so, when a replay of the statistics resets them while it compares', async () => {
    const app = await start({ running: ['validation', 'processing', 'query', 'item-status'] });
    for (let i = 0; i < 6; i++) await ingestItem(app, 'shop', 'order', { n: i });
    // Counted once every item is processed, with the statistics subscriber stopped otherwise.
    for (const deadline = Date.now() + 20_000; (await dashboard(app, 'shop')).totals.processed_events < 6 && Date.now() < deadline;)
      await app.runOnce(['statistics']);
    expect((await dashboard(app, 'shop')).totals).toMatchObject({ total_events: 6, processed_events: 6 });

    let transactions = 0;
    const head = await app.store.headPosition();
    const refresh = refreshStatistics({
      log: {
        ...app.store,
        transaction: (work) =>
          app.store.transaction(async (tx) => {
            const result = await work(tx);
            // After the first page of stored tallies was compared, what a replay's start does: the
            // subscriber's reset and its checkpoint back to the start of the log.
            if (++transactions === 2) {
              await statisticsSubscriber(sqlStatisticsTables).reset?.(tx);
              await startReplayCheckpoint(tx.db, 'statistics', head, new Date().toISOString());
            }
            return result;
          }),
      },
      tables: sqlStatisticsTables,
      clock: systemClock,
      batchSize: 2,
    });
    await expect(refresh('shop')).rejects.toMatchObject({ code: 'statistics.refresh-interrupted' });
    // The replay rebuilds the counters alone: each item once.
    await app.runOnce(['statistics']);
    expect((await dashboard(app, 'shop')).totals).toEqual({ total_events: 6, processed_events: 6, failed_events: 0, pending_events: 0 });
  });

  it('answers zeros for an application with no items', async () => {
    const app = await start();
    const refreshed = await app.app.inject({ method: 'POST', url: '/api/statistics/refresh/nobody', headers: auth });
    expect(refreshed.statusCode).toBe(200);
    expect(refreshed.json()).toMatchObject({
      items: 0,
      totals: { total_events: 0, processed_events: 0, failed_events: 0, pending_events: 0 },
    });
  });
});
