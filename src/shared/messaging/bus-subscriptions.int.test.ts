import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { sql } from 'kysely';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { sqliteEventStoreMigrations } from '../event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../ids.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite } from '../sqlite/open-sqlite.js';
import { listParked } from '../subscriptions/checkpoints.js';
import { subscriptionMigrations } from '../subscriptions/migrations.js';
import type { Subscriber } from '../subscriptions/subscriber.js';
import { busSubscriptions } from './bus-subscriptions.js';
import { natsMessageBus } from './nats/nats-message-bus.js';

const url = process.env.TEST_NATS_URL || undefined;
if (!url) console.warn('skipping the bus subscription suite: TEST_NATS_URL is not set');

describe.skipIf(!url)('subscribers fed by JetStream', () => {
  it('commits concurrent events together, handles each once, and parks a poison event alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-bus-sub-'));
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const sqlite = openSqlite(join(dir, 'db.sqlite'));
    await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
    await sql`CREATE TABLE seen (item_id TEXT NOT NULL, n INTEGER NOT NULL)`.execute(sqlite.db);
    const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
    const bus = natsMessageBus({ servers: url ?? '', stream, subjects: [`t${suffix}.>`] });
    const batches: number[] = [];
    // Not idempotent by itself: a second handling would insert a second row.
    const subscriber: Subscriber = {
      name: 'counting',
      handles: ['Thing'],
      async handle(events, tx) {
        batches.push(events.length);
        for (const event of events) {
          const { item_id: itemId, n } = event.data as { item_id: string; n: number };
          if (n === 13) throw new Error('thirteen is poison');
          await sql`INSERT INTO seen (item_id, n) VALUES (${itemId}, ${n})`.execute(tx.db);
        }
      },
    };
    const consumers = busSubscriptions({
      bus,
      store,
      db: sqlite.db,
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      role: 'test',
      subscribers: [subscriber],
      subjects: [`t${suffix}.>`],
      maxDeliver: 2,
      retryDelayMs: 50,
    });
    try {
      for (let n = 0; n < 40; n++) {
        const message = { id: `e-${suffix}-${n}`, type: 'Thing', data: { item_id: `i-${n}`, n }, metadata: {} };
        await bus.publish(`t${suffix}.x.Thing`, message);
        // The same event again: the broker's dedup window or the consumed-events row must absorb it.
        if (n % 10 === 0) await bus.publish(`t${suffix}.x.Thing`, message);
      }
      consumers.start();
      const deadline = Date.now() + 20_000;
      for (;;) {
        const rows = (await sql<{ c: number }>`SELECT count(*) AS c FROM seen`.execute(sqlite.db)).rows[0]?.c ?? 0;
        const parked = await listParked(sqlite.db, 'counting');
        if (rows === 39 && parked.length === 1) break;
        if (Date.now() > deadline) throw new Error(`rows ${rows}, parked ${parked.length}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const perItem = (
        await sql<{ item_id: string; c: number }>`SELECT item_id, count(*) AS c FROM seen GROUP BY item_id`.execute(sqlite.db)
      ).rows;
      expect(perItem.every((row) => row.c === 1)).toBe(true);
      expect(perItem.map((row) => row.item_id)).not.toContain('i-13');
      expect((await listParked(sqlite.db, 'counting'))[0]?.error).toBe('thirteen is poison');
      expect(Math.max(...batches)).toBeGreaterThan(1);
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
  }, 30_000);

  it('folds the stages of one entity delivered together in one transaction, in the order of the stream', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-bus-order-'));
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const sqlite = openSqlite(join(dir, 'db.sqlite'));
    await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
    const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
    const bus = natsMessageBus({ servers: url ?? '', stream, subjects: [`o${suffix}.>`] });
    const calls: string[][] = [];
    let running = 0;
    let overlapped = false;
    const subscriber: Subscriber = {
      name: 'folding',
      handles: ['Stage'],
      async handle(events) {
        overlapped ||= running > 0;
        running += 1;
        await new Promise((r) => setTimeout(r, 5));
        calls.push(events.map((event) => `${(event.data as { item_id: string }).item_id}/${(event.data as { n: number }).n}`));
        running -= 1;
      },
    };
    const consumers = busSubscriptions({
      bus,
      store,
      db: sqlite.db,
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      role: 'order',
      subscribers: [subscriber],
      subjects: [`o${suffix}.>`],
    });
    try {
      for (let n = 0; n < 30; n++) {
        const itemId = n % 3 === 0 ? 'same' : `other-${n}`;
        await bus.publish(`o${suffix}.x.Stage`, { id: `o-${suffix}-${n}`, type: 'Stage', data: { item_id: itemId, n }, metadata: {} });
      }
      consumers.start();
      const deadline = Date.now() + 20_000;
      while (calls.flat().length < 30) {
        if (Date.now() > deadline) throw new Error(`handled ${calls.flat().length} of 30`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const same = calls.map((call) => call.filter((entry) => entry.startsWith('same/')));
      expect(same.flat()).toEqual(Array.from({ length: 10 }, (_, i) => `same/${i * 3}`));
      // Stages of one item share a transaction instead of waiting for each other's commit.
      expect(Math.max(...same.map((entries) => entries.length))).toBeGreaterThan(1);
      expect(overlapped).toBe(false);
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
  }, 30_000);

  it('reports lag, retries a parked event by its id, and replays a view from the first message of the stream', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-bus-admin-'));
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const sqlite = openSqlite(join(dir, 'db.sqlite'));
    await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
    await sql`CREATE TABLE seen (item_id TEXT NOT NULL, n INTEGER NOT NULL)`.execute(sqlite.db);
    const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
    const bus = natsMessageBus({ servers: url ?? '', stream, subjects: [`a${suffix}.>`] });
    let poisonous = true;
    const subscriber: Subscriber = {
      name: 'viewing',
      handles: ['Thing'],
      async handle(events, tx) {
        for (const event of events) {
          const { item_id: itemId, n } = event.data as { item_id: string; n: number };
          if (n === 3 && poisonous) throw new Error('three is poison');
          await sql`INSERT INTO seen (item_id, n) VALUES (${itemId}, ${n})`.execute(tx.db);
        }
      },
      async reset(tx) {
        await sql`DELETE FROM seen`.execute(tx.db);
      },
    };
    const consumers = busSubscriptions({
      bus,
      store,
      db: sqlite.db,
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      role: 'admin',
      subscribers: [subscriber],
      subjects: [`a${suffix}.>`],
      maxDeliver: 2,
      retryDelayMs: 50,
    });
    const seen = async () => (await sql<{ c: number }>`SELECT count(*) AS c FROM seen`.execute(sqlite.db)).rows[0]?.c ?? 0;
    const until = async (check: () => Promise<boolean>, what: string) => {
      const deadline = Date.now() + 20_000;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      for (let n = 0; n < 10; n++) {
        await bus.publish(`a${suffix}.x.Thing`, { id: `a-${suffix}-${n}`, type: 'Thing', data: { item_id: `i-${n}`, n }, metadata: {} });
      }
      consumers.start();
      await until(async () => (await seen()) === 9 && (await listParked(sqlite.db, 'viewing')).length === 1, 'nine seen, one parked');
      await until(async () => (await consumers.status())[0]?.lag === 0, 'the consumer has nothing left');
      expect((await consumers.status())[0]).toMatchObject({ name: 'viewing', lag: 0, parked: 1 });

      poisonous = false;
      await expect(consumers.retryParked('viewing', 'no-such-event')).rejects.toMatchObject({ code: 'subscriptions.not-parked' });
      await consumers.retryParked('viewing', `a-${suffix}-3`);
      expect(await seen()).toBe(10);
      expect(await listParked(sqlite.db, 'viewing')).toEqual([]);

      // The view is lost (or must be rebuilt after a change): replay consumes the stream again.
      await sql`INSERT INTO seen (item_id, n) VALUES ('stale', 99)`.execute(sqlite.db);
      await consumers.replay('viewing');
      await until(async () => (await seen()) === 10 && (await consumers.status())[0]?.lag === 0, 'the view is rebuilt');
      const rows = (await sql<{ item_id: string }>`SELECT item_id FROM seen ORDER BY n`.execute(sqlite.db)).rows;
      expect(rows.map((r) => r.item_id)).toEqual(Array.from({ length: 10 }, (_, n) => `i-${n}`));
      await expect(consumers.replay('nobody')).rejects.toMatchObject({ code: 'subscriptions.unknown-subscriber' });
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
  }, 40_000);
});
