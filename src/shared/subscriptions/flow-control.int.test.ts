import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import type { EventStore } from '../event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../ids.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite, type SqliteHandle } from '../sqlite/open-sqlite.js';
import { admittingAppends, flowControl } from './flow-control.js';
import { inProcessSubscriptions, type InProcessSubscriptions, type SubscriptionOptions } from './in-process-subscriptions.js';
import { subscriptionMigrations } from './migrations.js';
import type { Subscriber } from './subscriber.js';

let dir: string;
let sqlite: SqliteHandle;
let store: EventStore;
let running: InProcessSubscriptions[] = [];
/** Subscribers a test may leave waiting: let go before the subscriptions stop. */
const held: Array<{ runFree(): void }> = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'intake-flow-'));
  sqlite = openSqlite(join(dir, 'db.sqlite'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
  store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
});

afterEach(async () => {
  for (const subscriber of held.splice(0)) subscriber.runFree();
  await Promise.all(running.map((s) => s.stop()));
  running = [];
  await store.close();
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A subscriber that handles a batch for each step it is given, or every batch once it runs free. */
function stepped(name = 'stepped'): Subscriber & { step(): void; runFree(): void; readonly batches: number } {
  let free = false;
  let permits = 0;
  let batches = 0;
  let wake: (() => void) | undefined;
  const subscriber = {
    name,
    handles: ['Added'],
    async handle() {
      while (!free && permits === 0) await new Promise<void>((resolve) => (wake = resolve));
      if (!free) permits -= 1;
      batches += 1;
    },
    async reset() {},
    step() {
      permits += 1;
      wake?.();
    },
    runFree() {
      free = true;
      wake?.();
    },
    get batches() {
      return batches;
    },
  };
  held.push(subscriber);
  return subscriber;
}

const start = (subscriber: Subscriber, options: Partial<SubscriptionOptions> = {}) => {
  const subs = inProcessSubscriptions({
    store,
    db: sqlite.db,
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    subscribers: [subscriber],
    batchSize: 4,
    minBatchIntervalMs: 0,
    ...options,
  });
  running.push(subs);
  subs.start();
  return subs;
};

const added = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 'Added', data: { i } }));
const until = async (condition: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
/** Whether the promise settles within `ms`. */
const settlesWithin = (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);

describe('the subscribers’ backlog', () => {
  it('counts how far a subscriber that moves trails the head, and not one stuck for longer than a stall', async () => {
    const subscriber = stepped();
    const subs = start(subscriber, { stalledMs: 300 });
    await store.append({ streamId: 's-1', events: added(40) });
    subscriber.step();
    await until(() => subscriber.batches === 1);
    await until(() => subs.backlog() > 0);
    expect(subs.backlog()).toBe(36);
    // Held on its second batch for longer than a stall: it holds nobody up any more.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(subs.backlog()).toBe(0);
    subscriber.runFree();
    await subs.caughtUp();
    expect(subs.backlog()).toBe(0);
  });

  it('leaves out a subscriber replaying from far behind until it is near the head again', async () => {
    const subscriber = stepped();
    subscriber.runFree();
    const subs = start(subscriber, { followingEvents: 10 });
    await store.append({ streamId: 's-1', events: added(40) });
    await subs.caughtUp();
    const replaying = stepped('replaying');
    const replayed = start(replaying, { followingEvents: 10 });
    // Started 40 events behind, more than 10: it catches up, it does not follow.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(replayed.backlog()).toBe(0);
    for (let i = 0; i < 8; i++) replaying.step();
    await until(() => replaying.batches === 8);
    // 8 events behind now: it follows the head, and counts.
    await until(() => replayed.backlog() > 0);
    expect(replayed.backlog()).toBe(8);
    replaying.runFree();
  });
});

describe('flow control over a real log', () => {
  it('holds an append from outside while the subscriber trails beyond the limit, and lets it in once it caught up', async () => {
    const subscriber = stepped();
    const subs = start(subscriber);
    const flow = flowControl({ backlog: () => subs.backlog(), holdAbove: 10, resumeAt: 4 });
    const outside = admittingAppends(store, flow.admit);
    // A burst goes straight in: nothing trails yet.
    await outside.append({ streamId: 'burst', events: added(20) });
    // One batch of 4 handled, and the subscriber holds on to the next (and, on SQLite, the writer).
    subscriber.step();
    await until(() => subscriber.batches === 1 && subs.backlog() === 16);
    const held = outside.append({ streamId: 'held', events: added(1) });
    // Waiting at the gate, not for the writer: on SQLite an append would wait for the subscriber's transaction too.
    expect(await settlesWithin(held, 150)).toBe(false);
    expect(flow.waiting).toBe(1);
    subscriber.runFree();
    expect(await settlesWithin(held, 2000)).toBe(true);
    expect(flow.waiting).toBe(0);
    expect(await store.readStream('held')).toHaveLength(1);
    flow.close();
  });
});
