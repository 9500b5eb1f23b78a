import type { TimePeriod } from './buckets.js';

/** The four counters of a bucket. `totalEvents` always equals the sum of the other three. */
export interface Counters {
  readonly totalEvents: number;
  readonly processedEvents: number;
  readonly failedEvents: number;
  readonly pendingEvents: number;
}

export const NO_EVENTS: Counters = { totalEvents: 0, processedEvents: 0, failedEvents: 0, pendingEvents: 0 };

/** One row of statistics: an application's items of one event type received in one bucket. */
export interface BucketKey {
  readonly appId: string;
  readonly eventType: string;
  readonly period: TimePeriod;
  readonly bucketStart: string;
}

export interface BucketCounters extends BucketKey {
  readonly counters: Counters;
}

export function addCounters(a: Counters, b: Counters): Counters {
  return {
    totalEvents: a.totalEvents + b.totalEvents,
    processedEvents: a.processedEvents + b.processedEvents,
    failedEvents: a.failedEvents + b.failedEvents,
    pendingEvents: a.pendingEvents + b.pendingEvents,
  };
}

export function sumCounters(all: Iterable<Counters>): Counters {
  let sum = NO_EVENTS;
  for (const counters of all) sum = addCounters(sum, counters);
  return sum;
}

export const isZero = (c: Counters) => c.totalEvents === 0 && c.processedEvents === 0 && c.failedEvents === 0 && c.pendingEvents === 0;
