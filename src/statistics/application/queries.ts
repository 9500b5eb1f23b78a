import { ValidationError } from '../../shared/errors.js';
import type { Page, PageRequest } from '../../shared/pagination.js';
import { bucketStart, type TimePeriod } from '../domain/buckets.js';
import { addCounters, NO_EVENTS, sumCounters, type BucketCounters, type Counters } from '../domain/counters.js';
import type { ApplicationTotals, StatisticsReads } from './ports.js';

export interface StatisticsQuery {
  readonly appId: string;
  readonly period: TimePeriod;
  readonly eventType?: string;
  /** ISO date-time: buckets from the one holding it. */
  readonly from?: string;
  /** ISO date-time, exclusive: buckets starting before it. */
  readonly to?: string;
}

/** An application's buckets of one period, oldest first; buckets with no item are not listed. */
export const getStatistics =
  (reads: StatisticsReads) =>
  (query: StatisticsQuery, page: PageRequest): Promise<Page<BucketCounters>> => {
    const from = query.from === undefined ? undefined : new Date(query.from);
    const to = query.to === undefined ? undefined : new Date(query.to);
    if (from && to && from.getTime() >= to.getTime()) {
      throw new ValidationError('statistics.invalid-range', '`from` must be before `to`', [{ path: 'from', message: 'must be before to' }]);
    }
    return reads.buckets(
      {
        appId: query.appId,
        period: query.period,
        eventType: query.eventType,
        fromBucket: from && bucketStart(query.period, from),
        before: to?.toISOString(),
      },
      page,
    );
  };

export interface DashboardBucket {
  readonly bucketStart: string;
  readonly counters: Counters;
  /** Items received in the bucket, per event type. */
  readonly byEventType: Readonly<Record<string, number>>;
}

export interface Dashboard {
  readonly appId: string;
  readonly period: TimePeriod;
  readonly totals: Counters;
  readonly byEventType: ReadonlyArray<{ eventType: string; counters: Counters }>;
  readonly buckets: readonly DashboardBucket[];
}

/** Totals across event types, the breakdown per type, and the latest buckets summed across types. */
export const getDashboard =
  (reads: StatisticsReads) =>
  async (appId: string, period: TimePeriod, bucketCount: number): Promise<Dashboard> => {
    const byEventType = await reads.totalsByEventType(appId);
    const buckets = new Map<string, { counters: Counters; byEventType: Record<string, number> }>();
    for (const row of await reads.latestBuckets(appId, period, bucketCount)) {
      const bucket = buckets.get(row.bucketStart) ?? { counters: NO_EVENTS, byEventType: {} };
      bucket.counters = addCounters(bucket.counters, row.counters);
      bucket.byEventType[row.eventType] = (bucket.byEventType[row.eventType] ?? 0) + row.counters.totalEvents;
      buckets.set(row.bucketStart, bucket);
    }
    return {
      appId,
      period,
      totals: sumCounters(byEventType.map((type) => type.counters)),
      byEventType,
      buckets: [...buckets.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([start, bucket]) => ({ bucketStart: start, ...bucket })),
    };
  };

export const listApplications =
  (reads: StatisticsReads) =>
  (page: PageRequest): Promise<Page<ApplicationTotals>> =>
    reads.applications(page);
