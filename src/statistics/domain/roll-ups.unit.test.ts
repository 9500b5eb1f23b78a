import { describe, expect, it } from 'vitest';
import type { TimePeriod } from './buckets.js';
import type { BucketCounters } from './counters.js';
import { rollUp } from './roll-ups.js';

const bucket = (
  appId: string,
  eventType: string,
  period: TimePeriod,
  bucketStart: string,
  total: number,
  processed = 0,
): BucketCounters => ({
  appId,
  eventType,
  period,
  bucketStart,
  counters: { totalEvents: total, processedEvents: processed, failedEvents: 0, pendingEvents: total - processed },
});

describe('statistics roll-ups', () => {
  it("sums each type's weekly buckets into its all-time totals, and each bucket's types into the bucket's totals", () => {
    const { types, buckets } = rollUp([
      bucket('shop', 'order', 'weekly', '2026-11-30T00:00:00.000Z', 3, 1),
      bucket('shop', 'order', 'weekly', '2026-11-23T00:00:00.000Z', 2),
      bucket('shop', 'click', 'weekly', '2026-11-30T00:00:00.000Z', 5),
      bucket('shop', 'order', 'hourly', '2026-12-01T10:00:00.000Z', 3, 1),
      bucket('shop', 'click', 'hourly', '2026-12-01T10:00:00.000Z', 5),
      bucket('blog', 'order', 'weekly', '2026-11-30T00:00:00.000Z', 7),
    ]);
    expect(types).toEqual([
      { appId: 'shop', eventType: 'order', counters: { totalEvents: 5, processedEvents: 1, failedEvents: 0, pendingEvents: 4 } },
      { appId: 'shop', eventType: 'click', counters: { totalEvents: 5, processedEvents: 0, failedEvents: 0, pendingEvents: 5 } },
      { appId: 'blog', eventType: 'order', counters: { totalEvents: 7, processedEvents: 0, failedEvents: 0, pendingEvents: 7 } },
    ]);
    expect(buckets.map((b) => [b.appId, b.period, b.bucketStart, b.counters.totalEvents])).toEqual([
      ['shop', 'weekly', '2026-11-30T00:00:00.000Z', 8],
      ['shop', 'weekly', '2026-11-23T00:00:00.000Z', 2],
      ['shop', 'hourly', '2026-12-01T10:00:00.000Z', 8],
      ['blog', 'weekly', '2026-11-30T00:00:00.000Z', 7],
    ]);
  });

  it('leaves out sums whose changes cancel out: an item moving from pending to processed changes no total', () => {
    const moved = { totalEvents: 0, processedEvents: 1, failedEvents: 0, pendingEvents: -1 };
    const { types, buckets } = rollUp([
      { appId: 'shop', eventType: 'a', period: 'weekly', bucketStart: 'w', counters: moved },
      { appId: 'shop', eventType: 'b', period: 'weekly', bucketStart: 'w', counters: { ...moved, processedEvents: -1, pendingEvents: 1 } },
    ]);
    expect(types.map((t) => t.eventType)).toEqual(['a', 'b']);
    expect(buckets).toEqual([]);
  });

  it('keeps applications apart whatever their names hold', () => {
    const { buckets } = rollUp([bucket('a1', 'x', 'daily', 'd', 1), bucket('a', '1x', 'daily', 'd', 1)]);
    expect(buckets).toHaveLength(2);
  });
});
