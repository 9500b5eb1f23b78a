import { describe, expect, it } from 'vitest';
import {
  deadLetterUnattempted,
  decideAttempt,
  decideInterrupted,
  deliveryIdOf,
  givenUpAfter,
  parseRetrySchedule,
  retriedAt,
  RULE_DELETED,
} from './delivery.js';

const at = new Date('2026-11-24T10:00:00.000Z');
const ctx = (attempt: number, random = 0.5, earlierAttempts = 0) => ({
  itemId: 'i',
  deliveryId: 'msg_1',
  ruleId: 'r',
  attempt,
  earlierAttempts,
  at,
  schedule: [5, 300],
  random,
});

describe('delivery attempts', () => {
  it('gives one delivery id per item and rule', () => {
    const received = '2026-11-24T10:00:00.000Z';
    expect(deliveryIdOf('i', 'r', received)).toBe(deliveryIdOf('i', 'r', received));
    expect(deliveryIdOf('i', 'r', received)).not.toBe(deliveryIdOf('i', 'r2', received));
    expect(deliveryIdOf('i', 'r', received)).toMatch(/^msg_[0-9a-f]{32}$/);
  });

  it('orders delivery ids by the arrival of their items', () => {
    const ids = ['2026-11-24T10:00:00.000Z', '2026-11-24T10:00:00.001Z', '2026-11-24T10:00:01.000Z', '2027-01-01T00:00:00.000Z'].map(
      (at, n) => deliveryIdOf(`item-${9 - n}`, 'r', at),
    );
    expect([...ids].sort()).toEqual(ids);
    expect(ids[0]?.slice(4, 16)).toBe(Date.parse('2026-11-24T10:00:00.000Z').toString(16).padStart(12, '0'));
  });

  it('succeeds on delivery', () => {
    const decision = decideAttempt(ctx(1), { outcome: 'delivered', statusCode: 204, durationMs: 3 });
    expect(decision.status).toBe('succeeded');
    expect(decision.events.map((e) => e.type)).toEqual(['DeliveryAttempted', 'DeliverySucceeded']);
  });

  it('retries after the scheduled delay with jitter of at most 20 %', () => {
    const early = decideAttempt(ctx(1, 0), { outcome: 'retry', reason: '503', durationMs: 1 });
    const late = decideAttempt(ctx(1, 0.999999), { outcome: 'retry', reason: '503', durationMs: 1 });
    expect(early.nextAttemptAt).toBe('2026-11-24T10:00:04.000Z');
    expect(Date.parse(late.nextAttemptAt ?? '') - at.getTime()).toBeCloseTo(6000, -1);
    expect(decideAttempt(ctx(2, 0.5), { outcome: 'retry', reason: 'x', durationMs: 1 }).nextAttemptAt).toBe('2026-11-24T10:05:00.000Z');
  });

  it('waits at least as long as Retry-After asks', () => {
    expect(decideAttempt(ctx(1), { outcome: 'retry', reason: '429', retryAfterMs: 60_000, durationMs: 1 }).nextAttemptAt).toBe(
      '2026-11-24T10:01:00.000Z',
    );
  });

  it('waits at most a day whatever Retry-After asks, even beyond the range of a date', () => {
    for (const retryAfterMs of [3 * 86_400_000, 1e23, Number.POSITIVE_INFINITY]) {
      const decision = decideAttempt(ctx(1), { outcome: 'retry', reason: '429', retryAfterMs, durationMs: 1 });
      expect(decision).toMatchObject({ status: 'pending', nextAttemptAt: '2026-11-25T10:00:00.000Z' });
    }
  });

  it('makes the retry of an attempt to a destination the rule left due at once, and leaves other outcomes as they are', () => {
    const later = decideAttempt(ctx(1), { outcome: 'retry', reason: 'HTTP 503', retryAfterMs: 86_400_000, durationMs: 1 });
    const now = new Date(at.getTime() + 2000);
    const retried = retriedAt(later, now);
    expect(retried).toMatchObject({ status: 'pending', nextAttemptAt: now.toISOString() });
    expect(retried.events.find((e) => e.type === 'DeliveryFailed')?.data).toMatchObject({ next_attempt_at: now.toISOString() });
    const delivered = decideAttempt(ctx(1), { outcome: 'delivered', durationMs: 1 });
    expect(retriedAt(delivered, now)).toBe(delivered);
  });

  it('gives up the retry of an attempt whose rule was deleted meanwhile, keeping what the attempt was answered', () => {
    const later = decideAttempt(ctx(1), { outcome: 'retry', reason: 'HTTP 503', statusCode: 503, durationMs: 1 });
    const given = givenUpAfter(later, RULE_DELETED, at);
    expect(given).toMatchObject({ status: 'dead_lettered', nextAttemptAt: null, disableRule: false });
    expect(given.events.map((e) => [e.type, 'reason' in e.data ? e.data.reason : null])).toEqual([
      ['DeliveryAttempted', null],
      ['DeliveryFailed', 'HTTP 503'],
      ['DeliveryDeadLettered', RULE_DELETED],
    ]);
    expect(given.events.find((e) => e.type === 'DeliveryFailed')?.data).toMatchObject({ next_attempt_at: null, attempt: 1 });
    const delivered = decideAttempt(ctx(1), { outcome: 'delivered', durationMs: 1 });
    expect(givenUpAfter(delivered, RULE_DELETED, at)).toBe(delivered);
  });

  it('numbers the dead letter of a delivery given up unattempted after its last attempt, or after the one its replay announced', () => {
    const delivery = { itemId: 'i', deliveryId: 'msg_1', ruleId: 'r' };
    const numberOf = (attempts: number, earlierAttempts: number) =>
      deadLetterUnattempted({ ...delivery, attempts, earlierAttempts }, RULE_DELETED, at).data.attempt;
    expect(numberOf(0, 0)).toBe(0);
    expect(numberOf(2, 0)).toBe(2);
    // Replayed after 4 attempts, not tried since: its DeliveryReplayed announced attempt 5.
    expect(numberOf(4, 4)).toBe(5);
    expect(numberOf(5, 4)).toBe(5);
  });

  it('dead-letters when the schedule is exhausted, on a permanent rejection, and disables the rule on 410', () => {
    const exhausted = decideAttempt(ctx(3), { outcome: 'retry', reason: 'timeout', durationMs: 1 });
    expect(exhausted.status).toBe('dead_lettered');
    expect(exhausted.events.map((e) => e.type)).toEqual(['DeliveryAttempted', 'DeliveryFailed', 'DeliveryDeadLettered']);
    expect(decideAttempt(ctx(1), { outcome: 'rejected', reason: '400', durationMs: 1 }).status).toBe('dead_lettered');
    const gone = decideAttempt(ctx(1), { outcome: 'gone', reason: '410', statusCode: 410, durationMs: 1 });
    expect(gone).toMatchObject({ status: 'dead_lettered', disableRule: true });
  });

  it('says why a delivery is dead-lettered: the last failure, and after how many attempts when retries ran out', () => {
    const reasons = (decision: ReturnType<typeof decideAttempt>) =>
      decision.events.flatMap((e) => (e.type === 'DeliveryFailed' || e.type === 'DeliveryDeadLettered' ? [e.data.reason] : []));
    expect(reasons(decideAttempt(ctx(3), { outcome: 'retry', reason: 'HTTP 500', durationMs: 1 }))).toEqual([
      'HTTP 500 (gave up after 3 attempts)',
      'HTTP 500 (gave up after 3 attempts)',
    ]);
    expect(reasons(decideAttempt(ctx(1), { outcome: 'rejected', reason: 'HTTP 400', durationMs: 1 }))).toEqual(['HTTP 400', 'HTTP 400']);
    const { random: _random, ...interrupted } = ctx(3);
    expect(reasons(decideInterrupted(interrupted))).toEqual([
      'interrupted: the process stopped while the attempt was in flight (gave up after 3 attempts)',
      'interrupted: the process stopped while the attempt was in flight (gave up after 3 attempts)',
    ]);
    expect(reasons(decideInterrupted({ ...interrupted, attempt: 2 }))).toEqual([
      'interrupted: the process stopped while the attempt was in flight',
    ]);
  });

  it('starts the schedule over after a replay of a dead letter, numbering attempts on from the earlier ones', () => {
    const retry = { outcome: 'retry', reason: 'HTTP 503', durationMs: 1 } as const;
    // Dead-lettered after attempt 3, then replayed: attempts 4 and 5 wait as 1 and 2 did.
    expect(decideAttempt(ctx(4, 0.5, 3), retry)).toMatchObject({ status: 'pending', nextAttemptAt: '2026-11-24T10:00:05.000Z' });
    expect(decideAttempt(ctx(5, 0.5, 3), retry)).toMatchObject({ status: 'pending', nextAttemptAt: '2026-11-24T10:05:00.000Z' });
    const spent = decideAttempt(ctx(6, 0.5, 3), retry);
    expect(spent.status).toBe('dead_lettered');
    expect(spent.events.map((e) => e.data.attempt)).toEqual([6, 6, 6]);
    expect(spent.events.at(-1)).toMatchObject({ data: { reason: 'HTTP 503 (gave up after 6 attempts, 3 since it was replayed)' } });
    const { random: _random, ...interrupted } = ctx(5, 0.5, 3);
    expect(decideInterrupted(interrupted).status).toBe('pending');
    expect(decideInterrupted({ ...interrupted, attempt: 6 }).status).toBe('dead_lettered');
  });

  it('reads the retry schedule from a comma list of seconds', () => {
    expect(parseRetrySchedule('1, 2,3')).toEqual([1, 2, 3]);
    expect(parseRetrySchedule(undefined)).toHaveLength(7);
    expect(() => parseRetrySchedule('1,x')).toThrow(/comma list/);
  });

  it('refuses an empty entry and a delay beyond 30 days, which no attempt could be scheduled with', () => {
    expect(parseRetrySchedule('0, 2592000')).toEqual([0, 2_592_000]);
    for (const text of ['5,,60', '5,', '1e13', '2592001']) expect(() => parseRetrySchedule(text), text).toThrow(/WEBHOOK_RETRY_SCHEDULE/);
  });
});
