import { expect, it } from 'vitest';
import type { RecordedEvent } from '../../shared/events.js';
import { profileSubscriber } from './profile-subscriber.js';

const ingested = (eventType: string, channel: string, payload: object = {}): RecordedEvent => ({
  eventId: 'e-1',
  streamId: 'data-1',
  streamVersion: 1,
  position: 1,
  type: 'DataIngested',
  data: { item_id: '1', partner_id: 'shop', event_type: eventType, payload, metadata: { channel } },
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

it('wants a track or page that ties a user to an anonymous id, as the SDKs send once the user is known', () => {
  const subscriber = profileSubscriber(() => {
    throw new Error('not used');
  });
  const wanted = (payload: object, channel = 'analytics_api') => subscriber.wants?.(ingested('Product Viewed', channel, payload));
  expect(wanted({ type: 'track', userId: 'u1', anonymousId: 'a1' })).toBe(true);
  expect(wanted({ type: 'page', userId: 'u1', anonymousId: 'a1' })).toBe(true);
  expect(wanted({ type: 'track', userId: 'u1' })).toBe(false);
  expect(wanted({ type: 'track', userId: 'u1', anonymousId: 'u1' })).toBe(false);
  expect(wanted({ type: 'track', userId: 'u1', anonymousId: 'a1' }, 'partner_api')).toBe(false);
});
