import { ValidationError } from '../../shared/errors.js';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { Clock } from '../../shared/clock.js';
import { bucketStart, DASHBOARD_WINDOW, windowBuckets, type TimePeriod } from '../domain/buckets.js';
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
  /** Every bucket of the window, oldest first, empty ones with zeros: a chart spans the whole window. */
  readonly buckets: readonly DashboardBucket[];
}

/**
 * Totals across event types, the breakdown per type, and a fixed window of buckets ending with the
 * current one (48 hours, 30 days or 12 weeks unless `bucketCount` says otherwise), summed across types.
 */
export const getDashboard =
  (reads: StatisticsReads, clock: Clock) =>
  async (appId: string, period: TimePeriod, bucketCount?: number): Promise<Dashboard> => {
    const starts = windowBuckets(period, clock.now(), bucketCount ?? DASHBOARD_WINDOW[period]);
    const buckets = new Map(starts.map((start) => [start, { counters: NO_EVENTS, byEventType: {} as Record<string, number> }]));
    const byEventType = await reads.totalsByEventType(appId);
    for (const row of await reads.bucketsFrom(appId, period, starts[0] ?? '')) {
      const bucket = buckets.get(row.bucketStart);
      // A bucket after the window's last (items stamped a little in the future) is left out.
      if (!bucket) continue;
      bucket.counters = addCounters(bucket.counters, row.counters);
      bucket.byEventType[row.eventType] = (bucket.byEventType[row.eventType] ?? 0) + row.counters.totalEvents;
    }
    return {
      appId,
      period,
      totals: sumCounters(byEventType.map((type) => type.counters)),
      byEventType,
      buckets: starts.map((start) => ({ bucketStart: start, ...(buckets.get(start) ?? { counters: NO_EVENTS, byEventType: {} }) })),
    };
  };

export const listApplications =
  (reads: StatisticsReads) =>
  (page: PageRequest): Promise<Page<ApplicationTotals>> =>
    reads.applications(page);
