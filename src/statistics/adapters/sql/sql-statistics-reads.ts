import type { Kysely } from 'kysely';
import { ValidationError } from '../../../shared/errors.js';
import { decodeCursor, pageOf } from '../../../shared/pagination.js';
import type { StatisticsReads } from '../../application/ports.js';
import { NO_EVENTS, type BucketCounters } from '../../domain/counters.js';
import { keyPieces } from '../../../shared/sql/statement-shapes.js';
import { tables, toBucket, toCounters } from './tables.js';

/** Reads of the pre-aggregated buckets; nothing here looks at the event store. */
export function sqlStatisticsReads(db: Kysely<object>): StatisticsReads {
  const t = tables(db);
  return {
    async buckets(filter, page) {
      let query = t
        .selectFrom('statistics_buckets')
        .selectAll()
        .where('app_id', '=', filter.appId)
        .where('period', '=', filter.period)
        .orderBy('bucket_start')
        .orderBy('event_type')
        .limit(page.limit + 1);
      if (filter.eventType !== undefined) query = query.where('event_type', '=', filter.eventType);
      if (filter.fromBucket !== undefined) query = query.where('bucket_start', '>=', filter.fromBucket);
      if (filter.before !== undefined) query = query.where('bucket_start', '<', filter.before);
      if (page.cursor !== undefined) {
        const [start, eventType] = parseBucketCursor(decodeCursor(page.cursor));
        query = query.where((eb) =>
          eb.or([eb('bucket_start', '>', start), eb.and([eb('bucket_start', '=', start), eb('event_type', '>', eventType)])]),
        );
      }
      const rows = (await query.execute()).map(toBucket);
      return pageOf(rows, page.limit, (bucket) => JSON.stringify([bucket.bucketStart, bucket.eventType]));
    },

    // From the roll-ups: a few rows each however many event types the application has (summing its
    // buckets took SQLite about 100 ms with 62,500 types, on the thread serving HTTP).
    async eventTypeTotals(appId, limit) {
      const [all, busiest] = await Promise.all([
        t.selectFrom('statistics_app_totals').selectAll().where('app_id', '=', appId).executeTakeFirst(),
        t
          .selectFrom('statistics_type_totals')
          .selectAll()
          .where('app_id', '=', appId)
          .orderBy('total_events', 'desc')
          .orderBy('event_type')
          .limit(limit)
          .execute(),
      ]);
      return {
        totals: all ? toCounters(all) : NO_EVENTS,
        eventTypes: Number(all?.event_types ?? 0),
        busiest: busiest.map((row) => ({ eventType: row.event_type, counters: toCounters(row) })),
      };
    },

    async bucketTotalsFrom(appId, period, fromBucket) {
      const rows = await t
        .selectFrom('statistics_bucket_totals')
        .selectAll()
        .where('app_id', '=', appId)
        .where('period', '=', period)
        .where('bucket_start', '>=', fromBucket)
        .orderBy('bucket_start')
        .execute();
      return rows.map((row) => ({ bucketStart: row.bucket_start, counters: toCounters(row) }));
    },

    async bucketsFrom(appId, period, fromBucket, eventTypes) {
      const rows: BucketCounters[] = [];
      for (const piece of keyPieces(db, eventTypes)) {
        const found = await t
          .selectFrom('statistics_buckets')
          .selectAll()
          .where('app_id', '=', appId)
          .where('period', '=', period)
          .where('bucket_start', '>=', fromBucket)
          .where('event_type', 'in', piece)
          .execute();
        rows.push(...found.map(toBucket));
      }
      return rows.sort((a, b) =>
        a.bucketStart !== b.bucketStart ? (a.bucketStart < b.bucketStart ? -1 : 1) : a.eventType < b.eventType ? -1 : 1,
      );
    },

    async applications(page) {
      let query = t
        .selectFrom('statistics_app_totals')
        .selectAll()
        .orderBy('app_id')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where('app_id', '>', decodeCursor(page.cursor));
      const rows = (await query.execute()).map((row) => ({ appId: row.app_id, counters: toCounters(row) }));
      return pageOf(rows, page.limit, (app) => app.appId);
    },
  };
}

function parseBucketCursor(key: string): [string, string] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    parsed = undefined;
  }
  if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string') {
    return [parsed[0], parsed[1]];
  }
  throw new ValidationError('pagination.invalid-cursor', 'cursor is not one this API returned', [
    { path: 'cursor', message: 'invalid cursor' },
  ]);
}
