import type { Kysely } from 'kysely';
import { ValidationError } from '../../../shared/errors.js';
import { decodeCursor, pageOf } from '../../../shared/pagination.js';
import type { StatisticsReads } from '../../application/ports.js';
import { tables, toBucket, toCounters } from './tables.js';

// Every counted item is in exactly one weekly bucket: summing those gives all-time totals from the fewest rows.
const ALL_TIME = 'weekly';

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

    async totalsByEventType(appId) {
      const rows = await t
        .selectFrom('statistics_buckets')
        .select((eb) => [
          'event_type',
          eb.fn.sum<number>('total_events').as('total_events'),
          eb.fn.sum<number>('processed_events').as('processed_events'),
          eb.fn.sum<number>('failed_events').as('failed_events'),
          eb.fn.sum<number>('pending_events').as('pending_events'),
        ])
        .where('app_id', '=', appId)
        .where('period', '=', ALL_TIME)
        .groupBy('event_type')
        .orderBy('event_type')
        .execute();
      return rows.map((row) => ({ eventType: row.event_type, counters: toCounters(row) }));
    },

    async bucketsFrom(appId, period, fromBucket) {
      const rows = await t
        .selectFrom('statistics_buckets')
        .selectAll()
        .where('app_id', '=', appId)
        .where('period', '=', period)
        .where('bucket_start', '>=', fromBucket)
        .orderBy('bucket_start')
        .orderBy('event_type')
        .execute();
      return rows.map(toBucket);
    },

    async applications(page) {
      let query = t
        .selectFrom('statistics_buckets')
        .select((eb) => [
          'app_id',
          eb.fn.sum<number>('total_events').as('total_events'),
          eb.fn.sum<number>('processed_events').as('processed_events'),
          eb.fn.sum<number>('failed_events').as('failed_events'),
          eb.fn.sum<number>('pending_events').as('pending_events'),
        ])
        .where('period', '=', ALL_TIME)
        .groupBy('app_id')
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
