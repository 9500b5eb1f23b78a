import { describe, expect, it } from 'vitest';
import type { ItemSnapshot } from '../../shared/contracts/data-events.js';
import { sumCounters } from './counters.js';
import { bucketChanges, evolveItemTally, mergeNewerTally, type ItemTally, type StatisticsEvent } from './item-tally.js';

const snapshot: ItemSnapshot = {
  item_id: 'item-1',
  partner_id: 'shop',
  event_type: 'order',
  payload: {},
  received_at: '2026-11-29T23:59:00.000Z',
  metadata: {
    channel: 'partner_api',
    received_at: '2026-11-29T23:59:00.000Z',
    ip: null,
    user_agent: null,
    correlation_id: null,
    key_id: null,
  },
};
const outcome = { item_id: 'item-1', partner_id: 'shop', event_type: 'order' };

const ingested: StatisticsEvent = { type: 'DataIngested', data: snapshot };
const validated: StatisticsEvent = {
  type: 'DataValidated',
  data: { ...snapshot, schema_version: null, validated_at: snapshot.received_at },
};
const invalid: StatisticsEvent = {
  type: 'DataInvalid',
  data: { ...outcome, schema_version: 1, errors: [], validated_at: snapshot.received_at },
};
const processed: StatisticsEvent = {
  type: 'DataProcessed',
  data: { ...outcome, result: {}, steps: [], processed_at: snapshot.received_at },
};
const failed: StatisticsEvent = {
  type: 'DataProcessingFailed',
  data: { ...outcome, reason: 'boom', failed_step: 'x', steps: [], processed_at: snapshot.received_at },
};

/** Folds events given as [event, position] pairs. */
const fold = (...events: Array<[StatisticsEvent, number]>) =>
  events.reduce<ItemTally | undefined>((tally, [event, position]) => evolveItemTally(tally, event, position), undefined);

describe('an item’s tally', () => {
  it('is pending once received, then takes its outcome', () => {
    expect(fold([ingested, 2])).toEqual({
      itemId: 'item-1',
      appId: 'shop',
      eventType: 'order',
      receivedAt: snapshot.received_at,
      state: 'pending',
      position: 2,
    });
    expect(fold([ingested, 2], [validated, 3])?.state).toBe('pending');
    expect(fold([ingested, 2], [validated, 3], [processed, 4])).toMatchObject({ state: 'processed', position: 4 });
    expect(fold([ingested, 2], [invalid, 3])?.state).toBe('failed');
    expect(fold([ingested, 2], [validated, 3], [failed, 4])?.state).toBe('failed');
  });

  it('is the same object when an event changes nothing: a repeat, or a state already reached', () => {
    const pending = fold([ingested, 2]);
    expect(evolveItemTally(pending, ingested, 2)).toBe(pending);
    // DataValidated only confirms a receipt already known: the position is not moved either.
    expect(evolveItemTally(pending, validated, 3)).toBe(pending);
    const done = fold([ingested, 2], [processed, 4]);
    expect(evolveItemTally(done, processed, 4)).toBe(done);
    // The first outcome stays.
    expect(evolveItemTally(done, failed, 9)).toBe(done);
  });

  it('remembers an outcome that arrives before the receipt, and counts it when the receipt comes', () => {
    const early = fold([processed, 4]);
    expect(early).toMatchObject({ receivedAt: null, state: 'processed' });
    const changes = bucketChanges();
    changes.count(early);
    expect(changes.list()).toEqual([]);
    const late = evolveItemTally(early, ingested, 2);
    expect(late).toMatchObject({ receivedAt: snapshot.received_at, state: 'processed', position: 4 });
  });

  it('merges a tally the subscriber wrote after a refresh’s read: its receipt if missing, the first outcome', () => {
    const rebuilt = fold([ingested, 2]);
    const newer = fold([ingested, 2], [processed, 9]) as ItemTally;
    expect(mergeNewerTally(rebuilt, newer)).toEqual(newer);
    expect(mergeNewerTally(undefined, newer)).toBe(newer);
    const rebuiltDone = fold([ingested, 2], [failed, 3]);
    expect(mergeNewerTally(rebuiltDone, newer)).toMatchObject({ state: 'failed', position: 9 });
    expect(mergeNewerTally(fold([processed, 4]), { ...newer, state: 'pending' })).toMatchObject({
      receivedAt: snapshot.received_at,
      state: 'processed',
    });
  });
});

describe('bucket changes', () => {
  it('count an item once per period, in the buckets of its receipt', () => {
    const changes = bucketChanges();
    changes.count(fold([ingested, 2]));
    expect(changes.list()).toEqual([
      { appId: 'shop', eventType: 'order', period: 'hourly', bucketStart: '2026-11-29T23:00:00.000Z', counters: expect.anything() },
      { appId: 'shop', eventType: 'order', period: 'daily', bucketStart: '2026-11-29T00:00:00.000Z', counters: expect.anything() },
      { appId: 'shop', eventType: 'order', period: 'weekly', bucketStart: '2026-11-23T00:00:00.000Z', counters: expect.anything() },
    ]);
    for (const bucket of changes.list()) {
      expect(bucket.counters).toEqual({ totalEvents: 1, processedEvents: 0, failedEvents: 0, pendingEvents: 1 });
    }
  });

  it('keep apart applications and event types whose names run together', () => {
    const changes = bucketChanges();
    const tally = fold([ingested, 2]) as ItemTally;
    changes.count({ ...tally, appId: 'a', eventType: 'bc' });
    changes.count({ ...tally, appId: 'ab', eventType: 'c' });
    const hourly = changes.list().filter((bucket) => bucket.period === 'hourly');
    expect(hourly.map(({ appId, eventType, counters }) => [appId, eventType, counters.totalEvents])).toEqual([
      ['a', 'bc', 1],
      ['ab', 'c', 1],
    ]);
  });

  it('move an item from pending to its outcome without changing the total', () => {
    const before = fold([ingested, 2]);
    const after = evolveItemTally(before, processed, 4);
    const changes = bucketChanges();
    changes.count(before, -1);
    changes.count(after, 1);
    for (const bucket of changes.list()) {
      expect(bucket.counters).toEqual({ totalEvents: 0, processedEvents: 1, failedEvents: 0, pendingEvents: -1 });
    }
  });

  it('aggregate a batch into one change per bucket and leave out changes that cancel out', () => {
    const changes = bucketChanges();
    const a = fold([ingested, 2]);
    const b = fold([{ ...ingested, data: { ...snapshot, item_id: 'item-2', received_at: '2026-11-29T23:10:00.000Z' } }, 5]);
    changes.count(a);
    changes.count(b);
    changes.count(evolveItemTally(b, { ...invalid, data: { ...invalid.data, item_id: 'item-2' } }, 6));
    changes.count(b, -1);
    const hourly = changes.list().filter((bucket) => bucket.period === 'hourly');
    expect(hourly).toHaveLength(1);
    expect(sumCounters(hourly.map((h) => h.counters))).toEqual({ totalEvents: 2, processedEvents: 0, failedEvents: 1, pendingEvents: 1 });

    const cancelled = bucketChanges();
    cancelled.count(a);
    cancelled.count(a, -1);
    expect(cancelled.list()).toEqual([]);
  });
});
