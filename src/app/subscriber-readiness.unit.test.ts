import { describe, expect, it } from 'vitest';
import type { SubscriberStatus } from '../shared/subscriptions/in-process-subscriptions.js';
import { subscriberCheck } from './subscriber-readiness.js';

const status = (overrides: Partial<SubscriberStatus>): SubscriberStatus => ({
  name: 'query',
  position: 100,
  head: 100,
  lag: 0,
  parked: 0,
  state: 'running',
  ...overrides,
});

describe('a subscriber’s readiness check', () => {
  it('is ok while it trails by no more than twice what flow control lets it', () => {
    expect(subscriberCheck(status({ lag: 20_000 }), 16_384).status).toBe('ok');
    expect(subscriberCheck(status({ lag: 32_768 }), 16_384).status).toBe('ok');
    expect(subscriberCheck(status({ lag: 32_769 }), 16_384).status).toBe('degraded');
  });

  it('is degraded beyond 10,000 events when flow control is off or allows less', () => {
    expect(subscriberCheck(status({ lag: 10_001 }), 0).status).toBe('degraded');
    expect(subscriberCheck(status({ lag: 10_001 }), 1_000).status).toBe('degraded');
    expect(subscriberCheck(status({ lag: 10_000 }), 1_000).status).toBe('ok');
  });

  it('is degraded while a replay rebuilds its view, however small the lag, and says how far the replay goes', () => {
    const replaying = subscriberCheck(status({ position: 40, lag: 60, replayingUntil: 90 }), 16_384);
    expect(replaying).toEqual({ status: 'degraded', detail: 'running, replaying up to position 90, position 40, lag 60, parked 0' });
  });

  it('is degraded with parked events and down when it is not running, and says where it stands', () => {
    expect(subscriberCheck(status({ parked: 1 }), 16_384).status).toBe('degraded');
    const stopped = subscriberCheck(status({ state: 'retrying', fault: 'disk full', lag: 5 }), 16_384);
    expect(stopped).toEqual({ status: 'down', detail: 'retrying (disk full), position 100, lag 5, parked 0' });
  });
});
