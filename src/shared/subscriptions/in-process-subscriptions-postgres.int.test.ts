import { sql } from 'kysely';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { postgresEventStoreMigrations } from '../event-store/postgres/migrations.js';
import { postgresEventStore } from '../event-store/postgres/postgres-event-store.js';
import { uuidV7 } from '../ids.js';
import { migratePostgresToLatest } from '../postgres/migrate.js';
import { openOlderTransaction, openTemporarySchema, testPostgresUrl } from '../postgres/temporary-schema.js';
import { listParked, loadCheckpoint } from './checkpoints.js';
import { inProcessSubscriptions } from './in-process-subscriptions.js';
import { subscriptionMigrations } from './migrations.js';
import type { Subscriber } from './subscriber.js';

/** Reads until a condition holds (a few seconds at most): handling follows a commit by a moment. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

if (!testPostgresUrl) console.warn('skipping in-process subscriptions on PostgreSQL: TEST_POSTGRES_URL is not set');

/** Records each handled event once: a second delivery would break the primary key and fail the batch. */
function recording(poison?: string): Subscriber {
  return {
    name: 'recording',
    handles: ['Added'],
    async handle(events, tx) {
      for (const event of events) {
        if (event.streamId === poison) throw new Error(`cannot handle ${poison}`);
        await sql`INSERT INTO handled (stream_id) VALUES (${event.streamId})`.execute(tx.db);
      }
    },
  };
}

describe.skipIf(!testPostgresUrl)('in-process subscriptions on PostgreSQL', () => {
  const withStore = async (test: (deps: Awaited<ReturnType<typeof open>>) => Promise<void>) => {
    const deps = await open();
    try {
      await test(deps);
    } finally {
      await deps.stop();
    }
  };

  async function open() {
    const postgres = await openTemporarySchema(testPostgresUrl ?? '');
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations]);
    await sql`CREATE TABLE handled (stream_id text PRIMARY KEY)`.execute(postgres.db);
    const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
    const subscriptions = (subscriber: Subscriber, pollIntervalMs = 20) =>
      inProcessSubscriptions({
        store,
        db: postgres.db,
        clock: systemClock,
        logger: pino({ level: 'silent' }),
        subscribers: [subscriber],
        pollIntervalMs,
        retryBaseMs: 1,
        maxAttempts: 2,
      });
    const handled = async () =>
      (await sql<{ stream_id: string }>`SELECT stream_id FROM handled ORDER BY stream_id`.execute(postgres.db)).rows.map(
        (r) => r.stream_id,
      );
    return {
      postgres,
      store,
      subscriptions,
      handled,
      async stop() {
        await store.close();
        await postgres.close();
      },
    };
  }

  it('handles, exactly once, appends made while another transaction held the log, and knows when it is caught up', () =>
    withStore(async ({ postgres, store, subscriptions, handled }) => {
      const subs = subscriptions(recording());
      subs.start();
      let releaseEarly = () => {};
      const early = store.transaction(async (tx) => {
        await tx.append({ streamId: 'a', events: [{ type: 'Added', data: {} }] });
        await new Promise<void>((resolve) => {
          releaseEarly = resolve;
        });
        await tx.append({ streamId: 'c', events: [{ type: 'Added', data: {} }] });
      });
      await new Promise((resolve) => setTimeout(resolve, 20));
      // It waits for the open transaction, which holds the log.
      const later = store.append({ streamId: 'b', events: [{ type: 'Added', data: {} }] });
      await new Promise((resolve) => setTimeout(resolve, 100));
      releaseEarly();
      await Promise.all([early, later]);
      expect(await eventually(handled, (rows) => rows.length >= 3)).toEqual(['a', 'b', 'c']);
      await subs.caughtUp(5000);
      await subs.stop();
      expect(await loadCheckpoint(postgres.db, 'recording')).toBe(await store.headPosition());
    }));

  it('handles a commit at once while a transaction stays open elsewhere on the server, and is caught up with it', () =>
    withStore(async ({ store, subscriptions, handled }) => {
      // Only a wake or this poll would make it read again: the poll is out of the test's reach.
      const subs = subscriptions(recording(), 60_000);
      subs.start();
      await subs.caughtUp(10_000);
      // Begun before the append and still open: it once kept the append's commit out of reads.
      const other = await openOlderTransaction(testPostgresUrl ?? '');
      try {
        await store.append({ streamId: 'acknowledged', events: [{ type: 'Added', data: {} }] });
        await subs.caughtUp(2000);
        expect(await handled()).toEqual(['acknowledged']);
        expect((await subs.status())[0]).toMatchObject({ lag: 0 });
      } finally {
        await other.end();
        await subs.stop();
      }
    }));

  it('runs two replays asked for at once one after the other: no reset beside the first one’s rebuilding', () =>
    withStore(async ({ postgres, store, subscriptions, handled }) => {
      await sql`CREATE TABLE counted (n integer NOT NULL)`.execute(postgres.db);
      await sql`INSERT INTO counted VALUES (0)`.execute(postgres.db);
      // Two tables, as statistics keep items and their sums: a reset clears one, then the other.
      const twoTables: Subscriber = {
        ...recording(),
        async handle(events, tx) {
          await recording().handle(events, tx);
          await sql`UPDATE counted SET n = n + ${events.length}`.execute(tx.db);
        },
        async reset(tx) {
          await sql`DELETE FROM handled`.execute(tx.db);
          await sql`SELECT pg_sleep(0.2)`.execute(tx.db);
          await sql`UPDATE counted SET n = 0`.execute(tx.db);
        },
      };
      const subs = subscriptions(twoTables);
      subs.start();
      for (let i = 0; i < 50; i++)
        await store.append({ streamId: `s${String(i).padStart(2, '0')}`, events: [{ type: 'Added', data: {} }] });
      await subs.caughtUp(10_000);
      await Promise.all([subs.replay('recording'), subs.replay('recording')]);
      await subs.caughtUp(10_000);
      const count = (await sql<{ n: number }>`SELECT n FROM counted`.execute(postgres.db)).rows[0]?.n;
      expect([count, (await handled()).length, (await listParked(postgres.db)).length]).toEqual([50, 50, 0]);
      await subs.stop();
    }));

  it('retries a parked event by its position', () =>
    withStore(async ({ postgres, store, subscriptions, handled }) => {
      const failing = subscriptions(recording('poison'));
      failing.start();
      await store.append({ streamId: 'fine', events: [{ type: 'Added', data: {} }] });
      const poison = await store.append({ streamId: 'poison', events: [{ type: 'Added', data: {} }] });
      const position = poison.events[0]?.position ?? 0;
      const parked = await eventually(
        () => listParked(postgres.db),
        (rows) => rows.length > 0,
      );
      await failing.stop();
      expect(parked.map((p) => p.position)).toEqual([position]);

      const healed = subscriptions(recording());
      await healed.retryParked('recording', position);
      expect(await handled()).toEqual(['fine', 'poison']);
      expect(await listParked(postgres.db)).toEqual([]);
    }));
});
