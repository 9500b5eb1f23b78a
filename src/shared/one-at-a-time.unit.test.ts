import { describe, expect, it } from 'vitest';
import { oneAtATime } from './one-at-a-time.js';

describe('oneAtATime', () => {
  it('runs the work of one key in the order asked, never two at once, past a failure; other keys meanwhile', async () => {
    const serial = oneAtATime();
    const seen: string[] = [];
    let running = 0;
    const step =
      (name: string, fail = false) =>
      async () => {
        running += 1;
        expect(running).toBe(1);
        seen.push(`${name}:start`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        seen.push(`${name}:end`);
        running -= 1;
        if (fail) throw new Error(name);
        return name;
      };
    const results = await Promise.allSettled([serial('k', step('a')), serial('k', step('b', true)), serial('k', step('c'))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(seen).toEqual(['a:start', 'a:end', 'b:start', 'b:end', 'c:start', 'c:end']);
    const order: string[] = [];
    const slow = serial('x', async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      order.push('x');
    });
    await serial('y', async () => void order.push('y'));
    await slow;
    expect(order).toEqual(['y', 'x']);
  });
});
