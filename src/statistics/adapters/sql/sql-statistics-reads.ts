import type { ExpressionBuilder, Kysely } from 'kysely';
import { compareBytes } from '../../../shared/byte-order.js';
import { ValidationError } from '../../../shared/errors.js';
import { decodeCursor, pageOf } from '../../../shared/pagination.js';
import type { StatisticsReads } from '../../application/ports.js';
import type { BucketCounters } from '../../domain/counters.js';
import { keyPieces } from '../../../shared/sql/statement-shapes.js';
import { tables, toBucket, toCounters, type Tables } from './tables.js';

// Every counted item is in exactly one weekly bucket: summing those gives all-time totals from the fewest rows.
const ALL_TIME = 'weekly';

const sums = (eb: ExpressionBuilder<Tables, 'statistics_bucket_totals'>) => [
  eb.fn.sum<number>('total_events').as('total_events'),
  eb.fn.sum<number>('processed_events').as('processed_events'),
  eb.fn.sum<number>('failed_events').as('failed_events'),
  eb.fn.sum<number>('pending_events').as('pending_events'),
];

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

    async eventTypeTotals(appId, limit) {
      // From the sums kept beside the buckets (roll-ups.ts): these reads cost the same with five event
      // types as with sixty thousand, where summing the buckets took a tenth of a second.
      // In one snapshot: read apart, a batch of the subscriber's committed between them, and the
      // busiest types held more than the totals (the dashboard's "other" went negative).
      const [all, count, busiest] = await db
        .transaction()
        .setIsolationLevel('repeatable read')
        .execute(async (trx) => {
          const types = tables(trx).selectFrom('statistics_type_totals').where('app_id', '=', appId);
          return [
            await tables(trx)
              .selectFrom('statistics_bucket_totals')
              .select(sums)
              .where('app_id', '=', appId)
              .where('period', '=', ALL_TIME)
              .executeTakeFirstOrThrow(),
            await types.select((eb) => eb.fn.countAll<number>().as('event_types')).executeTakeFirstOrThrow(),
            await types.selectAll().orderBy('total_events', 'desc').orderBy('event_type').limit(limit).execute(),
          ] as const;
        });
      return {
        totals: toCounters(all),
        eventTypes: Number(count.event_types),
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
        a.bucketStart !== b.bucketStart ? (a.bucketStart < b.bucketStart ? -1 : 1) : compareBytes(a.eventType, b.eventType),
      );
    },

    async applications(page) {
      let query = t
        .selectFrom('statistics_bucket_totals')
        .select((eb) => ['app_id', ...sums(eb)])
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
