import { expect, it } from 'vitest';
import { makeRoom } from './bounded-map.js';

it('lets the oldest entries go to make room for one more, and leaves a cache below its limit alone', () => {
  const seen = new Set(['a', 'b', 'c']);
  makeRoom(seen, 4);
  expect([...seen]).toEqual(['a', 'b', 'c']);
  makeRoom(seen, 3);
  expect([...seen]).toEqual(['b', 'c']);
  const cache = new Map([
    ['a', 1],
    ['b', 2],
    ['c', 3],
  ]);
  makeRoom(cache, 1);
  expect(cache.size).toBe(0);
});
