import { describe, expect, it } from 'vitest';
import { mapYielding } from './yielding.js';

describe('mapYielding', () => {
  it('maps in order, letting other work run once a slice of the thread has gone', async () => {
    let ran = false;
    const mapped = mapYielding([1, 2, 3], (n) => n * 2, 0);
    setImmediate(() => (ran = true));
    const ranBefore = await mapped.then((values) => ({ values, ran }));
    expect(ranBefore).toEqual({ values: [2, 4, 6], ran: true });
  });
});
