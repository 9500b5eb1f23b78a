import type { TimePeriod } from './buckets.js';
import { addCounters, isZero, NO_EVENTS, type BucketCounters, type Counters } from './counters.js';

/** An application's items of one event type over all time. */
export interface TypeTotals {
  readonly appId: string;
  readonly eventType: string;
  readonly counters: Counters;
}

/** An application's items of every event type received in one bucket. */
export interface BucketTotals {
  readonly appId: string;
  readonly period: TimePeriod;
  readonly bucketStart: string;
  readonly counters: Counters;
}

// The period whose buckets hold each item exactly once: summing them gives all-time figures.
const ALL_TIME: TimePeriod = 'weekly';

/**
 * The sums a dashboard reads, kept beside the buckets so that its reads cost the same with five event
 * types as with sixty thousand: each type's all-time counters, and each bucket's across types. Given
 * changes to buckets, it returns the changes to those sums, leaving out the ones that cancel out.
 */
export function rollUp(buckets: readonly BucketCounters[]): { types: TypeTotals[]; buckets: BucketTotals[] } {
  const types = new Map<string, TypeTotals>();
  const totals = new Map<string, BucketTotals>();
  for (const bucket of buckets) {
    // Each part's length before it keeps the key unambiguous whatever the names hold.
    const app = `${bucket.appId.length}:${bucket.appId}`;
    const totalKey = `${app}${bucket.period}${bucket.bucketStart}`;
    const total = totals.get(totalKey);
    totals.set(totalKey, {
      appId: bucket.appId,
      period: bucket.period,
      bucketStart: bucket.bucketStart,
      counters: addCounters(total?.counters ?? NO_EVENTS, bucket.counters),
    });
    if (bucket.period !== ALL_TIME) continue;
    const typeKey = `${app}${bucket.eventType}`;
    const type = types.get(typeKey);
    types.set(typeKey, {
      appId: bucket.appId,
      eventType: bucket.eventType,
      counters: addCounters(type?.counters ?? NO_EVENTS, bucket.counters),
    });
  }
  return {
    types: [...types.values()].filter((type) => !isZero(type.counters)),
    buckets: [...totals.values()].filter((total) => !isZero(total.counters)),
  };
}
