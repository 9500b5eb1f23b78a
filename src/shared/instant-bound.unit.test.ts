import { describe, expect, it } from 'vitest';
import { instantBound, isBefore } from './instant-bound.js';

describe('a time bound', () => {
  it('stays within the years whose instants sort as text', () => {
    expect(instantBound('9999-12-31T23:59:59-23:59', 'down')).toBe('9999-12-31T23:59:59.999Z');
    expect(instantBound('0000-01-01T00:00:00+01:00', 'up')).toBe('0000-01-01T00:00:00.000Z');
    expect(instantBound('2026-11-24T11:00:00+01:00', 'up')).toBe('2026-11-24T10:00:00.000Z');
  });

  it('rounds a fraction of a millisecond up or drops it, as asked', () => {
    expect(instantBound('2026-11-24T10:00:00.5581Z', 'up')).toBe('2026-11-24T10:00:00.559Z');
    expect(instantBound('2026-11-24T10:00:00.5581Z', 'down')).toBe('2026-11-24T10:00:00.558Z');
    expect(instantBound('2026-11-24T10:00:00.558000Z', 'up')).toBe('2026-11-24T10:00:00.558Z');
  });

  it('compares to the last digit given', () => {
    expect(isBefore('2026-11-24T10:00:00.5581Z', '2026-11-24T10:00:00.5589Z')).toBe(true);
    expect(isBefore('2026-11-24T10:00:00.5589Z', '2026-11-24T10:00:00.5581Z')).toBe(false);
    expect(isBefore('2026-11-24T10:00:00.558Z', '2026-11-24T10:00:00.5580Z')).toBe(false);
    expect(isBefore('2026-11-24T10:00:00Z', '2026-11-24T11:00:00+01:00')).toBe(false);
  });
});
