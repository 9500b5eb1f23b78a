import { afterEach, describe, expect, it, vi } from 'vitest';
import { OverloadedError } from '../event-store/event-store.js';
import { flowControl } from './flow-control.js';

/** Whether the promise has settled by now (after pending callbacks ran). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

describe('flow control', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('admits at once while the backlog is within the limit', async () => {
    const flow = flowControl({ backlog: () => 100, holdAbove: 100, resumeAt: 50 });
    expect(await settled(flow.admit())).toBe(true);
    expect(flow.waiting).toBe(0);
  });

  it('holds callers above the limit and lets them go once the backlog is down to the resume mark', async () => {
    vi.useFakeTimers();
    let backlog = 101;
    const flow = flowControl({ backlog: () => backlog, holdAbove: 100, resumeAt: 50, recheckMs: 5, maxWaitMs: 10_000 });
    const held = flow.admit();
    expect(flow.waiting).toBe(1);
    // Between the marks it keeps holding: the callers it lets go arrive together.
    backlog = 80;
    await vi.advanceTimersByTimeAsync(20);
    expect(await settled(held)).toBe(false);
    expect(await settled(flow.admit())).toBe(false);
    backlog = 50;
    await vi.advanceTimersByTimeAsync(5);
    expect(await settled(held)).toBe(true);
    expect(flow.waiting).toBe(0);
    // Open again: under the limit nobody waits, even above the resume mark.
    backlog = 90;
    expect(await settled(flow.admit())).toBe(true);
  });

  it('lets a caller go ahead after the longest wait, however far behind the subscribers are, and says how long it waited', async () => {
    vi.useFakeTimers();
    const waited: number[] = [];
    const flow = flowControl({
      backlog: () => 1_000_000,
      holdAbove: 100,
      resumeAt: 50,
      recheckMs: 5,
      maxWaitMs: 200,
      onWaited: (ms) => waited.push(ms),
    });
    const held = flow.admit();
    await vi.advanceTimersByTimeAsync(150);
    expect(await settled(held)).toBe(false);
    await vi.advanceTimersByTimeAsync(60);
    expect(await settled(held)).toBe(true);
    expect(waited).toEqual([200]);
  });

  it('refuses a caller as overloaded once the most it keeps waiting already wait', async () => {
    const flow = flowControl({ backlog: () => 1000, holdAbove: 100, resumeAt: 50, maxWaiting: 2 });
    void flow.admit();
    void flow.admit();
    await expect(flow.admit()).rejects.toBeInstanceOf(OverloadedError);
    flow.close();
  });

  it('lets every waiting caller go when it closes, and holds none after', async () => {
    const flow = flowControl({ backlog: () => 1000, holdAbove: 100, resumeAt: 50 });
    const waiting = [flow.admit(), flow.admit()];
    flow.close();
    await Promise.all(waiting);
    expect(await settled(flow.admit())).toBe(true);
  });

  it('while it holds, lets a source that sends a sliver of the load go ahead and keeps the flood waiting', async () => {
    vi.useFakeTimers();
    let backlog = 0;
    const flow = flowControl({ backlog: () => backlog, holdAbove: 100, resumeAt: 50, recheckMs: 5, maxWaitMs: 10_000 });
    await flow.admit('flood', 100);
    await flow.admit('flood', 100);
    backlog = 500;
    const flooding = flow.admit('flood', 100);
    expect(await settled(flooding)).toBe(false);
    expect(await settled(flow.admit('quiet', 1))).toBe(true);
    // Appends that name no source are held as before.
    const unnamed = flow.admit(undefined, 1);
    expect(await settled(unnamed)).toBe(false);
    expect(flow.waiting).toBe(2);
    backlog = 50;
    await vi.advanceTimersByTimeAsync(5);
    expect(await settled(flooding)).toBe(true);
    expect(await settled(unnamed)).toBe(true);
  });

  it('holds a source that sends alone, however little', async () => {
    vi.useFakeTimers();
    const flow = flowControl({ backlog: () => 500, holdAbove: 100, resumeAt: 50, recheckMs: 5, maxWaitMs: 10_000 });
    expect(await settled(flow.admit('only', 1))).toBe(false);
    flow.close();
  });

  it('counts a held caller as it arrives: a flood that waits stays the flood however long it waits', async () => {
    vi.useFakeTimers();
    const flow = flowControl({ backlog: () => 500, holdAbove: 100, resumeAt: 50, recheckMs: 5, maxWaitMs: 60_000 });
    // Held from the first: its load counts all the same, and a source that sends little goes ahead of it.
    const held = [flow.admit('flood', 100), flow.admit('flood', 100)];
    await vi.advanceTimersByTimeAsync(5_000);
    const more = flow.admit('flood', 100);
    expect(await settled(flow.admit('quiet', 1))).toBe(true);
    expect(await settled(Promise.all([...held, more]))).toBe(false);
    flow.close();
  });
});
