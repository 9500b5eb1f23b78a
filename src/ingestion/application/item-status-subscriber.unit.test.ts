import type { Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { StoreTransaction } from '../../shared/event-store/event-store.js';
import type { RecordedEvent } from '../../shared/events.js';
import type { ItemStatus } from '../domain/item-status.js';
import { itemStatusSubscriber } from './item-status-subscriber.js';

/** A status event of an item's stream whose data must not be needed: reading it throws. */
const statusEvent = (position: number, type: string, itemId: string): RecordedEvent => ({
  eventId: `e${position}`,
  position,
  streamId: `data-${itemId}`,
  streamVersion: position,
  type,
  get data(): object {
    throw new Error('the data was parsed');
  },
  metadata: {},
  recordedAt: '2026-12-03T00:00:00.000Z',
});

describe('item status subscriber', () => {
  it('moves each item to its furthest status, knowing the item from its stream alone', async () => {
    const advanced: Array<ReadonlyMap<string, ItemStatus>> = [];
    const subscriber = itemStatusSubscriber(() => ({ advance: async (statuses) => void advanced.push(statuses), reset: async () => {} }));
    const tx = { db: {} as Kysely<object> } as StoreTransaction;

    await subscriber.handle(
      [
        statusEvent(1, 'DataValidated', 'a'),
        statusEvent(2, 'DataProcessed', 'a'),
        statusEvent(3, 'DataInvalid', 'b'),
        statusEvent(4, 'DataValidated', 'c'),
      ],
      tx,
    );

    expect(advanced).toEqual([
      new Map([
        ['a', 'processed'],
        ['b', 'invalid'],
        ['c', 'validated'],
      ]),
    ]);
  });
});
