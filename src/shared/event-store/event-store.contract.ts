import { describe, expect, it } from 'vitest';
import type { Kysely } from 'kysely';
import { UnavailableError } from '../errors.js';
import type { RecordedEvent } from '../events.js';
import { ConcurrencyError, OverloadedError, type EventStore, type InlineProjection } from './event-store.js';

export interface EventStoreFixture {
  readonly store: EventStore;
  /** Extra tables visible to inline projections and transactions, for the tests below. */
  readonly db: Kysely<object>;
  /**
   * A capability flag, like Kysely's dialect flags: whether two `store.transaction`s can be open at once.
   * SQLite runs one writer at a time, so interleavings of concurrent transactions cannot happen there.
   */
  readonly concurrentTransactions?: boolean;
  /**
   * Whether `store.transaction` runs here, and `close()` closes the store (false where both happen in
   * another thread: transactions as procedures, closing through the storage thread's stop).
   */
  readonly transactions?: boolean;
  close(): Promise<void>;
}

export interface FixtureOptions {
  readonly inlineProjections?: readonly InlineProjection[];
  readonly maxQueued?: number;
}

const event = (type: string, n: number) => ({ type, data: { n } });

function signal(): { promise: Promise<void>; fire(): void } {
  let fire = () => {};
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

/** Reads the log from the start until it holds `count` events (or a few seconds passed). */
async function readSettled(store: EventStore, count: number): Promise<RecordedEvent[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const all = await store.readAll({ after: 0, limit: count + 1000 });
    if (all.length >= count || Date.now() > deadline) return all;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Reads everything readable now after `after`, in batches, the way a subscriber does. */
async function readOn(store: EventStore, after: number, seen: string[]): Promise<number> {
  for (;;) {
    const batch = await store.readAll({ after, limit: 10 });
    if (batch.length === 0) return after;
    seen.push(...batch.map((e) => e.streamId));
    after = batch.at(-1)?.position ?? after;
  }
}

/** One behavioural suite for every EventStore adapter. */
export function eventStoreContract(name: string, create: (options?: FixtureOptions) => Promise<EventStoreFixture>): void {
  const withStore = async (test: (f: EventStoreFixture) => Promise<void>, options?: FixtureOptions) => {
    const fixture = await create(options);
    try {
      await test(fixture);
    } finally {
      await fixture.close();
    }
  };

  describe(`EventStore contract: ${name}`, () => {
    it('appends a new stream with versions from 1 and increasing global positions', () =>
      withStore(async ({ store }) => {
        const result = await store.append({ streamId: 's-1', events: [event('A', 1), event('B', 2)], expectedVersion: 'no_stream' });
        expect(result.nextExpectedVersion).toBe(2);
        expect(result.events.map((e) => e.streamVersion)).toEqual([1, 2]);
        const [first, second] = result.events;
        expect(second?.position).toBe((first?.position ?? 0) + 1);
        const stream = await store.readStream('s-1');
        expect(stream.map((e) => [e.type, e.data])).toEqual([
          ['A', { n: 1 }],
          ['B', { n: 2 }],
        ]);
        expect(stream[0]?.eventId).toMatch(/^[0-9a-f-]{36}$/);
      }));

    it('reads many streams at once, each in version order, past one statement’s worth of ids, an unknown one empty', () =>
      withStore(async ({ store }) => {
        const ids = Array.from({ length: 620 }, (_, i) => `many-${i}`);
        await Promise.all(ids.map((streamId, i) => store.append({ streamId, events: [event('A', i), event('B', i + 1)] })));
        const streams = await store.readStreams([...ids.slice().reverse(), 'never-written', 'many-3']);
        expect(streams.size).toBe(621);
        expect(streams.get('never-written')).toEqual([]);
        expect(streams.get('many-600')?.map((e) => [e.type, e.data, e.streamVersion])).toEqual([
          ['A', { n: 600 }, 1],
          ['B', { n: 601 }, 2],
        ]);
        expect(ids.every((id) => streams.get(id)?.length === 2)).toBe(true);
      }));

    it('stores every event with the version of its data, 1 unless its writer names one, as every reader sees it', () =>
      withStore(async ({ store }) => {
        const appended = await store.append({
          streamId: 's-meta',
          events: [event('A', 1), { type: 'B', data: { n: 2 }, metadata: { schema_version: 2, correlationId: 'c-1' } }],
        });
        const expected = [{ schema_version: 1 }, { schema_version: 2, correlationId: 'c-1' }];
        expect(appended.events.map((e) => e.metadata)).toEqual(expected);
        expect((await store.readStream('s-meta')).map((e) => e.metadata)).toEqual(expected);
        const all = await store.readAll({ after: 0, limit: 100 });
        expect(all.filter((e) => e.streamId === 's-meta').map((e) => e.metadata)).toEqual(expected);
      }));

    it('rejects a stale expected version and writes nothing', () =>
      withStore(async ({ store }) => {
        await store.append({ streamId: 's-1', events: [event('A', 1)], expectedVersion: 'no_stream' });
        await expect(store.append({ streamId: 's-1', events: [event('B', 2)], expectedVersion: 'no_stream' })).rejects.toBeInstanceOf(
          ConcurrencyError,
        );
        await expect(store.append({ streamId: 's-1', events: [event('B', 2)], expectedVersion: 5 })).rejects.toBeInstanceOf(
          ConcurrencyError,
        );
        expect((await store.readStream('s-1')).length).toBe(1);
        const next = await store.append({ streamId: 's-1', events: [event('C', 3)], expectedVersion: 1 });
        expect(next.nextExpectedVersion).toBe(2);
      }));

    it('fails only the conflicting append when several are committed together', () =>
      withStore(async ({ store }) => {
        const outcomes = await Promise.allSettled([
          store.append({ streamId: 'same', events: [event('A', 1)], expectedVersion: 'no_stream' }),
          store.append({ streamId: 'same', events: [event('A', 2)], expectedVersion: 'no_stream' }),
          store.append({ streamId: 'other', events: [event('A', 3)], expectedVersion: 'no_stream' }),
        ]);
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect((await store.readStream('same')).map((e) => e.data)).toEqual([{ n: 1 }]);
      }));

    it('acknowledges many concurrent appends, each readable, in one gap-free order', () =>
      withStore(async ({ store }) => {
        const results = await Promise.all(
          Array.from({ length: 500 }, (_, i) =>
            store.append({ streamId: `c-${i}`, events: [event('A', i)], expectedVersion: 'no_stream' }),
          ),
        );
        const positions = results.map((r) => r.events[0]?.position ?? 0);
        const all = await readSettled(store, 500);
        expect(all.map((e) => e.position)).toEqual([...positions].sort((a, b) => a - b));
        for (let i = 1; i < all.length; i++) expect(all[i]?.position).toBe((all[i - 1]?.position ?? 0) + 1);
        expect(await store.headPosition()).toBe(Math.max(...positions));
      }));

    it('reads everything after a position in batches', () =>
      withStore(async ({ store }) => {
        for (let i = 0; i < 25; i++) await store.append({ streamId: `b-${i}`, events: [event('A', i)] });
        await readSettled(store, 25);
        const seen: number[] = [];
        let after = 0;
        for (;;) {
          const batch = await store.readAll({ after, limit: 10 });
          if (batch.length === 0) break;
          seen.push(...batch.map((e) => (e.data as { n: number }).n));
          after = batch.at(-1)?.position ?? after;
        }
        expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i));
      }));

    it('never lets a reader skip an append that commits while it reads', () =>
      withStore(async ({ store }) => {
        const writes = Promise.all(Array.from({ length: 300 }, (_, i) => store.append({ streamId: `r-${i}`, events: [event('A', i)] })));
        const seen: number[] = [];
        let after = 0;
        let done = false;
        void writes.then(() => {
          done = true;
        });
        while (!done || seen.length < 300) {
          const batch = await store.readAll({ after, limit: 37 });
          seen.push(...batch.map((e) => (e.data as { n: number }).n));
          after = batch.at(-1)?.position ?? after;
          if (batch.length === 0) await new Promise((r) => setTimeout(r, 1));
        }
        expect(new Set(seen).size).toBe(300);
        expect(seen.length).toBe(300);
      }));

    it('never lets a reader skip the appends of a transaction that was open while a later append went on', (context) =>
      withStore(async ({ store, concurrentTransactions }) => {
        if (!concurrentTransactions) return context.skip('this adapter runs one transaction at a time');
        const firstAppended = signal();
        const finish = signal();
        const early = store.transaction(async (tx) => {
          await tx.append({ streamId: 'late-1', events: [event('A', 1)] });
          firstAppended.fire();
          await finish.promise;
          await tx.append({ streamId: 'late-3', events: [event('A', 3)] });
        });
        await firstAppended.promise;
        // Not awaited: an adapter may make it wait for the open transaction, which holds a smaller position.
        const later = store.append({ streamId: 'late-2', events: [event('A', 2)] });
        await new Promise((resolve) => setTimeout(resolve, 50));

        const seen: string[] = [];
        // The reader runs while the transaction holding the smallest position is still open...
        const after = await readOn(store, 0, seen);
        expect(seen).toEqual([]);
        finish.fire();
        await Promise.all([early, later]);
        // ...and carries on from its checkpoint: the open transaction's appends come first, all of them.
        for (let cursor = after, deadline = Date.now() + 5000; seen.length < 3 && Date.now() < deadline;) {
          cursor = await readOn(store, cursor, seen);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        expect(seen).toEqual(['late-1', 'late-3', 'late-2']);
      }));

    it('fails only the append that loses a race with another transaction for a stream version', (context) =>
      withStore(async ({ store, concurrentTransactions }) => {
        if (!concurrentTransactions) return context.skip('this adapter runs one transaction at a time');
        const held = signal();
        const release = signal();
        const holder = store.transaction(async (tx) => {
          await tx.append({ streamId: 'race', events: [event('A', 1)], expectedVersion: 'no_stream' });
          held.fire();
          await release.promise;
        });
        await held.promise;
        // These read the stream as empty: the other transaction has not committed its version 1 yet.
        const racing = Promise.allSettled([
          store.append({ streamId: 'race', events: [event('A', 2)], expectedVersion: 'no_stream' }),
          store.append({ streamId: 'race', events: [event('A', 3)], expectedVersion: 'any' }),
          store.append({ streamId: 'calm', events: [event('A', 4)], expectedVersion: 'no_stream' }),
        ]);
        await new Promise((resolve) => setTimeout(resolve, 50));
        release.fire();
        await holder;

        const outcomes = await racing;
        expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
        expect((outcomes[0] as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError);
        expect((await store.readStream('race')).map((e) => [e.streamVersion, e.data])).toEqual([
          [1, { n: 1 }],
          [2, { n: 3 }],
        ]);
        expect((await store.readStream('calm')).length).toBe(1);
      }));

    it('has every acknowledged append at or before its head, also one made while an older transaction was open', (context) =>
      withStore(async ({ store, concurrentTransactions }) => {
        const first = await store.append({ streamId: 'h-1', events: [event('A', 1)] });
        expect(await store.headPosition()).toBe(first.events[0]?.position);
        if (!concurrentTransactions) return context.skip('this adapter runs one transaction at a time');
        const holding = signal();
        const release = signal();
        const older = store.transaction(async (tx) => {
          await tx.append({ streamId: 'h-older', events: [event('A', 2)] });
          holding.fire();
          await release.promise;
        });
        await holding.promise;
        // Not awaited: an adapter may make it wait for the open transaction.
        const acknowledging = store.append({ streamId: 'h-2', events: [event('A', 3)] });
        await new Promise((resolve) => setTimeout(resolve, 50));
        release.fire();
        await older;
        const position = (await acknowledging).events[0]?.position;
        // The older append comes first in read order: the acknowledged one is the last.
        expect(await store.headPosition()).toBe(position);
        expect((await readSettled(store, 3)).map((e) => e.streamId)).toEqual(['h-1', 'h-older', 'h-2']);
      }));

    it('wakes listeners after a commit with the new head', () =>
      withStore(async ({ store }) => {
        const heads: number[] = [];
        const stop = store.onAppended((head) => heads.push(head));
        const result = await store.append({ streamId: 'w', events: [event('A', 1)] });
        stop();
        await store.append({ streamId: 'w', events: [event('A', 2)] });
        expect(heads).toEqual([result.events[0]?.position]);
      }));

    it('runs inline projections in the append transaction', () => {
      const seen: string[] = [];
      const projection: InlineProjection = {
        name: 'test',
        handles: ['A'],
        async apply(_db, events) {
          if (events.some((e) => (e.data as { n: number }).n === 13)) throw new Error('projection refuses 13');
          seen.push(...events.map((e) => e.streamId));
        },
      };
      return withStore(
        async ({ store }) => {
          await store.append({ streamId: 'p-1', events: [event('A', 1), event('B', 2)] });
          expect(seen).toEqual(['p-1']);
          await expect(store.append({ streamId: 'p-2', events: [event('A', 13)] })).rejects.toThrow('projection refuses 13');
          expect(await store.readStream('p-2')).toEqual([]);
        },
        { inlineProjections: [projection] },
      );
    });

    it('commits a transaction’s appends atomically and discards them when it throws', (context) =>
      withStore(async ({ store, transactions }) => {
        if (transactions === false) return context.skip('transactions run where the write connection is');
        await expect(
          store.transaction(async (tx) => {
            await tx.append({ streamId: 't-1', events: [event('A', 1)] });
            throw new Error('handler failed');
          }),
        ).rejects.toThrow('handler failed');
        expect(await store.readStream('t-1')).toEqual([]);
        await store.transaction(async (tx) => {
          await tx.append({ streamId: 't-1', events: [event('A', 1)] });
          await tx.append({ streamId: 't-2', events: [event('A', 2)] });
        });
        expect((await readSettled(store, 2)).map((e) => e.streamId)).toEqual(['t-1', 't-2']);
      }));

    it('never lets a read see an append of a transaction that is still open', (context) =>
      withStore(async ({ store, transactions }) => {
        if (transactions === false) return context.skip('transactions run where the write connection is');
        let release: () => void = () => undefined;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const open = store.transaction(async (tx) => {
          await tx.append({ streamId: 'open-1', events: [event('A', 1)] });
          await gate;
        });
        await new Promise((resolve) => setTimeout(resolve, 20)); // the transaction holds its append now
        const read = store.readAll({ after: 0, limit: 10 });
        const early = await Promise.race([read, new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 50))]);
        // A read may wait for the transaction or answer without its append, never with it.
        if (early !== 'waiting') expect(early.map((e) => e.streamId)).not.toContain('open-1');
        release();
        await open;
        await read;
        expect((await readSettled(store, 1)).map((e) => e.streamId)).toEqual(['open-1']);
      }));

    it('appends many in a transaction in their order, and refuses the lot when one has a stale version', (context) =>
      withStore(async ({ store, transactions }) => {
        if (transactions === false) return context.skip('transactions run where the write connection is');
        await store.append({ streamId: 'm-0', events: [event('A', 0)] });
        await expect(
          store.transaction((tx) =>
            tx.appendMany([
              { streamId: 'm-1', events: [event('A', 1)] },
              { streamId: 'm-0', events: [event('A', 2)], expectedVersion: 'no_stream' },
            ]),
          ),
        ).rejects.toBeInstanceOf(ConcurrencyError);
        expect(await store.readStream('m-1')).toEqual([]);
        const results = await store.transaction((tx) =>
          tx.appendMany([
            { streamId: 'm-1', events: [event('A', 1), event('B', 1)] },
            { streamId: 'm-0', events: [event('A', 2)], expectedVersion: 1 },
          ]),
        );
        expect(results.map((r) => r.nextExpectedVersion)).toEqual([2, 2]);
        const read = await readSettled(store, 4);
        expect(read.map((e) => `${e.streamId}:${e.streamVersion}`)).toEqual(['m-0:1', 'm-1:1', 'm-1:2', 'm-0:2']);
      }));

    it('undoes an isolated part of a transaction that throws, and commits the rest', (context) =>
      withStore(async ({ store, transactions }) => {
        if (transactions === false) return context.skip('transactions run where the write connection is');
        await store.transaction(async (tx) => {
          await tx.append({ streamId: 'i-1', events: [event('A', 1)] });
          await expect(
            tx.isolated(async () => {
              await tx.append({ streamId: 'i-2', events: [event('A', 2)] });
              throw new Error('this part fails');
            }),
          ).rejects.toThrow('this part fails');
          await tx.append({ streamId: 'i-3', events: [event('A', 3)] });
        });
        const read = await readSettled(store, 2);
        expect(read.map((e) => e.streamId)).toEqual(['i-1', 'i-3']);
        expect(await store.readStream('i-2')).toEqual([]);
      }));

    it('runs after-commit callbacks once the transaction committed, and never for a part or a whole rolled back', (context) =>
      withStore(async ({ store, transactions }) => {
        if (transactions === false) return context.skip('transactions run where the write connection is');
        const ran: string[] = [];
        await store.transaction(async (tx) => {
          tx.afterCommit(() => ran.push('kept'));
          await tx.append({ streamId: 'c-1', events: [event('A', 1)] });
          await expect(
            tx.isolated(async () => {
              tx.afterCommit(() => ran.push('undone part'));
              throw new Error('this part fails');
            }),
          ).rejects.toThrow('this part fails');
          tx.afterCommit(() => {
            throw new Error('a callback that throws');
          });
          tx.afterCommit(() => ran.push('after a throwing one'));
          // Nothing runs before the commit.
          expect(ran).toEqual([]);
        });
        expect(ran).toEqual(['kept', 'after a throwing one']);
        await expect(
          store.transaction(async (tx) => {
            tx.afterCommit(() => ran.push('rolled back'));
            throw new Error('the whole fails');
          }),
        ).rejects.toThrow('the whole fails');
        expect(ran).toEqual(['kept', 'after a throwing one']);
      }));

    it('fails only the append whose data cannot be stored when several are committed together', () =>
      withStore(async ({ store }) => {
        const outcomes = await Promise.allSettled([
          store.append({ streamId: 'u-1', events: [event('A', 1)] }),
          store.append({ streamId: 'u-2', events: [{ type: 'A', data: { n: 10n } }] }),
          store.append({ streamId: 'u-3', events: [event('A', 3)] }),
        ]);
        expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect((await readSettled(store, 2)).map((e) => e.streamId)).toEqual(['u-1', 'u-3']);
      }));

    it('fails only the append an inline projection refuses, not those committed with it', () => {
      const projection: InlineProjection = {
        name: 'picky',
        handles: ['A'],
        async apply(_db, events) {
          if (events.some((e) => (e.data as { n: number }).n === 13)) throw new Error('projection refuses 13');
        },
      };
      return withStore(
        async ({ store }) => {
          const outcomes = await Promise.allSettled([1, 13, 2].map((n) => store.append({ streamId: `v-${n}`, events: [event('A', n)] })));
          expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
          expect((await readSettled(store, 2)).map((e) => e.streamId).sort()).toEqual(['v-1', 'v-2']);
        },
        { inlineProjections: [projection] },
      );
    });

    it('lets an append in flight commit before it closes, and refuses one begun after', (context) =>
      withStore(async ({ store, transactions }) => {
        if (transactions === false) return context.skip('the store closes where the write connection is');
        const before = store.append({ streamId: 'c-0', events: [event('A', 0)] });
        const closing = store.close();
        await expect(store.append({ streamId: 'c-1', events: [event('A', 1)] })).rejects.toBeInstanceOf(UnavailableError);
        await expect(before).resolves.toMatchObject({ nextExpectedVersion: 1 });
        await closing;
        expect((await store.readStream('c-0')).length).toBe(1);
      }));

    it('lets a transaction in flight commit before it closes, and refuses one begun after', (context) =>
      withStore(async ({ store, transactions }) => {
        if (transactions === false) return context.skip('transactions run where the write connection is');
        const inside = signal();
        const release = signal();
        // A batch whose client went away while the server stops: it still commits and syncs.
        const open = store.transaction(async (tx) => {
          await tx.append({ streamId: 'c-1', events: [event('A', 1)] });
          inside.fire();
          await release.promise;
        });
        await inside.promise;
        let closed = false;
        const closing = store.close().then(() => {
          closed = true;
        });
        await expect(store.transaction(async () => undefined)).rejects.toBeInstanceOf(UnavailableError);
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(closed).toBe(false);
        release.fire();
        await open;
        await closing;
        expect((await store.readStream('c-1')).length).toBe(1);
      }));

    it('refuses appends beyond its queue bound instead of growing without limit', () =>
      withStore(
        async ({ store }) => {
          const outcomes = await Promise.allSettled(
            Array.from({ length: 8 }, (_, i) => store.append({ streamId: `q-${i}`, events: [event('A', i)] })),
          );
          const rejected = outcomes.filter((o) => o.status === 'rejected');
          expect(rejected.length).toBe(4);
          for (const r of rejected) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(OverloadedError);
          expect((await readSettled(store, 4)).length).toBe(4);
        },
        { maxQueued: 4 },
      ));
  });
}
