import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { decideInterrupted } from './delivery.js';
import { freshWebhookIdOf, parseReplayRequest, replayDeliveryIdOf } from './replay.js';

const now = new Date('2026-12-02T10:00:00.000Z');

describe('replay requests', () => {
  it('accepts a past window with its options', () => {
    expect(parseReplayRequest({ from: '2026-12-01T00:00:00Z', to: '2026-12-02T09:00:00Z', fresh_ids: true }, now)).toEqual({
      from: '2026-12-01T00:00:00.000Z',
      to: '2026-12-02T09:00:00.000Z',
      reevaluate: false,
      freshIds: true,
    });
  });

  it('keeps both ends to the last digit given: an event stored at the millisecond before a finer `from` is not in the window', () => {
    const window = parseReplayRequest({ from: '2026-12-01T10:26:31.0061Z', to: '2026-12-01T10:26:31.0089+00:00' }, now);
    expect(window).toMatchObject({ from: '2026-12-01T10:26:31.007Z', to: '2026-12-01T10:26:31.008Z' });
  });

  it.each([
    ['from after to', { from: '2026-12-02T09:00:00Z', to: '2026-12-01T00:00:00Z' }, 'from'],
    ['a window ending in the future', { from: '2026-12-01T00:00:00Z', to: '2026-12-03T00:00:00Z' }, 'to'],
    ['a missing end', { from: '2026-12-01T00:00:00Z' }, 'to'],
    ['a non-date', { from: 'yesterday', to: '2026-12-01T00:00:00Z' }, 'from'],
  ])('refuses %s', (_name, input, path) => {
    try {
      parseReplayRequest(input, now);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).violations.map((v) => v.path)).toContain(path);
    }
  });

  it('derives the same replay delivery id for the same job and event, and fresh ids that differ per job', () => {
    expect(replayDeliveryIdOf('j', 'i')).toBe(replayDeliveryIdOf('j', 'i'));
    expect(replayDeliveryIdOf('j', 'i')).not.toBe(replayDeliveryIdOf('j2', 'i'));
    expect(freshWebhookIdOf('j', 'i')).not.toBe(freshWebhookIdOf('j2', 'i'));
    expect(freshWebhookIdOf('j', 'i')).toMatch(/^msg_[0-9a-f]{32}$/);
  });
});

describe('an attempt interrupted by a stop', () => {
  const ctx = { itemId: 'i', deliveryId: 'd', ruleId: 'r', earlierAttempts: 0, at: now, schedule: [5, 300] };
  it('counts, and the next attempt goes at once', () => {
    const decision = decideInterrupted({ ...ctx, attempt: 1 });
    expect(decision).toMatchObject({ status: 'pending', nextAttemptAt: now.toISOString() });
    expect(decision.events.map((e) => e.type)).toEqual(['DeliveryAttempted', 'DeliveryFailed']);
  });
  it('dead-letters when it was the last attempt allowed', () => {
    expect(decideInterrupted({ ...ctx, attempt: 3 }).status).toBe('dead_lettered');
  });
});
