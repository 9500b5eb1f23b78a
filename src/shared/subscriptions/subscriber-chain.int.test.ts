import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { sqliteEventStoreMigrations } from '../event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../ids.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite, type SqliteHandle } from '../sqlite/open-sqlite.js';
import type { EventStore } from '../event-store/event-store.js';
import { TransactionAborted } from '../event-store/savepoint.js';
import { inProcessSubscriptions } from './in-process-subscriptions.js';
import { listParked, loadCheckpoint, replayRequests, requestReplay, saveCheckpoint } from './checkpoints.js';
import { subscriptionMigrations } from './migrations.js';
import { dissolveChain, joinMembers, subscriberChain } from './subscriber-chain.js';
import type { Subscriber } from './subscriber.js';

async function setUp() {
  const dir = mkdtempSync(join(tmpdir(), 'intake-chain-'));
  const sqlite = openSqlite(join(dir, 'chain.db'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
  const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
  return {
    sqlite,
    store,
    async close() {
      await store.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const silent = pino({ level: 'silent' });

/** The members run as a chain named `pipeline`, fed by an in-process subscription. */
function chainSubscriptions(store: EventStore, sqlite: SqliteHandle, members: Subscriber[]) {
  const chain = subscriberChain('pipeline', members, { clock: systemClock, logger: silent });
  return inProcessSubscriptions({ store, db: sqlite.db, clock: systemClock, logger: silent, subscribers: [chain] });
}

it('lets each member see what the members before it appended, in one pass, and never hands it to them again', async () => {
  const { sqlite, store, close } = await setUp();
  const calls: string[][] = [];
  const stage: Subscriber = {
    name: 'stage',
    handles: ['Received'],
    async handle(events, tx) {
      await tx.appendMany(events.map((e) => ({ streamId: e.streamId, events: [{ type: 'Staged', data: {} }] })));
    },
  };
  const view: Subscriber = {
    name: 'view',
    handles: ['Received', 'Staged'],
    async handle(events) {
      calls.push(events.map((e) => `${e.streamId}:${e.type}`));
    },
    async reset() {},
  };
  const subscriptions = chainSubscriptions(store, sqlite, [stage, view]);
  try {
    await store.append({ streamId: 'a', events: [{ type: 'Received', data: {} }] });
    await store.append({ streamId: 'b', events: [{ type: 'Received', data: {} }] });
    subscriptions.start();
    await subscriptions.caughtUp(10_000);
    // One call with both stages of both items; the Staged events read back later are skipped.
    expect(calls).toEqual([['a:Received', 'b:Received', 'a:Staged', 'b:Staged']]);
    expect((await subscriptions.status()).map((s) => s.name)).toEqual(['stage', 'view']);
    expect(subscriptions.replayable()).toEqual(['view']);
    await expect(subscriptions.replay('stage')).rejects.toThrow(/records facts/);
    // The chain's own name is no subscriber's: the status lists its members only.
    await expect(subscriptions.replay('pipeline')).rejects.toMatchObject({ code: 'subscriptions.unknown-subscriber' });
  } finally {
    await subscriptions.stop();
    await close();
  }
});

it('hands each member only the events it wants, and wants for the chain what any member wants', async () => {
  const { sqlite, store, close } = await setUp();
  const calls: Record<string, string[]> = { odd: [], all: [] };
  const member = (name: string, wants?: Subscriber['wants']): Subscriber => ({
    name,
    handles: ['Received'],
    ...(wants ? { wants } : {}),
    async handle(events) {
      calls[name]?.push(...events.map((e) => e.streamId));
    },
  });
  const odd = member('odd', (event) => (event.data as { n: number }).n % 2 === 1);
  const subscriptions = chainSubscriptions(store, sqlite, [odd, member('all')]);
  try {
    for (let n = 0; n < 4; n++) await store.append({ streamId: `s${n}`, events: [{ type: 'Received', data: { n } }] });
    subscriptions.start();
    await subscriptions.caughtUp(10_000);
    expect(calls).toEqual({ odd: ['s1', 's3'], all: ['s0', 's1', 's2', 's3'] });
    const chain = subscriberChain('c', [odd, member('also-odd', odd.wants)], { clock: systemClock, logger: silent });
    const [even, uneven] = await Promise.all(
      [0, 1].map(async (n) => (await store.append({ streamId: `t${n}`, events: [{ type: 'Received', data: { n } }] })).events[0]),
    );
    expect([chain.wants?.(even as never), chain.wants?.(uneven as never)]).toEqual([false, true]);
    // A chain whose members all want every event of their types wants them all.
    expect(subscriberChain('d', [member('all')], { clock: systemClock, logger: silent }).wants).toBeUndefined();
  } finally {
    await subscriptions.stop();
    await close();
  }
});

it('starts a new chain where the slowest of the subscribers it replaces was', async () => {
  const { sqlite, close } = await setUp();
  try {
    const member = (name: string): Subscriber => ({ name, handles: [], handle: async () => {} });
    const chain = subscriberChain('pipeline', [member('one'), member('two')], { clock: systemClock, logger: silent });
    await saveCheckpoint(sqlite.db, 'one', 40, 'now');
    await saveCheckpoint(sqlite.db, 'two', 25, 'now');
    await joinMembers(sqlite.db, chain, 'now');
    expect(await loadCheckpoint(sqlite.db, 'pipeline')).toBe(25);
    await saveCheckpoint(sqlite.db, 'pipeline', 60, 'now');
    await joinMembers(sqlite.db, chain, 'now');
    expect(await loadCheckpoint(sqlite.db, 'pipeline')).toBe(60);
  } finally {
    await close();
  }
});

it('parks an event only for the member that fails on it; the others, and its appends for other events, go on', async () => {
  const { sqlite, store, close } = await setUp();
  let broken = true;
  const seenByView: string[] = [];
  // Appends a Checked event per item, then fails on the item marked bad: its append must not survive.
  const checker: Subscriber = {
    name: 'checker',
    handles: ['Received'],
    async handle(events, tx) {
      for (const event of events) {
        await tx.append({ streamId: event.streamId, events: [{ type: 'Checked', data: {} }] });
        if (broken && (event.data as { bad?: boolean }).bad) throw new Error(`cannot check ${event.streamId}`);
      }
    },
  };
  const view: Subscriber = {
    name: 'view',
    handles: ['Received', 'Checked'],
    async handle(events) {
      seenByView.push(...events.map((e) => `${e.streamId}:${e.type}`));
    },
    async reset() {},
  };
  const subscriptions = chainSubscriptions(store, sqlite, [checker, view]);
  try {
    for (const [streamId, bad] of [
      ['a', false],
      ['b', true],
      ['c', false],
    ] as const) {
      await store.append({ streamId, events: [{ type: 'Received', data: { bad } }] });
    }
    subscriptions.start();
    await subscriptions.caughtUp(10_000);

    expect(seenByView.sort()).toEqual(['a:Checked', 'a:Received', 'b:Received', 'c:Checked', 'c:Received']);
    const log = await store.readAll({ after: 0, limit: 100 });
    expect(log.filter((e) => e.type === 'Checked').map((e) => e.streamId)).toEqual(['a', 'c']);
    const status = Object.fromEntries((await subscriptions.status()).map((s) => [s.name, s.parked]));
    expect(status).toEqual({ checker: 1, view: 0 });

    broken = false;
    const parkedAt = log.find((e) => e.streamId === 'b')?.position as number;
    await subscriptions.retryParked('checker', parkedAt);
    await subscriptions.caughtUp(10_000);
    expect(Object.fromEntries((await subscriptions.status()).map((s) => [s.name, s.parked]))).toEqual({ checker: 0, view: 0 });
    expect(seenByView).toContain('b:Checked');
  } finally {
    await subscriptions.stop();
    await close();
  }
});

it('fails the whole pass and parks nothing when a member leaves the transaction unusable', async () => {
  const { sqlite, store, close } = await setUp();
  try {
    const breaker: Subscriber = {
      name: 'breaker',
      handles: ['Received'],
      async handle(_events, tx) {
        // As SQLite does by itself on a full disk: the transaction is rolled back under the member.
        await sql`ROLLBACK`.execute(tx.db);
        throw new Error('disk trouble');
      },
    };
    const view: Subscriber = { name: 'view', handles: ['Received'], handle: async () => {} };
    const chain = subscriberChain('pipeline', [breaker, view], { clock: systemClock, logger: silent });
    await store.append({ streamId: 'a', events: [{ type: 'Received', data: {} }] });
    const events = await store.readAll({ after: 0, limit: 10 });
    await expect(store.transaction((tx) => chain.handle(events, tx))).rejects.toBeInstanceOf(TransactionAborted);
    expect(await listParked(sqlite.db)).toEqual([]);
  } finally {
    await close();
  }
});

it('rebuilds a chain from the start when a replay of one of its members was requested while it was stopped', async () => {
  const { sqlite, store, close } = await setUp();
  try {
    const seen: number[] = [];
    let resets = 0;
    const view: Subscriber = {
      name: 'view',
      handles: ['Happened'],
      async handle(events) {
        seen.push(...events.map((event) => event.position));
      },
      async reset() {
        resets += 1;
      },
    };
    const other: Subscriber = { name: 'other', handles: ['Happened'], handle: async () => undefined };
    const runOnce = async (happened: number) => {
      const subscriptions = chainSubscriptions(store, sqlite, [other, view]);
      subscriptions.start();
      try {
        for (let i = 0; i < happened; i++) await store.append({ streamId: `s-${uuidV7()}`, events: [{ type: 'Happened', data: {} }] });
        await subscriptions.caughtUp(10_000);
      } finally {
        await subscriptions.stop();
      }
    };
    await runOnce(2);
    expect(seen).toEqual([1, 2]);
    await requestReplay(sqlite.db, 'view', 'its tables changed shape');
    await runOnce(1);
    expect(resets).toBe(1);
    expect(seen).toEqual([1, 2, 1, 2, 3]);
    expect(await replayRequests(sqlite.db, ['view', 'pipeline'])).toEqual(new Map());
  } finally {
    await close();
  }
});

describe('members that come and go between runs (INTAKE_DISABLE)', () => {
  /** A member that notes the position of every event it handles. */
  const noting = (name: string, seen: Map<string, number[]>): Subscriber => ({
    name,
    handles: ['Happened'],
    async handle(events) {
      seen.set(name, [...(seen.get(name) ?? []), ...events.map((event) => event.position)]);
    },
  });

  /** One run of the process: the chain formed of `names` (or dissolved), `happened` events appended, caught up, stopped. */
  async function run(sqlite: SqliteHandle, store: EventStore, names: string[], happened: number): Promise<Map<string, number[]>> {
    const seen = new Map<string, number[]>();
    const members = names.map((name) => noting(name, seen));
    let subscribers: Subscriber[] = members;
    if (members.length >= 2) {
      const chain = subscriberChain('views', members, { clock: systemClock, logger: silent });
      await joinMembers(sqlite.db, chain, 'now');
      subscribers = [chain];
    } else {
      await dissolveChain(sqlite.db, 'views', names, 'now');
    }
    const subscriptions = inProcessSubscriptions({ store, db: sqlite.db, clock: systemClock, logger: silent, subscribers });
    subscriptions.start();
    try {
      for (let i = 0; i < happened; i++) await store.append({ streamId: `s-${uuidV7()}`, events: [{ type: 'Happened', data: {} }] });
      await subscriptions.caughtUp(10_000);
    } finally {
      await subscriptions.stop();
    }
    return seen;
  }

  it('gives a member left out for a while what happened meanwhile, and the others nothing twice', async () => {
    const { sqlite, store, close } = await setUp();
    try {
      expect(await run(sqlite, store, ['a', 'b', 'c'], 2)).toEqual(
        new Map([
          ['a', [1, 2]],
          ['b', [1, 2]],
          ['c', [1, 2]],
        ]),
      );
      expect(await run(sqlite, store, ['a', 'c'], 3)).toEqual(
        new Map([
          ['a', [3, 4, 5]],
          ['c', [3, 4, 5]],
        ]),
      );
      const back = await run(sqlite, store, ['a', 'b', 'c'], 1);
      expect(back.get('b')).toEqual([3, 4, 5, 6]);
      expect(back.get('a')).toEqual([6]);
      expect(back.get('c')).toEqual([6]);
    } finally {
      await close();
    }
  });

  it('gives a member that never ran the whole log when it joins', async () => {
    const { sqlite, store, close } = await setUp();
    try {
      await run(sqlite, store, ['a', 'b'], 3);
      const joined = await run(sqlite, store, ['a', 'b', 'new'], 1);
      expect(joined.get('new')).toEqual([1, 2, 3, 4]);
      expect(joined.get('a')).toEqual([4]);
    } finally {
      await close();
    }
  });

  it('hands the position of a chain left with one member to it, and forms the chain again from members’ own checkpoints', async () => {
    const { sqlite, store, close } = await setUp();
    try {
      await run(sqlite, store, ['a', 'b'], 2);
      expect(await run(sqlite, store, ['a'], 2)).toEqual(new Map([['a', [3, 4]]]));
      const again = await run(sqlite, store, ['a', 'b'], 1);
      expect(again.get('b')).toEqual([3, 4, 5]);
      expect(again.get('a')).toEqual([5]);
    } finally {
      await close();
    }
  });

  it('takes the members of a chain kept before members were recorded to be where the chain is', async () => {
    const { sqlite, store, close } = await setUp();
    try {
      for (let i = 0; i < 3; i++) await store.append({ streamId: `old-${i}`, events: [{ type: 'Happened', data: {} }] });
      await saveCheckpoint(sqlite.db, 'views', 3, 'now');
      const seen = await run(sqlite, store, ['a', 'b'], 1);
      expect(seen).toEqual(
        new Map([
          ['a', [4]],
          ['b', [4]],
        ]),
      );
    } finally {
      await close();
    }
  });
});

it('rebuilds only the members that keep views: those that record facts decide no event twice, live or after a restart', async () => {
  const { sqlite, store, close } = await setUp();
  try {
    const decided: number[] = [];
    const viewed: number[] = [];
    // As routing does: it records a decision, which a second pass would take again under today's rules.
    const decider: Subscriber = {
      name: 'decider',
      handles: ['Happened'],
      async handle(events) {
        decided.push(...events.map((event) => event.position));
      },
    };
    const view: Subscriber = {
      name: 'view',
      handles: ['Happened'],
      async handle(events) {
        viewed.push(...events.map((event) => event.position));
      },
      async reset() {},
    };
    const happen = () => store.append({ streamId: `s-${uuidV7()}`, events: [{ type: 'Happened', data: {} }] });
    const live = chainSubscriptions(store, sqlite, [decider, view]);
    live.start();
    try {
      await happen();
      await happen();
      await live.caughtUp(10_000);
      await live.replay('view');
      await happen();
      await live.caughtUp(10_000);
    } finally {
      await live.stop();
    }
    expect(decided).toEqual([1, 2, 3]);
    expect(viewed).toEqual([1, 2, 1, 2, 3]);

    // Asked while stopped, as a migration asks: the same once it starts.
    await requestReplay(sqlite.db, 'view', 'its tables changed shape');
    const restarted = chainSubscriptions(store, sqlite, [decider, view]);
    restarted.start();
    try {
      await happen();
      await restarted.caughtUp(10_000);
    } finally {
      await restarted.stop();
    }
    expect(decided).toEqual([1, 2, 3, 4]);
    expect(viewed).toEqual([1, 2, 1, 2, 3, 1, 2, 3, 4]);
  } finally {
    await close();
  }
});

it('keeps, through a replay of the views, the events a member that records facts parked, to be retried', async () => {
  const { sqlite, store, close } = await setUp();
  try {
    const decider: Subscriber = {
      name: 'decider',
      handles: ['Happened'],
      async handle(events) {
        if (events.some((event) => event.streamId === 'poison')) throw new Error('cannot decide');
      },
    };
    const view: Subscriber = {
      name: 'view',
      handles: ['Happened'],
      async handle(events) {
        if (events.some((event) => event.streamId === 'unviewable')) throw new Error('cannot view');
      },
      async reset() {},
    };
    const subscriptions = chainSubscriptions(store, sqlite, [decider, view]);
    subscriptions.start();
    try {
      for (const streamId of ['fine', 'poison', 'unviewable']) await store.append({ streamId, events: [{ type: 'Happened', data: {} }] });
      await subscriptions.caughtUp(10_000);
      expect((await listParked(sqlite.db)).map((p) => [p.subscriber, p.streamId]).sort()).toEqual([
        ['decider', 'poison'],
        ['view', 'unviewable'],
      ]);
      await subscriptions.replay('view');
      await subscriptions.caughtUp(10_000);
      // The view handled its events again (and parked the one it still cannot view); the decider's stays.
      expect((await listParked(sqlite.db)).map((p) => [p.subscriber, p.streamId]).sort()).toEqual([
        ['decider', 'poison'],
        ['view', 'unviewable'],
      ]);
    } finally {
      await subscriptions.stop();
    }
  } finally {
    await close();
  }
});
