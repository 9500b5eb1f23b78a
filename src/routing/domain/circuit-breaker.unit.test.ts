import { describe, expect, it } from 'vitest';
import { admit, afterAttempt, closedBreaker, parseBreakerPolicy, probing } from './circuit-breaker.js';

const policy = { threshold: 3, cooldownMs: 1000 };
const at = new Date('2026-12-02T10:00:00.000Z');
const later = (ms: number) => new Date(at.getTime() + ms);

describe('circuit breaker', () => {
  it('opens after threshold consecutive failures, for the cool-down', () => {
    const once = afterAttempt(closedBreaker, 'down', at, policy);
    const twice = afterAttempt(once, 'down', at, policy);
    expect(twice).toMatchObject({ state: 'closed', failures: 2 });
    const open = afterAttempt(twice, 'down', at, policy);
    expect(open).toEqual({ state: 'open', failures: 3, nextProbeAt: '2026-12-02T10:00:01.000Z', openedAt: at.toISOString() });
  });

  it('resets the count on success', () => {
    expect(afterAttempt(afterAttempt(closedBreaker, 'down', at, policy), 'up', at, policy)).toEqual(closedBreaker);
  });

  it('never lets in-flight attempts plus failures exceed the threshold while closed', () => {
    expect(admit(closedBreaker, 2, at, policy)).toBe('send');
    expect(admit(closedBreaker, 3, at, policy)).toBe('hold');
    expect(admit({ ...closedBreaker, failures: 2 }, 1, at, policy)).toBe('hold');
  });

  it('holds during the cool-down, then lets exactly one probe through', () => {
    const open = afterAttempt({ ...closedBreaker, failures: 2 }, 'down', at, policy);
    expect(admit(open, 0, later(999), policy)).toBe('hold');
    expect(admit(open, 0, later(1000), policy)).toBe('probe');
    const half = probing(open, later(5000));
    expect(admit(half, 1, later(1001), policy)).toBe('hold');
    expect(admit(half, 0, later(1001), policy)).toBe('hold');
    // A probe presumed lost (its lease ran out) may be replaced.
    expect(admit(half, 0, later(5000), policy)).toBe('probe');
  });

  it('closes on a successful probe and reopens on a failed one', () => {
    const half = probing(afterAttempt({ ...closedBreaker, failures: 2 }, 'down', at, policy), later(5000));
    expect(afterAttempt(half, 'up', later(1500), policy)).toEqual(closedBreaker);
    expect(afterAttempt(half, 'down', later(1500), policy)).toMatchObject({
      state: 'open',
      nextProbeAt: '2026-12-02T10:00:02.500Z',
      openedAt: at.toISOString(),
    });
  });

  it('sends one probe for failures counted against a threshold since lowered, rather than holding for ever', () => {
    const counted = { ...closedBreaker, failures: 5 };
    expect(admit(counted, 0, at, policy)).toBe('probe');
    expect(admit(counted, 1, at, policy)).toBe('hold');
  });

  it('leaves a destination that asked for quiet alone for as long as it asked', () => {
    // One failure, far below the threshold: Retry-After alone opens the circuit, for the time asked.
    expect(afterAttempt(closedBreaker, 'down', at, policy, 120_000)).toEqual({
      state: 'open',
      failures: 1,
      nextProbeAt: '2026-12-02T10:02:00.000Z',
      openedAt: at.toISOString(),
    });
    expect(afterAttempt(closedBreaker, 'down', at, policy, 200)).toMatchObject({ nextProbeAt: '2026-12-02T10:00:00.200Z' });
    // Failures that open it anyway keep at least the cool-down.
    expect(afterAttempt({ ...closedBreaker, failures: 2 }, 'down', at, policy, 200)).toMatchObject({
      nextProbeAt: '2026-12-02T10:00:01.000Z',
    });
  });

  it('reads its policy from the environment with defaults', () => {
    expect(parseBreakerPolicy(undefined, undefined)).toEqual({ threshold: 10, cooldownMs: 30_000 });
    expect(parseBreakerPolicy('3', '0.5')).toEqual({ threshold: 3, cooldownMs: 500 });
    expect(() => parseBreakerPolicy('0', undefined)).toThrow(/THRESHOLD/);
    expect(() => parseBreakerPolicy('20000', undefined)).toThrow(/from 1 to 10000/);
    expect(() => parseBreakerPolicy(undefined, '-1')).toThrow(/COOLDOWN/);
  });
});
