import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../errors.js';
import { workInFlight } from './work-in-flight.js';

describe('work in flight', () => {
  it('when closing, refuses what begins after and waits for what began before', async () => {
    const work = workInFlight();
    let finish = () => {};
    const before = work.run(() => new Promise<string>((resolve) => (finish = () => resolve('done'))));
    let closed = false;
    const closing = work.close().then(() => (closed = true));
    await expect(work.run(async () => 'late')).rejects.toBeInstanceOf(UnavailableError);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(closed).toBe(false);
    finish();
    await expect(before).resolves.toBe('done');
    await closing;
    expect(closed).toBe(true);
  });

  it('counts work that failed as ended', async () => {
    const work = workInFlight();
    await expect(work.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await work.close();
  });
});
