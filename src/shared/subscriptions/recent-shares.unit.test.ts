import { describe, expect, it } from 'vitest';
import { recentShares } from './recent-shares.js';

const at = (start = 0) => {
  const clock = { now: start };
  return { clock, shares: recentShares({ halfLifeMs: 1000, now: () => clock.now }) };
};

describe('recent shares of the load', () => {
  it('never calls a source light while it sends alone', () => {
    const { shares } = at();
    shares.add('big', 5000);
    expect(shares.isLight('big')).toBe(false);
  });

  it('calls a source light that sends a sliver next to a flood, and a source new to it, but not the flood', () => {
    const { shares } = at();
    shares.add('big', 5000);
    shares.add('small', 10);
    expect(shares.isLight('small')).toBe(true);
    expect(shares.isLight('newcomer')).toBe(true);
    expect(shares.isLight('big')).toBe(false);
  });

  it('calls none of many sources that send alike light', () => {
    const { shares } = at();
    for (let i = 0; i < 50; i++) shares.add(`s-${i}`, 100);
    expect(shares.isLight('s-7')).toBe(false);
  });

  it('holds a source light only below half of an even share', () => {
    const { shares } = at();
    // Three sources: an even share is a third of the load, half of it a sixth.
    shares.add('a', 600);
    shares.add('b', 200);
    shares.add('c', 150);
    expect(shares.isLight('b')).toBe(false);
    expect(shares.isLight('c')).toBe(true);
  });

  it('lets what goes ahead as light take at most half of the load', () => {
    const { shares } = at();
    shares.add('big', 100);
    // Each a new source (every item of another partner): light until they have had half.
    let ahead = 0;
    for (let i = 0; i < 1000 && shares.isLight(`p-${i}`); i++) {
      shares.add(`p-${i}`, 1, true);
      ahead += 1;
    }
    expect(ahead).toBe(100);
  });

  it('forgets a flood that stopped: a source alone again is not light, and counts decay by half a second', () => {
    const { clock, shares } = at();
    shares.add('big', 1000);
    shares.add('small', 10);
    expect(shares.isLight('small')).toBe(true);
    clock.now += 15_000;
    // 1000 / 2^15 is below half an event: the flood is forgotten, and small has gone quiet too.
    shares.add('small', 10);
    expect(shares.isLight('small')).toBe(false);
    // Decayed, not reset: two half-lives leave a quarter.
    shares.add('big', 40);
    clock.now += 2000;
    shares.add('other', 9);
    expect(shares.isLight('other')).toBe(false);
    expect(shares.isLight('small')).toBe(true);
  });
});
