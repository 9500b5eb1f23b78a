import { describe, expect, it } from 'vitest';
import { rounded } from './queries.js';

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
