import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { fixedClock } from '../../../shared/clock.js';
import { postgresEventStoreMigrations } from '../../../shared/event-store/postgres/migrations.js';
import { postgresEventStore } from '../../../shared/event-store/postgres/postgres-event-store.js';
import type { RecordedEvent } from '../../../shared/events.js';
import { uuidV7 } from '../../../shared/ids.js';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import { subscriptionMigrations } from '../../../shared/subscriptions/migrations.js';
import { statisticsMigrations } from './migrations.js';
import { sqlStatisticsTables } from './sql-statistics-tables.js';
import { recountStatistics } from '../../application/recount-statistics.js';
import { refreshStatistics } from '../../application/refresh-statistics.js';
import { statisticsSubscriber } from '../../application/statistics-subscriber.js';

if (!testPostgresUrl) console.warn('skipping the distributed statistics recount: TEST_POSTGRES_URL is not set');

const clock = fixedClock('2026-12-02T10:00:00.000Z');
let position = 0;
const event = (type: string, itemId: string, app: string): RecordedEvent => ({
  eventId: uuidV7(),
  position: ++position,
  streamId: `data-${itemId}`,
  streamVersion: 1,
  type,
  data: { item_id: itemId, partner_id: app, event_type: 'order', received_at: '2026-12-01T08:00:00.000Z', payload: {} },
  metadata: {},
  recordedAt: '2026-12-01T08:00:00.000Z',
});

describe.skipIf(!testPostgresUrl)('statistics refresh in distributed mode', () => {
  it('recounts an application’s buckets from the service’s own per-item tallies, leaving other applications alone', async () => {
    const postgres = await openTemporarySchema(testPostgresUrl ?? '');
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, statisticsMigrations]);
    // The statistics role's own store holds no data events: only what its subscriber was handed.
    const store = await postgresEventStore({ postgres, clock, newId: uuidV7 });
    const subscriber = statisticsSubscriber(sqlStatisticsTables);
    const buckets = async () =>
      (
        await sql<{ app_id: string; period: string; total_events: number; processed_events: number; failed_events: number }>`
          SELECT app_id, period, total_events, processed_events, failed_events FROM statistics_buckets
          ORDER BY app_id, period, bucket_start`.execute(postgres.db)
      ).rows;
    try {
      await store.transaction((tx) =>
        subscriber.handle(
          [
            event('DataIngested', 'i1', 'shop'),
            event('DataIngested', 'i2', 'shop'),
            event('DataIngested', 'i3', 'shop'),
            event('DataProcessed', 'i1', 'shop'),
            event('DataProcessingFailed', 'i2', 'shop'),
            event('DataIngested', 'b1', 'blog'),
          ],
          tx,
        ),
      );
      const before = await buckets();
      // Counters drift (a bug, a manual fix gone wrong): the buckets no longer match the items.
      await sql`UPDATE statistics_buckets SET total_events = 40, processed_events = 0 WHERE app_id = 'shop'`.execute(postgres.db);
      await sql`UPDATE statistics_buckets SET total_events = 7 WHERE app_id = 'blog'`.execute(postgres.db);

      const result = await recountStatistics({ store, tables: sqlStatisticsTables, clock })('shop');
      expect(result).toMatchObject({
        appId: 'shop',
        items: 3,
        totals: { totalEvents: 3, processedEvents: 1, failedEvents: 1, pendingEvents: 1 },
        refreshedAt: '2026-12-02T10:00:00.000Z',
      });
      const after = await buckets();
      expect(after.filter((row) => row.app_id === 'shop')).toEqual(before.filter((row) => row.app_id === 'shop'));
      expect(after.filter((row) => row.app_id === 'blog').every((row) => row.total_events === 7)).toBe(true);
    } finally {
      await store.close();
      await postgres.close();
    }
  });
});

describe.skipIf(!testPostgresUrl)('statistics refresh from the log, on PostgreSQL', () => {
  it('puts right drifted, missing and stale tallies, comparing the stored ones a page at a time', async () => {
    const postgres = await openTemporarySchema(testPostgresUrl ?? '');
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, statisticsMigrations]);
    const store = await postgresEventStore({ postgres, clock, newId: uuidV7 });
    const subscriber = statisticsSubscriber(sqlStatisticsTables);
    const dump = async () => ({
      items: (await sql`SELECT * FROM statistics_items ORDER BY item_id`.execute(postgres.db)).rows,
      buckets: (await sql`SELECT * FROM statistics_buckets ORDER BY app_id, period, bucket_start, event_type`.execute(postgres.db)).rows,
    });
    try {
      const data = (itemId: string, app: string) => ({
        item_id: itemId,
        partner_id: app,
        event_type: 'order',
        received_at: '2026-12-01T08:00:00.000Z',
        payload: {},
      });
      for (const [itemId, app, outcome] of [
        ['i1', 'shop', 'DataProcessed'],
        ['i2', 'shop', 'DataProcessingFailed'],
        ['i3', 'shop', undefined],
        ['i4', 'shop', 'DataProcessed'],
        ['i5', 'shop', 'DataProcessed'],
        ['b1', 'blog', 'DataProcessed'],
      ] as const) {
        const events = [
          { type: 'DataIngested', data: data(itemId, app) },
          ...(outcome ? [{ type: outcome, data: data(itemId, app) }] : []),
        ];
        await store.append({ streamId: `data-${itemId}`, events });
      }
      const recorded = await store.readAll({ after: 0, limit: 100 });
      await store.transaction((tx) => subscriber.handle(recorded, tx));
      const before = await dump();

      await sql`UPDATE statistics_items SET state = 'pending', event_type = 'drifted' WHERE item_id = 'i1'`.execute(postgres.db);
      await sql`DELETE FROM statistics_items WHERE item_id = 'i4'`.execute(postgres.db);
      await sql`INSERT INTO statistics_items (item_id, app_id, event_type, received_at, state, position)
                VALUES ('ghost', 'shop', 'order', '2026-12-01T08:00:00.000Z', 'processed', 2)`.execute(postgres.db);
      await sql`UPDATE statistics_buckets SET total_events = 40 WHERE app_id = 'shop'`.execute(postgres.db);

      const refresh = refreshStatistics({ log: store, tables: sqlStatisticsTables, clock, batchSize: 2 });
      const first = refresh('shop');
      // One at a time: a second, of any application, is refused while the first reads the log.
      await expect(refresh('blog')).rejects.toMatchObject({ code: 'statistics.refresh-running' });
      const result = await first;
      expect(result).toMatchObject({ items: 5, totals: { totalEvents: 5, processedEvents: 3, failedEvents: 1, pendingEvents: 1 } });
      expect(await dump()).toEqual(before);
    } finally {
      await store.close();
      await postgres.close();
    }
  });
});
