import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../clock.js';
import type { EventStore } from '../event-store/event-store.js';
import { sqliteEventStoreMigrations } from '../event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../ids.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite, type SqliteHandle } from '../sqlite/open-sqlite.js';
import { listParked, loadCheckpoint, replayRequests, requestReplay } from './checkpoints.js';
import { inProcessSubscriptions, type Subscriptions } from './in-process-subscriptions.js';
import { subscriptionMigrations } from './migrations.js';
import type { Subscriber } from './subscriber.js';

let dir: string;
let sqlite: SqliteHandle;
let store: EventStore;
let running: Subscriptions[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'intake-sub-'));
  sqlite = openSqlite(join(dir, 'db.sqlite'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
  await sql`CREATE TABLE totals (stream_id TEXT PRIMARY KEY, total INTEGER NOT NULL)`.execute(sqlite.db);
  store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
});

afterEach(async () => {
  await Promise.all(running.map((s) => s.stop()));
  running = [];
  await store.close();
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
});

const totals = async (db: Kysely<object>) =>
  Object.fromEntries(
    (await sql<{ stream_id: string; total: number }>`SELECT * FROM totals ORDER BY stream_id`.execute(db)).rows.map((r) => [
      r.stream_id,
      r.total,
    ]),
  );

/** Adds each Added event's amount to its stream's total: not idempotent by itself, so only the checkpoint prevents doubles. */
function summing(options: { failOn?: (amount: number) => boolean } = {}): Subscriber {
  return {
    name: 'summing',
    handles: ['Added'],
    async handle(events, tx) {
      for (const event of events) {
        const amount = (event.data as { amount: number }).amount;
        await sql`INSERT INTO totals (stream_id, total) VALUES (${event.streamId}, ${amount})
                  ON CONFLICT (stream_id) DO UPDATE SET total = total + excluded.total`.execute(tx.db);
        // The write above is already made when this throws: the transaction must undo it.
        if (options.failOn?.(amount)) throw new Error(`cannot add ${amount}`);
      }
    },
    async reset(tx) {
      await sql`DELETE FROM totals`.execute(tx.db);
    },
  };
}

const subscriptions = (subscriber: Subscriber, pollIntervalMs = 60_000) => {
  const subs = inProcessSubscriptions({
    store,
    db: sqlite.db,
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    subscribers: [subscriber],
    pollIntervalMs,
    retryBaseMs: 1,
    maxAttempts: 3,
    batchSize: 4,
  });
  running.push(subs);
  return subs;
};

const add = (stream: string, amount: number) =>
  store.append({
    streamId: stream,
    events: [
      { type: 'Added', data: { amount } },
      { type: 'Ignored', data: {} },
    ],
  });

describe('in-process subscriptions', () => {
  it('is woken by each commit, not by its poll, and stores its checkpoint with its writes', async () => {
    const subs = subscriptions(summing());
    subs.start();
    await add('a', 1);
    await add('a', 2);
    await add('b', 5);
    await subs.caughtUp(2000);
    expect(await totals(sqlite.db)).toEqual({ a: 3, b: 5 });
    expect(await loadCheckpoint(sqlite.db, 'summing')).toBe(await store.headPosition());
  });

  it('names itself when it reads the log, so the in-memory tail keeps what it has not read yet', async () => {
    const readers = new Set<string | undefined>();
    const readAll = store.readAll.bind(store);
    store = { ...store, readAll: (options) => (readers.add(options.reader), readAll(options)) };
    const subs = subscriptions(summing());
    subs.start();
    await add('a', 1);
    await subs.caughtUp(2000);
    expect([...readers]).toEqual(['summing']);
  });

  it('lets the event loop turn between the batches of a backlog, so appends are not held until it caught up', async () => {
    for (let i = 1; i <= 20; i++) await add('a', i);
    let batches = 0;
    const counting: Subscriber = { ...summing(), handle: (events, tx) => (batches++, summing().handle(events, tx)) };
    const subs = subscriptions(counting);
    // Queued before the subscriber starts on its 10 batches: it runs as soon as the loop turns.
    const seen = new Promise<number>((resolve) => setImmediate(() => resolve(batches)));
    subs.start();
    await subs.caughtUp(2000);
    expect(batches).toBe(10);
    expect(await seen).toBeLessThan(3);
    expect(await totals(sqlite.db)).toEqual({ a: 210 });
  });

  it('stops at once when stopped while it reads, however long its poll', async () => {
    let reading!: () => void;
    const read = new Promise<void>((resolve) => (reading = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The first read is held until stop() has been called: it then finds nothing, and must not wait.
    const held: EventStore = {
      ...store,
      async readAll(options) {
        reading();
        await released;
        return store.readAll(options);
      },
    };
    const subs = inProcessSubscriptions({
      store: held,
      db: sqlite.db,
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      subscribers: [summing()],
      pollIntervalMs: 60_000,
    });
    subs.start();
    await read;
    const stopped = subs.stop();
    release();
    const outcome = await Promise.race([
      stopped.then(() => 'stopped'),
      new Promise((resolve) => setTimeout(resolve, 2000, 'still waiting')),
    ]);
    expect(outcome).toBe('stopped');
  });

  it('resumes after a restart from its checkpoint, handling nothing twice', async () => {
    const first = subscriptions(summing());
    first.start();
    for (let i = 1; i <= 10; i++) await add('a', i);
    await first.caughtUp();
    await first.stop();
    for (let i = 11; i <= 12; i++) await add('a', i);
    const second = subscriptions(summing());
    second.start();
    await second.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ a: 78 });
  });

  it('rolls back a handler that fails after writing, so a retry leaves no double effect', async () => {
    let failures = 1;
    const subs = subscriptions(summing({ failOn: (amount) => amount === 7 && failures-- > 0 }));
    subs.start();
    await add('a', 3);
    await add('a', 7);
    await add('a', 10);
    await subs.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ a: 20 });
    expect(await listParked(sqlite.db)).toEqual([]);
  });

  it('backs off and warns less and less while its batches hit a storage fault that lets its checkpoint through', async () => {
    // As a full disk: the batch's writes fail, the small checkpoint row that proves the storage answers does not.
    let full = true;
    let attempts = 0;
    const said: number[] = [];
    const subscriber: Subscriber = {
      name: 'filling',
      handles: ['Added'],
      async handle() {
        attempts += 1;
        if (full) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      },
    };
    const subs = inProcessSubscriptions({
      store,
      db: sqlite.db,
      clock: systemClock,
      // A storage fault is a warning that names the fault, with no stack: it is not a defect of Intake's.
      logger: {
        info: () => undefined,
        warn: (fields: { failures?: number; fault?: string; err?: unknown }) => {
          if (fields.fault?.includes('database or disk is full') && fields.err === undefined) said.push(fields.failures ?? 0);
        },
        error: () => said.push(-1),
      },
      subscribers: [subscriber],
      pollIntervalMs: 60_000,
      retryBaseMs: 1,
    });
    running.push(subs);
    subs.start();
    await add('a', 1);
    for (const deadline = Date.now() + 10_000; attempts < 9 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
    expect(attempts).toBeGreaterThanOrEqual(9);
    // Said at the 1st, 2nd, 4th and 8th failure, not at each of nine; the pauses grew meanwhile.
    expect(said.slice(0, 4)).toEqual([1, 2, 4, 8]);
    full = false;
    await subs.caughtUp();
    expect((await subs.status())[0]).toMatchObject({ state: 'running' });
  });

  it('parks a poison event after repeated failures and lets the next ones flow; it can be retried', async () => {
    let poisonous = true;
    const summer = summing({ failOn: (amount) => amount === 13 && poisonous });
    // Whether each pass was told it retries a parked event.
    const told: Array<[number[], boolean]> = [];
    const subs = subscriptions({
      ...summer,
      handle: (events, tx) => {
        told.push([events.map((e) => (e.data as { amount: number }).amount), tx.parkedRetry === true]);
        return summer.handle(events, tx);
      },
    });
    subs.start();
    await add('a', 1);
    const poison = await add('b', 13);
    await add('c', 2);
    await subs.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ a: 1, c: 2 });
    const parked = await listParked(sqlite.db);
    expect(parked).toEqual([
      expect.objectContaining({ subscriber: 'summing', position: poison.events[0]?.position, error: 'cannot add 13', attempts: 3 }),
    ]);
    expect((await subs.status())[0]).toMatchObject({ lag: 0, parked: 1 });

    // Retried while it still fails: a conflict saying why, and it stays parked.
    await expect(subs.retryParked('summing', poison.events[0]?.position ?? 0)).rejects.toMatchObject({
      code: 'subscriptions.retry-failed',
      message: expect.stringMatching(/failed again and stays parked: cannot add 13/),
    });
    // The failed retry is counted, with its error and when it was tried.
    const [again] = await listParked(sqlite.db);
    expect(again).toMatchObject({ attempts: 4, error: 'cannot add 13' });
    expect(again?.parkedAt.localeCompare(parked[0]?.parkedAt ?? '')).toBeGreaterThanOrEqual(0);

    poisonous = false;
    told.length = 0;
    await subs.retryParked('summing', poison.events[0]?.position ?? 0);
    expect(await totals(sqlite.db)).toEqual({ a: 1, b: 13, c: 2 });
    expect(told).toEqual([[[13], true]]);
    expect(await listParked(sqlite.db)).toEqual([]);
  });

  it('gives up on a parked event when told to: no longer parked, never handled, the others untouched', async () => {
    const subs = subscriptions(summing({ failOn: (amount) => amount === 13 }));
    subs.start();
    await add('a', 1);
    const poison = await add('b', 13);
    await subs.caughtUp();
    expect((await subs.status())[0]).toMatchObject({ parked: 1 });
    await expect(subs.discardParked('summing', 'no-such-event')).rejects.toMatchObject({ code: 'subscriptions.not-parked' });
    await subs.discardParked('summing', poison.events[0]?.eventId ?? '');
    expect(await listParked(sqlite.db)).toEqual([]);
    expect((await subs.status())[0]).toMatchObject({ parked: 0, lag: 0 });
    await add('c', 2);
    await subs.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ a: 1, c: 2 });
  });

  it('replays from the start into an identical view', async () => {
    const subs = subscriptions(summing());
    subs.start();
    for (let i = 0; i < 30; i++) await add(`s-${i % 4}`, i);
    await subs.caughtUp();
    const before = await totals(sqlite.db);
    await subs.replay('summing');
    await subs.caughtUp();
    expect(await totals(sqlite.db)).toEqual(before);
  });

  it('goes on from where it stood when a replay cannot reset its view, and replays once asked again', async () => {
    let resets = 0;
    const flaky: Subscriber = {
      ...summing(),
      async reset(tx) {
        resets += 1;
        if (resets === 1) throw new Error('the view cannot be cleared now');
        await sql`DELETE FROM totals`.execute(tx.db);
      },
    };
    const subs = subscriptions(flaky);
    subs.start();
    await add('a', 1);
    await subs.caughtUp();
    await expect(subs.replay('summing')).rejects.toThrow(/cannot be cleared/);
    // Still running: what comes next is counted, and the view was left whole.
    await add('a', 2);
    await subs.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ a: 3 });
    expect((await subs.status())[0]).toMatchObject({ state: 'running' });
    await subs.replay('summing');
    await add('b', 5);
    await subs.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ a: 3, b: 5 });
  });

  it('rebuilds its view when it starts after a replay was requested, and only then', async () => {
    const first = subscriptions(summing());
    first.start();
    for (let i = 1; i <= 6; i++) await add(`s-${i % 2}`, i);
    await first.caughtUp();
    await first.stop();
    // The view's meaning changed under it, as a migration may change it; the checkpoint stays.
    await sql`UPDATE totals SET total = 0`.execute(sqlite.db);
    await requestReplay(sqlite.db, 'summing', 'totals were zeroed');
    await requestReplay(sqlite.db, 'summing', 'asked twice');

    const second = subscriptions(summing());
    second.start();
    await second.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ 's-0': 12, 's-1': 9 });
    expect(await replayRequests(sqlite.db, ['summing'])).toEqual(new Map());
    await second.stop();

    await sql`UPDATE totals SET total = 0`.execute(sqlite.db);
    const third = subscriptions(summing());
    third.start();
    await third.caughtUp();
    expect(await totals(sqlite.db)).toEqual({ 's-0': 0, 's-1': 0 });
  });

  it('meets a requested replay with a replay asked for over the API', async () => {
    const subs = subscriptions(summing());
    subs.start();
    await add('a', 1);
    await subs.caughtUp();
    await requestReplay(sqlite.db, 'summing', 'a migration');
    await subs.replay('summing');
    await subs.caughtUp();
    expect(await replayRequests(sqlite.db, ['summing'])).toEqual(new Map());
    expect(await totals(sqlite.db)).toEqual({ a: 1 });
  });

  it('says it is rebuilding its view, and up to where, also after a restart in the middle of the replay', async () => {
    for (let i = 1; i <= 10; i++) await add('a', i);
    const head = await store.headPosition();
    const first = subscriptions(summing());
    first.start();
    await first.caughtUp();
    await first.stop();
    await first.replay('summing');
    expect((await first.status())[0]).toMatchObject({ position: 0, replayingUntil: head });

    // The process stops after a few batches of the rebuild.
    let handled = 0;
    let interrupted: Promise<void> | undefined;
    const stopping: Subscriber = {
      ...summing(),
      handle: async (events, tx) => {
        await summing().handle(events, tx);
        if ((handled += events.length) >= 4) interrupted ??= second.stop();
      },
    };
    const second = subscriptions(stopping);
    second.start();
    await vi.waitFor(() => expect(interrupted).toBeDefined());
    await interrupted;
    const reached = await loadCheckpoint(sqlite.db, 'summing');
    expect(reached).toBeGreaterThan(0);
    expect(reached).toBeLessThan(head);

    const third = subscriptions(summing());
    expect((await third.status())[0]).toMatchObject({ replayingUntil: head });
    third.start();
    await third.caughtUp();
    expect((await third.status())[0]?.replayingUntil).toBeUndefined();
    expect(await totals(sqlite.db)).toEqual({ a: 55 });
    await third.stop();
    expect((await subscriptions(summing()).status())[0]?.replayingUntil).toBeUndefined();
  });

  it('reports its lag behind the head', async () => {
    const subs = subscriptions(summing());
    await add('a', 1);
    await add('a', 1);
    const [status] = await subs.status();
    expect(status).toMatchObject({ name: 'summing', position: 0, lag: await store.headPosition() });
  });
});
