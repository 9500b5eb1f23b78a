import { describe, expect, it } from 'vitest';
import { apportioned, getConversionAttribution, rounded } from './queries.js';
import type { AttributionViews } from './ports.js';

describe('attributed values as answered', () => {
  it('keep six decimals, or the decimals a double holds beside a large value, so databases summing in another order agree', () => {
    expect(rounded(133.3333333333)).toBe(133.333333);
    expect(rounded(0.66666666)).toBe(0.666667);
    // The same sum, added in two orders on SQLite and PostgreSQL.
    expect(rounded(1000000000066.6602)).toBe(rounded(1000000000066.6599));
    expect(rounded(1000000000066.6602)).toBe(1000000000066.66);
    expect(rounded(1e15 + 0.4)).toBe(1e15);
    expect(rounded(-2.0000004)).toBe(-2);
  });
});

describe('credits of one conversion', () => {
  const sum = (parts: number[]) => rounded(parts.reduce((a, b) => a + b, 0));

  it('add up to what they share, each within a unit of the last decimal of its exact part', () => {
    expect(apportioned([100 / 3, 100 / 3, 100 / 3])).toEqual([33.333334, 33.333333, 33.333333]);
    expect(apportioned([1 / 3, 1 / 3, 1 / 3])).toEqual([0.333334, 0.333333, 0.333333]);
    // Position-based over 50 touches: 40 % at each end, the rest shared by 48.
    const middle = 20 / 48;
    const positions = [40, ...Array.from({ length: 48 }, () => middle), 40];
    const shown = apportioned(positions);
    expect(sum(shown)).toBe(100);
    for (const [i, part] of shown.entries()) expect(Math.abs(part - (positions[i] ?? 0))).toBeLessThanOrEqual(0.000001);
    // The unit goes to the part the rounding cut most, not always to the first.
    expect(apportioned([0.1000004, 0.2999996, 0.6])).toEqual([0.1, 0.3, 0.6]);
    expect(apportioned([10, 20])).toEqual([10, 20]);
    expect(apportioned([])).toEqual([]);
  });

  it('keep the precision of the sum near 10^12, as rounded does', () => {
    const shown = apportioned([1e12 / 3, 1e12 / 3, 1e12 / 3]);
    expect(sum(shown)).toBe(1e12);
  });
});

describe('a conversion with its credits', () => {
  it('shows its value as its credits are rounded, so that they add up to it', async () => {
    const views = {
      conversion: async () => ({ id: 'c1', visitor: { appId: null, id: 'v1' }, value: 1.0000005, occurredAt: '2026-11-01T00:00:00.000Z' }),
      creditsOf: async () => [
        { model: 'first_touch', share: 1, value: 1.0000005 },
        { model: 'linear', share: 0.5, value: 0.50000025 },
        { model: 'linear', share: 0.5, value: 0.50000025 },
      ],
    } as unknown as AttributionViews;
    const { conversion, credits } = await getConversionAttribution(views)('c1');
    expect(conversion.value).toBe(1.000001);
    for (const model of ['first_touch', 'linear'] as const)
      expect(rounded(credits[model].reduce((sum, credit) => sum + credit.value, 0))).toBe(conversion.value);
  });
});
