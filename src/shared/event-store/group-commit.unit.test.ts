import { describe, expect, it } from 'vitest';
import { coalescedSync, groupCommitter, type GroupCommitOptions } from './group-commit.js';

/** A committer of numbers that answers each with itself, synced at once, unless the test says otherwise. */
const numbers = (options: Partial<GroupCommitOptions<number, number>> = {}) =>
  groupCommitter<number, number>({
    commit: async (requests) => requests,
    durable: async () => undefined,
    maxBatch: 100,
    maxQueued: 1000,
    overloaded: () => new Error('full'),
    ...options,
  });

describe('groupCommitter', () => {
  it('commits requests that arrive together in one batch and answers only after the sync', async () => {
    const batches: number[][] = [];
    let synced = 0;
    const committer = numbers({
      commit: async (requests) => {
        batches.push(requests);
        return requests.map((r) => r * 10);
      },
      durable: async () => {
        synced += 1;
      },
    });
    const results = await Promise.all([1, 2, 3].map((n) => committer.submit(n)));
    expect(results).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
    expect(synced).toBe(1);
  });

  it('acknowledges nothing of a batch whose sync failed', async () => {
    const committer = numbers({
      durable: async () => {
        throw new Error('EIO');
      },
    });
    const outcomes = await Promise.allSettled([committer.submit(1), committer.submit(2)]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
  });

  it('splits a burst into batches of at most maxBatch', async () => {
    const sizes: number[] = [];
    const committer = numbers({
      commit: async (requests) => {
        sizes.push(requests.length);
        return requests;
      },
      maxBatch: 4,
    });
    await Promise.all(Array.from({ length: 10 }, (_, i) => committer.submit(i)));
    expect(sizes).toEqual([4, 4, 2]);
  });

  it('answers a committed batch as committed when its observer throws, and commits nothing twice', async () => {
    const batches: number[][] = [];
    const committer = numbers({
      commit: async (requests) => {
        batches.push(requests);
        return requests;
      },
      onBatch: () => {
        throw new Error('a metric refused its labels');
      },
    });
    expect(await Promise.all([1, 2].map((n) => committer.submit(n)))).toEqual([1, 2]);
    expect(batches).toEqual([[1, 2]]);
  });
});

describe('coalescedSync', () => {
  it('lets callers that arrive during a sync share the next one', async () => {
    let calls = 0;
    let release: () => void = () => undefined;
    const sync = coalescedSync(
      () =>
        new Promise<void>((resolve) => {
          calls += 1;
          release = resolve;
        }),
    );
    const first = sync();
    const joiners = [sync(), sync(), sync()];
    expect(calls).toBe(1);
    release();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(2);
    release();
    await Promise.all(joiners);
    expect(calls).toBe(2);
  });
});
