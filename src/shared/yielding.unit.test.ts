import { describe, expect, it } from 'vitest';
import { mapYielding, ownTurn } from './yielding.js';

describe('mapYielding', () => {
  it('maps in order, letting other work run once a slice of the thread has gone', async () => {
    let ran = false;
    const mapped = mapYielding([1, 2, 3], (n) => n * 2, 0);
    setImmediate(() => (ran = true));
    const ranBefore = await mapped.then((values) => ({ values, ran }));
    expect(ranBefore).toEqual({ values: [2, 4, 6], ran: true });
  });
});

describe('ownTurn', () => {
  it('lets callers that pause at once go on one per turn of the event loop, in the order they paused', async () => {
    // A turn counter: an immediate that schedules the next, as the loop's checks come round.
    let turn = 0;
    let counting = true;
    const count = () => {
      turn++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    const wentOnAt: Array<[number, number]> = [];
    await Promise.all(
      [1, 2, 3, 4].map(async (caller) => {
        await ownTurn();
        wentOnAt.push([caller, turn]);
      }),
    );
    counting = false;
    expect(wentOnAt.map(([caller]) => caller)).toEqual([1, 2, 3, 4]);
    const turns = wentOnAt.map(([, at]) => at);
    expect(new Set(turns).size).toBe(4);
  });
});
