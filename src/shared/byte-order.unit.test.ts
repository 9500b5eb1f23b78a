import { describe, expect, it } from 'vitest';
import { compareBytes } from './byte-order.js';

describe('compareBytes', () => {
  it('orders by UTF-8 bytes, where UTF-16 code units put an emoji before a private-use character', () => {
    const names = ['\u{1F600} smile', '\uE000 private', 'b', 'a'];
    expect([...names].sort()).toEqual(['a', 'b', '\u{1F600} smile', '\uE000 private']);
    expect([...names].sort(compareBytes)).toEqual(['a', 'b', '\uE000 private', '\u{1F600} smile']);
    expect(compareBytes('same', 'same')).toBe(0);
  });
});
