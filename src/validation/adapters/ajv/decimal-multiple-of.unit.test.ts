import { describe, expect, it } from 'vitest';
import { isMultipleOf } from './decimal-multiple-of.js';

describe('isMultipleOf', () => {
  it('takes amounts of money as multiples of a cent, where a float quotient does not', () => {
    for (const amount of [1.13, 19.99, 0.07, 4.35, 1e12 + 0.01, 0, -2.5]) expect(isMultipleOf(amount, 0.01), String(amount)).toBe(true);
    expect(19.99 / 0.01).not.toBe(Math.round(19.99 / 0.01));
  });

  it('refuses what is not a multiple, in any notation', () => {
    expect(isMultipleOf(1.005, 0.01)).toBe(false);
    expect(isMultipleOf(7, 2)).toBe(false);
    expect(isMultipleOf(1e-7, 1e-6)).toBe(false);
    expect(isMultipleOf(3e21, 7)).toBe(false);
  });

  it('reads exponents, large and small', () => {
    expect(isMultipleOf(1e21, 5)).toBe(true);
    expect(isMultipleOf(1.5e-7, 5e-8)).toBe(true);
    expect(isMultipleOf(6, 1.5)).toBe(true);
    expect(isMultipleOf(Number.MAX_VALUE, 1)).toBe(true);
  });
});
