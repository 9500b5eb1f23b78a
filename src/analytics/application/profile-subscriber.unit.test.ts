import { expect, it } from 'vitest';
import type { RecordedEvent } from '../../shared/events.js';
import { profileSubscriber } from './profile-subscriber.js';

const ingested = (eventType: string, channel: string): RecordedEvent => ({
  eventId: 'e-1',
  streamId: 'data-1',
  streamVersion: 1,
  position: 1,
  type: 'DataIngested',
  data: { item_id: '1', partner_id: 'shop', event_type: eventType, payload: {}, metadata: { channel } },
  metadata: {},
  recordedAt: '2026-12-03T10:00:00.000Z',
});

it('wants the identify, alias and group messages of the tracking API, and no other item', () => {
  const subscriber = profileSubscriber(() => {
    throw new Error('not used');
  });
  const wanted = (eventType: string, channel = 'analytics_api') => subscriber.wants?.(ingested(eventType, channel));
  expect(['identify', 'alias', 'group'].map((type) => wanted(type))).toEqual([true, true, true]);
  expect([wanted('track'), wanted('page'), wanted('identify', 'partner_api')]).toEqual([false, false, false]);
});
