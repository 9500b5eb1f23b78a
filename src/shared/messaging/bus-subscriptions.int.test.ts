import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { sql, type Kysely } from 'kysely';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { UnavailableError } from '../errors.js';
import { sqliteEventStoreMigrations } from '../event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../ids.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite } from '../sqlite/open-sqlite.js';
import { listParked, replayRequests, requestReplay } from '../subscriptions/checkpoints.js';
import { subscriptionMigrations } from '../subscriptions/migrations.js';
import type { Subscriber } from '../subscriptions/subscriber.js';
import { busSubscriptions, type BusSubscriptionOptions, type BusSubscriptions } from './bus-subscriptions.js';
import type { MessageBus } from './message-bus.js';
import { natsMessageBus } from './nats/nats-message-bus.js';

const url = process.env.TEST_NATS_URL || undefined;
if (!url) console.warn('skipping the bus subscription suite: TEST_NATS_URL is not set');

interface Fixture {
  /** The private stream's name. */
  readonly stream: string;
  readonly db: Kysely<object>;
  readonly bus: MessageBus;
  readonly consumers: BusSubscriptions;
  /** Consumers over the same database and stream, as a restarted process or another replica has them; not started. */
  sibling(): BusSubscriptions;
  /** Publishes a `Thing` about `item_id` with the number `n`, under an id of its own. */
  publish(n: number, itemId?: string): Promise<void>;
  /** Rows of a table of the fixture's database. */
  count(table: 'seen' | 'consumed_events', subscriber?: string): Promise<number>;
  until(check: () => Promise<boolean> | boolean, what: string): Promise<void>;
}

/** A SQLite store with a `seen` table, a private stream on the test NATS, and consumers for the subscribers. */
async function withConsumers(
  subscribers: readonly Subscriber[],
  options: Pick<BusSubscriptionOptions, 'maxDeliver' | 'retryDelayMs' | 'fence' | 'commitIntervalMs'> & {
    /** While it answers true, every transaction fails as when the database cannot be reached. */
    readonly storageDown?: () => boolean;
  },
  test: (fixture: Fixture) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'intake-bus-sub-'));
  const suffix = randomBytes(6).toString('hex');
  const stream = `INTAKE_TEST_${suffix}`;
  const subject = `t${suffix}`;
  const sqlite = openSqlite(join(dir, 'db.sqlite'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
  await sql`CREATE TABLE seen (item_id TEXT NOT NULL, n INTEGER NOT NULL)`.execute(sqlite.db);
  const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
  const { storageDown, ...consumerOptions } = options;
  const unreachable = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const bus = natsMessageBus({ servers: url ?? '', stream, subjects: [`${subject}.>`] });
  const consumersOf = () =>
    busSubscriptions({
      bus,
      store: storageDown
        ? { ...store, transaction: (work) => (storageDown() ? Promise.reject(unreachable()) : store.transaction(work)) }
        : store,
      db: sqlite.db,
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      role: 'test',
      subscribers,
      subjects: [`${subject}.>`],
      ...consumerOptions,
    });
  const consumers = consumersOf();
  const db = sqlite.db as Kysely<object>;
  try {
    await test({
      stream,
      db,
      bus,
      consumers,
      sibling: consumersOf,
      publish: (n, itemId = `i-${n}`) =>
        bus.publish(`${subject}.x.Thing`, { id: `${subject}-${n}`, type: 'Thing', data: { item_id: itemId, n }, metadata: {} }),
      async count(table, subscriber) {
        const where = subscriber === undefined ? sql`` : sql` WHERE subscriber = ${subscriber}`;
        return (await sql<{ c: number }>`SELECT count(*) AS c FROM ${sql.table(table)}${where}`.execute(db)).rows[0]?.c ?? 0;
      },
      async until(check, what) {
        const deadline = Date.now() + 20_000;
        while (!(await check())) {
          if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      },
    });
  } finally {
    await consumers.stop();
    await bus.close();
    await store.close();
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
    const admin = await connect({ servers: url ?? '' });
    await (await jetstreamManager(admin)).streams.delete(stream).catch(() => false);
    await admin.close();
  }
}

/** Inserts a `seen` row per event; not idempotent by itself, so a second handling would show. */
const recording = (name: string, poison: (n: number) => boolean, extra: Partial<Subscriber> = {}): Subscriber => ({
  name,
  handles: ['Thing'],
  async handle(events, tx) {
    for (const event of events) {
      const { item_id: itemId, n } = event.data as { item_id: string; n: number };
      if (poison(n)) throw new Error(`${n} is poison`);
      await sql`INSERT INTO seen (item_id, n) VALUES (${itemId}, ${n})`.execute(tx.db);
    }
  },
  ...extra,
});

describe.skipIf(!url)('subscribers fed by JetStream', () => {
  it('attaches again when the broker loses its consumer, or its whole stream, and goes on consuming', () =>
    withConsumers([recording('lost', () => false)], {}, async ({ stream, consumers, publish, count, until }) => {
      consumers.start();
      await publish(1);
      await until(async () => (await count('seen')) === 1, 'the first event is handled');
      const admin = await connect({ servers: url ?? '' });
      const jsm = await jetstreamManager(admin);
      try {
        for await (const info of jsm.consumers.list(stream)) await jsm.consumers.delete(stream, info.name);
        await publish(2);
        await until(async () => (await count('seen')) === 2, 'an event after the consumer was deleted is handled');
        expect(consumers.attached()).toBe(true);

        // A broker restarted without its data: the stream is gone with the consumers.
        await jsm.streams.delete(stream);
        await until(async () => {
          try {
            await publish(3);
            return true;
          } catch {
            return false;
          }
        }, 'a publish is taken again');
        await until(async () => (await count('seen')) === 3, 'an event after the stream was lost is handled');
      } finally {
        await admin.close();
      }
    }));

  it('commits concurrent events together, handles each once, and parks a poison event alone', async () => {
    const batches: number[] = [];
    const counting = recording('counting', (n) => n === 13);
    const subscriber: Subscriber = {
      ...counting,
      async handle(events, tx) {
        batches.push(events.length);
        await counting.handle(events, tx);
      },
    };
    await withConsumers([subscriber], { maxDeliver: 2, retryDelayMs: 50 }, async ({ db, publish, consumers, count, until }) => {
      for (let n = 0; n < 40; n++) {
        await publish(n);
        // The same event again: the broker's dedup window or the consumed-events row must absorb it.
        if (n % 10 === 0) await publish(n);
      }
      consumers.start();
      await until(async () => (await count('seen')) === 39 && (await listParked(db, 'counting')).length === 1, '39 seen, one parked');
      const perItem = (await sql<{ item_id: string; c: number }>`SELECT item_id, count(*) AS c FROM seen GROUP BY item_id`.execute(db))
        .rows;
      expect(perItem.every((row) => row.c === 1)).toBe(true);
      expect(perItem.map((row) => row.item_id)).not.toContain('i-13');
      expect((await listParked(db, 'counting'))[0]?.error).toBe('13 is poison');
      expect(Math.max(...batches)).toBeGreaterThan(1);
    });
  }, 30_000);

  it('waits out its database being unreachable, however many deliveries that takes, and parks nothing for it', async () => {
    let down = true;
    const transactions: number[] = [];
    const subscriber = recording('patient', () => false);
    await withConsumers(
      [{ ...subscriber, handle: (events, tx) => subscriber.handle(events, tx) }],
      { maxDeliver: 2, retryDelayMs: 50, storageDown: () => (transactions.push(Date.now()), down) },
      async ({ db, publish, consumers, count, until }) => {
        for (let n = 0; n < 10; n++) await publish(n);
        consumers.start();
        // Down long enough for many more tries than maxDeliver allows deliveries.
        await until(() => transactions.length >= 5, 'the subscriber kept trying');
        // The admin API tells the truth meanwhile: retrying, with the database's own words.
        expect((await consumers.status())[0]).toMatchObject({ state: 'retrying', fault: expect.any(String), parked: 0 });
        await new Promise((r) => setTimeout(r, 1500));
        down = false;
        await until(async () => (await count('seen')) === 10 && (await consumers.status())[0]?.lag === 0, 'all ten handled');
        expect((await consumers.status())[0]).toMatchObject({ state: 'running' });
        expect((await consumers.status())[0]).not.toHaveProperty('fault');
        expect(await listParked(db, 'patient')).toEqual([]);
        const perItem = (await sql<{ c: number }>`SELECT count(*) AS c FROM seen GROUP BY item_id`.execute(db)).rows;
        expect(perItem.every((row) => row.c === 1)).toBe(true);
      },
    );
  }, 30_000);

  it('commits nothing and parks nothing while its fence holds it back, in its transactions and its replays', async () => {
    let held = true;
    let asked = 0;
    const fence = async () => {
      asked += 1;
      if (held) throw new UnavailableError('subscriptions.schema-locked', 'a replay holds the schema');
    };
    const subscriber = recording('fenced', () => false, { reset: async () => undefined });
    await withConsumers([subscriber], { maxDeliver: 2, retryDelayMs: 50, fence }, async ({ db, publish, consumers, count, until }) => {
      for (let n = 0; n < 5; n++) await publish(n);
      consumers.start();
      // Asked again and again, more often than maxDeliver would allow deliveries of a failing event.
      await until(() => asked >= 5, 'the fence was asked again and again');
      expect((await consumers.status())[0]).toMatchObject({
        state: 'retrying',
        fault: expect.stringContaining('a replay holds the schema'),
        parked: 0,
      });
      expect(await count('seen')).toBe(0);
      // A replay asked for on this server waits too: its reset is a transaction of the subscriber's.
      await expect(consumers.replay('fenced')).rejects.toThrow('a replay holds the schema');
      held = false;
      await until(async () => (await count('seen')) === 5, 'all five handled');
      expect(await listParked(db, 'fenced')).toEqual([]);
    });
  }, 30_000);

  it('folds the stages of one entity delivered together in one transaction, in the order of the stream', async () => {
    const calls: string[][] = [];
    let running = 0;
    let overlapped = false;
    const subscriber: Subscriber = {
      name: 'folding',
      handles: ['Thing'],
      async handle(events) {
        overlapped ||= running > 0;
        running += 1;
        await new Promise((r) => setTimeout(r, 5));
        calls.push(events.map((event) => `${(event.data as { item_id: string }).item_id}/${(event.data as { n: number }).n}`));
        running -= 1;
      },
    };
    await withConsumers([subscriber], {}, async ({ publish, consumers, until }) => {
      for (let n = 0; n < 30; n++) await publish(n, n % 3 === 0 ? 'same' : `other-${n}`);
      consumers.start();
      await until(() => calls.flat().length === 30, 'all 30 handled');
      const same = calls.map((call) => call.filter((entry) => entry.startsWith('same/')));
      expect(same.flat()).toEqual(Array.from({ length: 10 }, (_, i) => `same/${i * 3}`));
      // Stages of one item share a transaction instead of waiting for each other's commit.
      expect(Math.max(...same.map((entries) => entries.length))).toBeGreaterThan(1);
      expect(overlapped).toBe(false);
    });
  }, 30_000);

  it('starts a transaction no sooner than the commit interval after the last, so events arriving meanwhile share it', async () => {
    const batches: number[][] = [];
    const subscriber: Subscriber = {
      name: 'spaced',
      handles: ['Thing'],
      idempotent: true,
      handle(events) {
        batches.push(events.map((event) => (event.data as { n: number }).n));
        return Promise.resolve();
      },
    };
    for (const commitIntervalMs of [0, 1000]) {
      batches.length = 0;
      await withConsumers([subscriber], { commitIntervalMs }, async ({ publish, consumers, until }) => {
        consumers.start();
        // One event alone after a quiet spell, then five more 50 ms apart.
        await publish(0);
        await until(() => batches.length === 1, 'the first event handled');
        for (let n = 1; n <= 5; n++) {
          await publish(n);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await until(() => batches.flat().length === 6, 'all six handled');
      });
      expect(batches[0]).toEqual([0]);
      // Without an interval each comes as it arrives; with one, those within it wait for one transaction.
      if (commitIntervalMs === 0) expect(batches.length).toBeGreaterThan(2);
      else expect(batches.slice(1)).toEqual([[1, 2, 3, 4, 5]]);
    }
  }, 30_000);

  it('keeps no record of consumed events for an idempotent subscriber, and does for the others', async () => {
    const subscribers = [recording('refolding', () => false, { idempotent: true }), recording('counting', () => false)];
    await withConsumers(subscribers, {}, async ({ publish, consumers, count, until }) => {
      for (let n = 0; n < 10; n++) await publish(n);
      consumers.start();
      await until(async () => (await count('seen')) === 20, 'both handled all ten');
      expect(await count('consumed_events', 'refolding')).toBe(0);
      expect(await count('consumed_events', 'counting')).toBe(10);
    });
  }, 30_000);

  it('acknowledges the events a subscriber passes over without a transaction or a consumed-event row', async () => {
    const handled: number[] = [];
    const evenOnly = recording('even', () => false, {
      wants: (event) => (event.data as { n: number }).n % 2 === 0,
    });
    const subscriber: Subscriber = {
      ...evenOnly,
      async handle(events, tx) {
        handled.push(...events.map((event) => (event.data as { n: number }).n));
        await evenOnly.handle(events, tx);
      },
    };
    await withConsumers([subscriber], {}, async ({ publish, consumers, count, until }) => {
      for (let n = 0; n < 10; n++) await publish(n);
      consumers.start();
      // Acknowledged all ten: the passed-over ones are not pending on the broker.
      await until(async () => (await consumers.status())[0]?.lag === 0 && (await count('seen')) === 5, 'all ten settled');
      expect(handled.sort((a, b) => a - b)).toEqual([0, 2, 4, 6, 8]);
      expect(await count('consumed_events', 'even')).toBe(5);
    });
  }, 30_000);

  it('asks the broker for the list of consumers once per status report, however many subscribers it has', async () => {
    const subscribers = ['one', 'two', 'three'].map((name) => recording(name, () => false));
    await withConsumers(subscribers, {}, async ({ stream, publish, consumers, count, until }) => {
      await publish(0);
      consumers.start();
      await until(async () => (await count('seen')) === 3, 'each subscriber handled the event');
      // Requests to JetStream's API are messages: another connection sees each listing asked for.
      const watcher = await connect({ servers: url ?? '' });
      try {
        const listings = watcher.subscribe(`$JS.API.CONSUMER.LIST.${stream}`);
        await watcher.flush();
        const report = await consumers.status();
        await watcher.flush();
        listings.unsubscribe();
        expect(report.map((s) => [s.name, s.lag])).toEqual([
          ['one', 0],
          ['two', 0],
          ['three', 0],
        ]);
        expect(listings.getReceived()).toBe(1);
      } finally {
        await watcher.close();
      }
    });
  }, 30_000);

  it('runs replays asked for at once one after the other, leaving one consumer that stops with the others', async () => {
    const subscriber = recording('viewing', () => false, {
      async reset(tx) {
        await sql`DELETE FROM seen`.execute(tx.db);
      },
    });
    await withConsumers([subscriber], {}, async ({ publish, consumers, count, until }) => {
      for (let n = 0; n < 5; n++) await publish(n);
      consumers.start();
      await until(async () => (await count('seen')) === 5, 'five seen');
      await Promise.all([consumers.replay('viewing'), consumers.replay('viewing'), consumers.replay('viewing')]);
      await until(async () => (await count('seen')) === 5 && (await consumers.status())[0]?.lag === 0, 'the view is rebuilt');
      await consumers.stop();
      // A consumer left behind by overlapping replays would go on taking messages after the stop.
      for (let n = 5; n < 8; n++) await publish(n);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await count('seen')).toBe(5);
    });
  }, 40_000);

  it('gives up on a parked event when told to, and handles the next ones', async () => {
    const subscriber = recording('giving-up', (n) => n === 1);
    await withConsumers([subscriber], { maxDeliver: 2, retryDelayMs: 50 }, async ({ db, publish, consumers, count, until }) => {
      for (let n = 0; n < 3; n++) await publish(n);
      consumers.start();
      await until(async () => (await listParked(db, 'giving-up')).length === 1, 'one parked');
      const [parked] = await listParked(db, 'giving-up');
      await expect(consumers.discardParked('giving-up', 'no-such-event')).rejects.toMatchObject({ code: 'subscriptions.not-parked' });
      await consumers.discardParked('giving-up', parked?.eventId ?? '');
      expect(await listParked(db, 'giving-up')).toEqual([]);
      await publish(3);
      await until(async () => (await count('seen')) === 3, 'the others seen');
    });
  }, 40_000);

  it('reports lag, retries a parked event by its id, and replays a view from the first message of the stream', async () => {
    let poisonous = true;
    const told: boolean[] = [];
    const recorder = recording('viewing', (n) => n === 3 && poisonous);
    const subscriber: Subscriber = {
      ...recorder,
      handle: (events, tx) => {
        // Whether the pass was told it retries a parked event.
        told.push(tx.parkedRetry === true);
        return recorder.handle(events, tx);
      },
      async reset(tx) {
        await sql`DELETE FROM seen`.execute(tx.db);
      },
    };
    await withConsumers([subscriber], { maxDeliver: 2, retryDelayMs: 50 }, async ({ db, publish, consumers, count, until }) => {
      for (let n = 0; n < 10; n++) await publish(n);
      consumers.start();
      await until(async () => (await count('seen')) === 9 && (await listParked(db, 'viewing')).length === 1, 'nine seen, one parked');
      await until(async () => (await consumers.status())[0]?.lag === 0, 'the consumer has nothing left');
      // Parked, the event holds it up no longer: it runs, not retries.
      expect((await consumers.status())[0]).toMatchObject({ name: 'viewing', lag: 0, parked: 1, state: 'running' });

      const [parked] = await listParked(db, 'viewing');
      // Retried while it still fails: a conflict saying why (not an internal error), and it stays parked.
      await expect(consumers.retryParked('viewing', parked?.eventId ?? '')).rejects.toMatchObject({ code: 'subscriptions.retry-failed' });
      // The failed retry is counted, with its error.
      expect(await listParked(db, 'viewing')).toEqual([
        expect.objectContaining({ eventId: parked?.eventId, attempts: (parked?.attempts ?? 0) + 1, error: '3 is poison' }),
      ]);
      poisonous = false;
      await expect(consumers.retryParked('viewing', 'no-such-event')).rejects.toMatchObject({ code: 'subscriptions.not-parked' });
      expect(told.length).toBeGreaterThan(0);
      expect(told.slice(0, -1)).not.toContain(true);
      told.length = 0;
      await consumers.retryParked('viewing', parked?.eventId ?? '');
      expect(told).toEqual([true]);
      expect(await count('seen')).toBe(10);
      expect(await listParked(db, 'viewing')).toEqual([]);

      // The view is lost (or must be rebuilt after a change): replay consumes the stream again.
      await sql`INSERT INTO seen (item_id, n) VALUES ('stale', 99)`.execute(db);
      await consumers.replay('viewing');
      await until(async () => (await count('seen')) === 10 && (await consumers.status())[0]?.lag === 0, 'the view is rebuilt');
      const rows = (await sql<{ item_id: string }>`SELECT item_id FROM seen ORDER BY n`.execute(db)).rows;
      expect(rows.map((r) => r.item_id)).toEqual(Array.from({ length: 10 }, (_, n) => `i-${n}`));
      await expect(consumers.replay('nobody')).rejects.toMatchObject({ code: 'subscriptions.unknown-subscriber' });
    });
  }, 40_000);

  it('says a view is being rebuilt, with the head it must reach, until the replay has read that far', async () => {
    let gate: Promise<void> = Promise.resolve();
    let open = () => {};
    const subscriber = recording('rebuilt', () => false, {
      async reset(tx) {
        await sql`DELETE FROM seen`.execute(tx.db);
      },
    });
    const held: Subscriber = { ...subscriber, handle: async (events, tx) => (await gate, subscriber.handle(events, tx)) };
    await withConsumers([held], {}, async ({ publish, consumers, sibling, count, until }) => {
      for (let n = 0; n < 20; n++) await publish(n);
      consumers.start();
      await until(async () => (await count('seen')) === 20, 'the view is built');
      expect(await consumers.replaying()).toEqual([]);
      gate = new Promise((resolve) => (open = resolve));
      await consumers.replay('rebuilt');
      expect(await consumers.replaying()).toEqual([{ name: 'rebuilt', until: 20 }]);
      expect((await consumers.status())[0]).toMatchObject({ name: 'rebuilt', replayingUntil: 20 });
      // A restarted process, or another replica of the role, knows of the replay too.
      const restarted = sibling();
      expect(await restarted.replaying()).toEqual([{ name: 'rebuilt', until: 20 }]);
      open();
      await until(async () => (await consumers.replaying()).length === 0, 'the replay has read what was there');
      expect(await count('seen')).toBe(20);
      expect((await consumers.status())[0]).not.toHaveProperty('replayingUntil');
      expect(await restarted.replaying()).toEqual([]);
    });
  }, 40_000);

  it('throws a view away only together with the mark of its replay: one that cannot be marked changes nothing', async () => {
    const subscriber = recording('marked', () => false, {
      async reset(tx) {
        await sql`DELETE FROM seen`.execute(tx.db);
      },
    });
    await withConsumers([subscriber], {}, async ({ publish, consumers, db, count, until }) => {
      for (let n = 0; n < 5; n++) await publish(n);
      consumers.start();
      await until(async () => (await count('seen')) === 5, 'the view is built');
      // As a write of the mark that fails (a lock held past its timeout, a lost connection).
      await sql`ALTER TABLE subscription_checkpoints RENAME COLUMN replaying_until TO unwritable`.execute(db);
      await expect(consumers.replay('marked')).rejects.toThrow();
      expect(await count('seen')).toBe(5);
    });
  }, 40_000);

  it('rebuilds a view from the first message of the stream when a replay was requested before it attached', async () => {
    const subscriber = recording('viewing', () => false, {
      async reset(tx) {
        await sql`DELETE FROM seen`.execute(tx.db);
      },
    });
    await withConsumers([subscriber], {}, async ({ db, publish, consumers, count, until }) => {
      for (let n = 0; n < 5; n++) await publish(n);
      consumers.start();
      await until(async () => (await count('seen')) === 5 && (await consumers.status())[0]?.lag === 0, 'five seen');
      await consumers.stop();
      // Stopped, the view changes meaning under it (a migration), which asks for it to be rebuilt.
      await sql`INSERT INTO seen (item_id, n) VALUES ('stale', 99)`.execute(db);
      await requestReplay(db, 'viewing', 'the view changed shape');
      await publish(5);
      consumers.start();
      await until(async () => (await count('seen')) === 6 && (await consumers.status())[0]?.lag === 0, 'the view is rebuilt');
      const rows = (await sql<{ item_id: string }>`SELECT item_id FROM seen ORDER BY n`.execute(db)).rows;
      expect(rows.map((r) => r.item_id)).toEqual(Array.from({ length: 6 }, (_, n) => `i-${n}`));
      expect(await replayRequests(db, ['viewing'])).toEqual(new Map());
      expect(await count('consumed_events', 'viewing')).toBe(6);
    });
  }, 40_000);
});
