import { DummyDriver, Kysely, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from 'kysely';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { systemClock } from '../clock.js';
import type { EventStore } from '../event-store/event-store.js';
import { busSubscriptions } from './bus-subscriptions.js';
import { UnavailableError } from '../errors.js';
import { MessageBusUnavailableError, type DeliveredMessage, type MessageBus } from './message-bus.js';
import type { Subscriber } from '../subscriptions/subscriber.js';
import { subscriptionMigrations } from '../subscriptions/migrations.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite } from '../sqlite/open-sqlite.js';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A bus whose publish is never used, with the consume and rewind a test gives it. */
const busWith = (parts: Pick<MessageBus, 'consume'> & Partial<Pick<MessageBus, 'rewind'>>): MessageBus => ({
  publish: () => Promise.reject(new Error('not used')),
  progress: () => Promise.resolve(undefined),
  rewind: () => Promise.resolve(),
  close: () => Promise.resolve(),
  ...parts,
});

/** A database that answers every query with no rows: no replay was requested. */
const empty = new Kysely<object>({
  dialect: {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  },
});

/** Consumers of one subscriber `view`; the store is never reached (no message is delivered, or the rewind fails first). */
const consumersOf = (bus: MessageBus, view: Partial<Subscriber> = {}) =>
  busSubscriptions({
    bus,
    store: {} as EventStore,
    db: empty,
    clock: systemClock,
    logger: silent,
    role: 'test',
    subscribers: [{ name: 'view', handles: ['Thing'], handle: () => Promise.resolve(), ...view }],
  });

describe('consumers attaching to a broker that cannot be reached', () => {
  it('stop at once, not after the pause between attempts (up to 10 s: a container would be killed first)', async () => {
    let attempts = 0;
    const consumers = consumersOf(
      busWith({
        consume: () => {
          attempts++;
          return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4222'), { code: 'ECONNREFUSED' }));
        },
      }),
    );
    consumers.start();
    // Attempts at 0 and 0.5 s, then a pause of 1 s.
    while (attempts < 2) await sleep(50);
    await sleep(100);
    const started = Date.now();
    await consumers.stop();
    expect(Date.now() - started).toBeLessThan(300);
    expect(consumers.attached()).toBe(false);
    const before = attempts;
    await sleep(1200);
    expect(attempts).toBe(before);
  });
});

describe('a replay asked while the broker cannot be reached', () => {
  it('fails as unavailable and leaves the subscriber consuming as before, not stopped until a restart', async () => {
    let consumes = 0;
    let stops = 0;
    const consumers = consumersOf(
      busWith({
        consume: () => {
          consumes++;
          return Promise.resolve({ stop: () => Promise.resolve(void stops++) });
        },
        rewind: () => Promise.reject(new MessageBusUnavailableError('disconnected from NATS, reconnecting')),
      }),
      { reset: () => Promise.resolve() },
    );
    consumers.start();
    while (!consumers.attached()) await sleep(10);
    await expect(consumers.replay('view')).rejects.toBeInstanceOf(MessageBusUnavailableError);
    expect(stops).toBe(1);
    const deadline = Date.now() + 2000;
    while (!consumers.attached() && Date.now() < deadline) await sleep(10);
    expect(consumers.attached()).toBe(true);
    expect(consumes).toBe(2);
    await consumers.stop();
  });
});

describe('a fault of a consumption that ended', () => {
  it('is forgotten once the subscriber consumes again, so readiness does not wait for a message that may never come', async () => {
    let deliver: ((message: DeliveredMessage) => Promise<void>) | undefined;
    const consumers = consumersOf(
      busWith({
        consume: (_durable, _subjects, handler) => {
          deliver = handler;
          return Promise.resolve({ stop: () => Promise.resolve() });
        },
      }),
    );
    consumers.start();
    while (!consumers.attached()) await sleep(10);
    // The store here fails every transaction, as a database whose connections were just killed.
    await deliver?.({ id: 'e1', type: 'Thing', data: {}, metadata: {}, attempt: 1 } as DeliveredMessage).catch(() => undefined);
    expect((await consumers.status())[0]).toMatchObject({ state: 'retrying' });
    // The role's lock lost and taken again: its consumptions stop and start.
    await consumers.stop();
    consumers.start();
    while (!consumers.attached()) await sleep(10);
    expect((await consumers.status())[0]).toMatchObject({ state: 'running' });
    await consumers.stop();
  });
});

describe('a fault that is the database being busy', () => {
  it('is told apart from an outage: every connection in use is a busy server', async () => {
    let deliver: ((message: DeliveredMessage) => Promise<void>) | undefined;
    let code = 'storage.busy';
    const consumers = busSubscriptions({
      bus: busWith({
        consume: (_durable, _subjects, handler) => {
          deliver = handler;
          return Promise.resolve({ stop: () => Promise.resolve() });
        },
      }),
      store: {
        transaction: () => Promise.reject(new UnavailableError(code, 'all 3 database connections of this server are in use')),
      } as unknown as EventStore,
      db: empty,
      clock: systemClock,
      logger: silent,
      role: 'test',
      subscribers: [{ name: 'view', handles: ['Thing'], handle: () => Promise.resolve() }],
    });
    consumers.start();
    while (!consumers.attached()) await sleep(10);
    const message = { id: 'e1', type: 'Thing', data: {}, metadata: {}, attempt: 1 } as DeliveredMessage;
    await deliver?.(message).catch(() => undefined);
    expect(consumers.faulted()).toEqual([{ name: 'view', fault: expect.stringMatching(/in use/), busy: true }]);
    code = 'storage.unavailable';
    await deliver?.(message).catch(() => undefined);
    expect(consumers.faulted()).toEqual([{ name: 'view', fault: expect.any(String), busy: false }]);
    await consumers.stop();
  });
});

describe('a replay read by several consumers under one name (one per publishing role)', () => {
  it('is over only once each has read up to where the stream stood, or has nothing left', async () => {
    type Member = { acknowledged: number; pending: number };
    let members: Member[] = [];
    const bus: MessageBus = {
      ...busWith({ consume: () => Promise.resolve({ stop: () => Promise.resolve() }) }),
      head: () => Promise.resolve(100),
      progress: () =>
        Promise.resolve({
          acknowledged: Math.max(0, ...members.map((m) => m.acknowledged)),
          pending: members.reduce((sum, m) => sum + m.pending, 0),
          members,
        }),
    };
    // The mark of a replay is stored with the checkpoints: a database of its own.
    const dir = mkdtempSync(join(tmpdir(), 'intake-replay-mark-'));
    const sqlite = openSqlite(join(dir, 'db.sqlite'));
    onTestFinished(async () => {
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    });
    await migrateToLatest(sqlite.db, [subscriptionMigrations]);
    const db = sqlite.db as Kysely<object>;
    const consumers = busSubscriptions({
      bus,
      store: { transaction: (work: (tx: unknown) => Promise<unknown>) => work({ db }) } as unknown as EventStore,
      db,
      clock: systemClock,
      logger: silent,
      role: 'test',
      subscribers: [{ name: 'view', handles: ['Thing'], handle: () => Promise.resolve(), reset: () => Promise.resolve() }],
    });
    consumers.start();
    while (!consumers.attached()) await sleep(10);
    await consumers.replay('view');
    members = [
      { acknowledged: 100, pending: 5 },
      { acknowledged: 40, pending: 3 },
    ];
    expect((await consumers.status())[0]).toMatchObject({ replayingUntil: 100 });
    members = [
      { acknowledged: 120, pending: 5 },
      { acknowledged: 60, pending: 0 },
    ];
    expect((await consumers.status())[0]).not.toHaveProperty('replayingUntil');
    await consumers.stop();
  });
});

describe('the status of consumers fed by a broker', () => {
  it('tells the stream’s last sequence as the head, never past it, while one consumer of a family is behind', async () => {
    // A subscriber of two publishers' types has a consumer each: one has read all, the other has four to go.
    const consumers = consumersOf({
      ...busWith({ consume: () => new Promise(() => undefined) }),
      progress: () =>
        Promise.resolve({
          acknowledged: 7,
          pending: 4,
          members: [
            { acknowledged: 7, pending: 0 },
            { acknowledged: 3, pending: 4 },
          ],
        }),
      head: () => Promise.resolve(7),
    });
    expect(await consumers.status()).toEqual([expect.objectContaining({ name: 'view', position: 7, head: 7, lag: 4 })]);
  });

  it('tells position + lag as the head of a broker that does not say its last sequence', async () => {
    const consumers = consumersOf({
      ...busWith({ consume: () => new Promise(() => undefined) }),
      progress: () => Promise.resolve({ acknowledged: 5, pending: 2 }),
    });
    expect(await consumers.status()).toEqual([expect.objectContaining({ position: 5, head: 7, lag: 2 })]);
  });
});
