import { ValidationError } from '../../shared/errors.js';
import { compareBytes } from '../../shared/byte-order.js';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { Clock } from '../../shared/clock.js';
import { bucketStart, DASHBOARD_WINDOW, windowBuckets, type TimePeriod } from '../domain/buckets.js';
import { NO_EVENTS, sumCounters, type BucketCounters, type Counters } from '../domain/counters.js';
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
  /** Summed across every event type. */
  readonly counters: Counters;
  /** Items received in the bucket, per event type of `byEventType` (the others are only in `counters`). */
  readonly byEventType: Readonly<Record<string, number>>;
}

/**
 * How many event types a dashboard breaks its counters down by: the busiest ones. An application can
 * send thousands of distinct types, and a breakdown of each in each of up to 500 buckets would answer
 * hundreds of megabytes; 50 types of 128 characters in 500 buckets stay under 4 MB. Every type's
 * counters are in `GET /api/statistics/{app_id}`, a page at a time.
 */
export const MAX_DASHBOARD_EVENT_TYPES = 50;

export interface Dashboard {
  readonly appId: string;
  readonly period: TimePeriod;
  /** Across every event type. */
  readonly totals: Counters;
  /** How many event types the application has items of. */
  readonly eventTypes: number;
  /** The busiest event types (at most `MAX_DASHBOARD_EVENT_TYPES`; ties go to the first by name), in order of name. */
  readonly byEventType: ReadonlyArray<{ eventType: string; counters: Counters }>;
  /** Summed over the event types `byEventType` leaves out. */
  readonly otherEventTypes: Counters;
  /** Every bucket of the window, oldest first, empty ones with zeros: a chart spans the whole window. */
  readonly buckets: readonly DashboardBucket[];
}

const minus = (a: Counters, b: Counters): Counters => ({
  totalEvents: a.totalEvents - b.totalEvents,
  processedEvents: a.processedEvents - b.processedEvents,
  failedEvents: a.failedEvents - b.failedEvents,
  pendingEvents: a.pendingEvents - b.pendingEvents,
});

/**
 * Totals across event types, the breakdown of the busiest types, and a fixed window of buckets ending
 * with the current one (48 hours, 30 days or 12 weeks unless `bucketCount` says otherwise), summed
 * across types.
 */
export const getDashboard =
  (reads: StatisticsReads, clock: Clock, maxEventTypes = MAX_DASHBOARD_EVENT_TYPES) =>
  async (appId: string, period: TimePeriod, bucketCount?: number): Promise<Dashboard> => {
    const starts = windowBuckets(period, clock.now(), bucketCount ?? DASHBOARD_WINDOW[period]);
    // Keyed by event types, which may be any name: "constructor" must not read Object.prototype's.
    const byTypeOf = () => Object.create(null) as Record<string, number>;
    const buckets = new Map(starts.map((start) => [start, { counters: NO_EVENTS, byEventType: byTypeOf() }]));
    const from = starts[0] ?? '';
    const all = await reads.eventTypeTotals(appId, maxEventTypes);
    const types = all.busiest.map((type) => type.eventType);
    const [totals, rows] = await Promise.all([reads.bucketTotalsFrom(appId, period, from), reads.bucketsFrom(appId, period, from, types)]);
    // A bucket after the window's last (items stamped a little in the future) is left out.
    for (const row of totals) {
      const bucket = buckets.get(row.bucketStart);
      if (bucket) bucket.counters = row.counters;
    }
    for (const row of rows) {
      const bucket = buckets.get(row.bucketStart);
      if (bucket) bucket.byEventType[row.eventType] = (bucket.byEventType[row.eventType] ?? 0) + row.counters.totalEvents;
    }
    return {
      appId,
      period,
      totals: all.totals,
      eventTypes: all.eventTypes,
      byEventType: [...all.busiest].sort((a, b) => compareBytes(a.eventType, b.eventType)),
      otherEventTypes: minus(all.totals, sumCounters(all.busiest.map((type) => type.counters))),
      buckets: starts.map((start) => ({ bucketStart: start, ...(buckets.get(start) ?? { counters: NO_EVENTS, byEventType: byTypeOf() }) })),
    };
  };

export const listApplications =
  (reads: StatisticsReads) =>
  (page: PageRequest): Promise<Page<ApplicationTotals>> =>
    reads.applications(page);
