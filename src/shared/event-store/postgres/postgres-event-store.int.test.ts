import { PostgresQueryCompiler, sql, type KyselyPlugin } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../clock.js';
import { uuidV7 } from '../../ids.js';
import { migratePostgresToLatest } from '../../postgres/migrate.js';
import { openPostgres } from '../../postgres/open-postgres.js';
import { openOlderTransaction, openTemporarySchema, testPostgresUrl } from '../../postgres/temporary-schema.js';
import { eventStoreContract } from '../event-store.contract.js';
import { postgresEventStoreMigrations } from './migrations.js';
import { postgresEventStore } from './postgres-event-store.js';

/** A store on a fresh schema whose statements are noted as it sends them (SQL text only). */
async function recordingStore(url: string, options: { recentEvents?: number } = {}) {
  const postgres = await openTemporarySchema(url);
  await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
  const compiler = new PostgresQueryCompiler();
  const statements: string[] = [];
  const recorder: KyselyPlugin = {
    transformQuery: ({ node, queryId }) => (statements.push(compiler.compileQuery(node, queryId).sql), node),
    transformResult: async ({ result }) => result,
  };
  const store = await postgresEventStore({
    postgres: { ...postgres, db: postgres.db.withPlugin(recorder) },
    clock: systemClock,
    newId: uuidV7,
    ...options,
  });
  return { postgres, store, statements };
}

if (!testPostgresUrl) console.warn('skipping PostgreSQL event store suites: TEST_POSTGRES_URL is not set');

describe.skipIf(!testPostgresUrl)('postgres event store', () => {
  const url = testPostgresUrl ?? '';

  // With the in-memory tail, and without it, so that every read of the contract also goes to the database.
  for (const [name, recentEvents] of [
    ['postgres (schema per test)', undefined],
    ['postgres, every read from the database', 0],
  ] as const) {
    eventStoreContract(name, async (options) => {
      const postgres = await openTemporarySchema(url);
      await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
      const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, recentEvents, ...options });
      return {
        store,
        db: postgres.db,
        concurrentTransactions: true,
        async close() {
          await store.close();
          await postgres.close();
        },
      };
    });
  }

  it('refuses a transaction past MAX_QUEUED_APPENDS of them waiting or running (503), rather than let the pool time it out', async () => {
    const postgres = await openTemporarySchema(url);
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, maxQueued: 2 });
    try {
      let release = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      const running = [store.transaction(() => gate), store.transaction(() => gate)];
      await expect(store.transaction(async () => 'third')).rejects.toMatchObject({ code: 'event-store.overloaded', retryAfterSeconds: 1 });
      release();
      await Promise.all(running);
      await expect(store.transaction(async () => 'again')).resolves.toBe('again');
    } finally {
      await store.close();
      await postgres.close();
    }
  });

  it('reads its own latest commits from memory, and the database across what another process or a rollback left between them', async () => {
    const { postgres, store, statements } = await recordingStore(url);
    const other = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
    const reads = () => statements.filter((text) => text.startsWith('select') && text.includes('from "events" where "position" >')).length;
    const typesAfter = async (after: number) => (await store.readAll({ after, limit: 10 })).map((event) => event.type);
    try {
      const [a, b] = (
        await store.append({
          streamId: 'm-1',
          events: [
            { type: 'A', data: {} },
            { type: 'B', data: {} },
          ],
        })
      ).events;
      expect(await typesAfter(a?.position ?? 0)).toEqual(['B']);
      expect(reads()).toBe(0);

      await other.append({ streamId: 'm-2', events: [{ type: 'C', data: {} }] });
      const [d] = (await store.append({ streamId: 'm-3', events: [{ type: 'D', data: {} }] })).events;
      expect(await typesAfter(b?.position ?? 0)).toEqual(['C', 'D']);
      expect(reads()).toBe(1);
      expect(await typesAfter((d?.position ?? 0) - 1)).toEqual(['D']);
      expect(reads()).toBe(1);

      await store.transaction(async (tx) => {
        await tx
          .isolated(async () => {
            await tx.append({ streamId: 'm-4', events: [{ type: 'RolledBack', data: {} }] });
            throw new Error('savepoint rolled back');
          })
          .catch(() => undefined);
        await tx.append({ streamId: 'm-5', events: [{ type: 'E', data: {} }] });
      });
      expect(await typesAfter(d?.position ?? 0)).toEqual(['E']);
      expect(reads()).toBe(2);
    } finally {
      await other.close();
      await store.close();
      await postgres.close();
    }
  });

  it('wakes a store in another process through LISTEN/NOTIFY', async () => {
    const postgres = await openTemporarySchema(url);
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    const notifyChannel = `${postgres.schema}_events`;
    const writer = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    const reader = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    try {
      const woken = new Promise<number>((resolve) => reader.onAppended(resolve));
      const appended = await writer.append({ streamId: 'n-1', events: [{ type: 'A', data: {} }] });
      expect(await woken).toBe(appended.events[0]?.position);
    } finally {
      await writer.close();
      await reader.close();
      await postgres.close();
    }
  });

  it('wakes its own listeners once per commit, and not again when its NOTIFY comes back over LISTEN', async () => {
    const postgres = await openTemporarySchema(url);
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    const notifyChannel = `${postgres.schema}_echo`;
    const writer = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    const reader = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    try {
      const own: number[] = [];
      writer.onAppended((head) => own.push(head));
      const heard = new Promise<void>((resolve) => reader.onAppended(() => resolve()));
      const appended = await writer.append({ streamId: 'e-1', events: [{ type: 'A', data: {} }] });
      const grouped = await writer.transaction((tx) => tx.append({ streamId: 'e-2', events: [{ type: 'A', data: {} }] }));
      // The notification reached another listener, so it reached the writer's LISTEN connection too.
      await heard;
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(own).toEqual([appended.events[0]?.position, grouped.events[0]?.position]);
    } finally {
      await writer.close();
      await reader.close();
      await postgres.close();
    }
  });

  it('wakes another store only for what committed, also from a transaction whose savepoint rolled back', async () => {
    const postgres = await openTemporarySchema(url);
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    const notifyChannel = `${postgres.schema}_commits`;
    const writer = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    const reader = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    try {
      const heads: number[] = [];
      const woken = new Promise<void>((resolve) => reader.onAppended((head) => (heads.push(head), resolve())));
      await expect(
        writer.transaction(async (tx) => {
          await tx.append({ streamId: 'w-1', events: [{ type: 'Dropped', data: {} }] });
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      const kept = await writer.transaction(async (tx) => {
        await tx
          .isolated(async () => {
            await tx.append({ streamId: 'w-2', events: [{ type: 'AlsoDropped', data: {} }] });
            throw new Error('savepoint rolled back');
          })
          .catch(() => undefined);
        return tx.append({ streamId: 'w-3', events: [{ type: 'Kept', data: {} }] });
      });
      await woken;
      expect(heads).toEqual([kept.events[0]?.position]);
    } finally {
      await writer.close();
      await reader.close();
      await postgres.close();
    }
  });

  it('listens again after its LISTEN connection is terminated, and wakes on appends made afterwards', async () => {
    const postgres = await openTemporarySchema(url);
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    const notifyChannel = `${postgres.schema}_relisten`;
    const writer = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    const reader = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, notifyChannel });
    const listeners = async () =>
      (
        await postgres.pool.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE query = $1 AND state = 'idle'`, [
          `LISTEN ${notifyChannel}`,
        ])
      ).rows.map((row) => row.pid);
    const until = async (check: () => Promise<boolean>, what: string) => {
      const deadline = Date.now() + 10_000;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    try {
      await until(async () => (await listeners()).length === 2, 'both stores listen');
      const before = await listeners();
      // As an outage or an administrator would: every listening backend goes away.
      for (const pid of before) await postgres.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await until(async () => {
        const now = await listeners();
        return now.length === 2 && now.every((pid) => !before.includes(pid));
      }, 'both stores listen again on new connections');
      const heads: number[] = [];
      reader.onAppended((head) => heads.push(head));
      const appended = await writer.append({ streamId: 'r-1', events: [{ type: 'A', data: {} }] });
      const position = appended.events[0]?.position;
      // The writer wakes its own listeners directly; the reader hears of it only through LISTEN.
      await until(async () => heads.includes(position ?? -1), 'the reader is woken by the new append');
    } finally {
      await writer.close();
      await reader.close();
      await postgres.close();
    }
  });

  it('reads on by position with no lookup, and makes an append wait while another transaction holds the log', async () => {
    const { postgres, store, statements } = await recordingStore(url, { recentEvents: 0 });
    const lookups = () => statements.filter((text) => /"transaction_id"/.test(text)).length;
    try {
      const appended = await store.append({ streamId: 's-1', events: ['A', 'B', 'C'].map((type) => ({ type, data: {} })) });
      const positions = appended.events.map((event) => event.position);
      expect((await store.readAll({ after: positions[0] ?? 0, limit: 10 })).map((event) => event.type)).toEqual(['B', 'C']);
      expect((await store.readAll({ after: 0, limit: 2 })).map((event) => event.type)).toEqual(['A', 'B']);
      expect(lookups()).toBe(0);

      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      let holding = () => {};
      const held = new Promise<void>((resolve) => (holding = resolve));
      const open = store.transaction(async (tx) => {
        const outcome = await tx.append({ streamId: 's-2', events: [{ type: 'D', data: {} }] });
        holding();
        await released;
        return outcome.events[0]?.position ?? 0;
      });
      await held;
      const later = store.append({ streamId: 's-3', events: [{ type: 'E', data: {} }] });
      const waited = await Promise.race([later.then(() => false), new Promise((resolve) => setTimeout(() => resolve(true), 200))]);
      expect(waited).toBe(true);
      release();
      const [first, second] = [await open, (await later).events[0]?.position ?? 0];
      expect(second).toBeGreaterThan(first);
    } finally {
      await store.close();
      await postgres.close();
    }
  });

  it('has PostgreSQL end a transaction that goes quiet while it holds the log, so the other appenders go on', async () => {
    const postgres = await openTemporarySchema(url, 'intake_test', { idleInTransactionTimeoutMs: 300 });
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    const elsewhere = await openPostgres({ url, schema: postgres.schema });
    const quiet = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
    const appender = await postgresEventStore({ postgres: elsewhere, clock: systemClock, newId: uuidV7 });
    let holding = () => {};
    const held = new Promise<void>((resolve) => (holding = resolve));
    let resume = () => {};
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    try {
      const stalled = quiet.transaction(async (tx) => {
        await tx.append({ streamId: 'q-1', events: [{ type: 'Stalled', data: {} }] });
        holding();
        await resumed;
        await tx.append({ streamId: 'q-1', events: [{ type: 'TooLate', data: {} }] });
      });
      const failed = stalled.then(
        () => false,
        () => true,
      );
      await held;
      // Waits for the log's lock, which the quiet transaction holds until PostgreSQL ends it.
      await appender.append({ streamId: 'q-2', events: [{ type: 'WentOn', data: {} }] });
      resume();
      expect(await failed).toBe(true);
      expect((await appender.readAll({ after: 0, limit: 10 })).map((event) => event.type)).toEqual(['WentOn']);
    } finally {
      resume();
      await quiet.close();
      await appender.close();
      await elsewhere.close();
      await postgres.close();
    }
  });

  it('reads what committed at once while a transaction stays open elsewhere on the server, in another database too', async () => {
    const postgres = await openTemporarySchema(url);
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    // No in-memory tail: the read goes to the database.
    const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7, recentEvents: 0 });
    const elsewhere = new URL(url);
    elsewhere.pathname = '/postgres';
    const others = [await openOlderTransaction(url), await openOlderTransaction(elsewhere.toString())];
    try {
      const appended = await store.append({ streamId: 'o-1', events: [{ type: 'A', data: {} }] });
      expect((await store.readAll({ after: 0, limit: 10 })).map((event) => event.eventId)).toEqual([appended.events[0]?.eventId]);
      expect(await store.headPosition()).toBe(appended.events[0]?.position);
    } finally {
      for (const other of others) await other.end();
      await store.close();
      await postgres.close();
    }
  });

  it('reads events appended before position order first, in their old order, then the rest by position', async () => {
    const postgres = await openTemporarySchema(url);
    const { migrations } = postgresEventStoreMigrations;
    const first = migrations['0001_create_events'];
    if (!first) throw new Error('no first migration');
    await migratePostgresToLatest(postgres, [{ owner: 'event_store', migrations: { '0001_create_events': first } }]);
    // Written as the store wrote them before: B takes position 1 in a transaction that began after
    // A's, which takes position 2. Their old read order is (transaction_id, position): A, then B.
    const insert = (client: pg.ClientBase, type: string) =>
      client.query(
        `INSERT INTO ${postgres.schema}.events (event_id, stream_id, stream_version, type, data, metadata, recorded_at)
         VALUES (gen_random_uuid(), $1, 1, $1, '{}', '{}', now())`,
        [type],
      );
    const [a, b] = [new pg.Client({ connectionString: url }), new pg.Client({ connectionString: url })];
    await a.connect();
    await b.connect();
    let store: Awaited<ReturnType<typeof postgresEventStore>> | undefined;
    try {
      await a.query('BEGIN');
      await a.query('SELECT pg_current_xact_id()');
      await b.query('BEGIN');
      await insert(b, 'B');
      await b.query('COMMIT');
      await insert(a, 'A');
      await a.query('COMMIT');
      await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
      store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
      const typesAfter = async (after: number) => (await store?.readAll({ after, limit: 10 }))?.map((event) => event.type);
      const [positionOfA, positionOfB] = [2, 1];
      expect(await typesAfter(0)).toEqual(['A', 'B']);
      expect(await store.headPosition()).toBe(positionOfB);
      const appended = await store.append({ streamId: 'C', events: [{ type: 'C', data: {} }] });
      expect(await typesAfter(0)).toEqual(['A', 'B', 'C']);
      expect(await typesAfter(positionOfA)).toEqual(['B', 'C']);
      expect(await typesAfter(positionOfB)).toEqual(['C']);
      expect(await store.readAll({ after: 0, limit: 2 }).then((events) => events.map((event) => event.type))).toEqual(['A', 'B']);
      expect(await store.headPosition()).toBe(appended.events[0]?.position);
      await expect(store.readAll({ after: 0, limit: 10 })).resolves.toHaveLength(3);
      // Their read order is indexed for them alone: later appends do not grow the index.
      const index = await a.query<{ indexdef: string }>(
        `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'events_read_order'`,
        [postgres.schema],
      );
      expect(index.rows[0]?.indexdef).toContain(`WHERE ("position" <= '2'::bigint)`);
      await a.query(`SET search_path = ${postgres.schema}`);
      await a.query('SET enable_seqscan = off');
      const plan = await a.query<{ 'QUERY PLAN': string }>(
        'EXPLAIN SELECT position FROM events WHERE position <= $1 ORDER BY transaction_id, position LIMIT 10',
        ['2'],
      );
      expect(plan.rows.map((row) => row['QUERY PLAN']).join('\n')).toContain('events_read_order');
    } finally {
      await a.end();
      await b.end();
      await store?.close();
      await postgres.close();
    }
  });

  it('numbers appends without an exact expected version in the INSERT itself, with no read of the stream first', async () => {
    const { postgres, store, statements } = await recordingStore(url);
    const lookups = () => statements.filter((text) => /max\("stream_version"\)/.test(text)).length;
    const versions = async (streamId: string) => (await store.readStream(streamId)).map((e) => [e.type, e.streamVersion]);
    try {
      const created = await store.append({ streamId: 'v-1', events: [{ type: 'A', data: {} }], expectedVersion: 'no_stream' });
      const more = await store.append({
        streamId: 'v-1',
        events: [
          { type: 'B', data: {} },
          { type: 'C', data: {} },
        ],
      });
      const inOne = await store.transaction((tx) =>
        tx.appendMany([
          { streamId: 'v-1', events: [{ type: 'D', data: {} }], expectedVersion: 'any' },
          { streamId: 'v-2', events: [{ type: 'E', data: {} }] },
          { streamId: 'v-1', events: [{ type: 'F', data: {} }] },
        ]),
      );
      expect(lookups()).toBe(0);
      expect([created, more, ...inOne].map((r) => [r.nextExpectedVersion, r.events.map((e) => e.streamVersion)])).toEqual([
        [1, [1]],
        [3, [2, 3]],
        [4, [4]],
        [1, [1]],
        [5, [5]],
      ]);
      expect(await versions('v-1')).toEqual([
        ['A', 1],
        ['B', 2],
        ['C', 3],
        ['D', 4],
        ['F', 5],
      ]);
      // A new stream's name already taken fails that append alone.
      await expect(
        store.append({ streamId: 'v-2', events: [{ type: 'G', data: {} }], expectedVersion: 'no_stream' }),
      ).rejects.toMatchObject({
        name: 'ConcurrencyError',
      });
      // An exact version is checked against the stream, read first.
      const next = await store.append({ streamId: 'v-2', events: [{ type: 'H', data: {} }], expectedVersion: 1 });
      expect(next.events.map((e) => e.streamVersion)).toEqual([2]);
      expect(lookups()).toBeGreaterThan(0);
    } finally {
      await store.close();
      await postgres.close();
    }
  });

  it('appends many in a transaction without a savepoint, and fails the transaction when another writer took a version meanwhile', async () => {
    const { postgres, store, statements } = await recordingStore(url);
    try {
      await store.transaction((tx) => tx.appendMany([{ streamId: 'p-1', events: [{ type: 'A', data: {} }] }]));
      expect(statements.filter((text) => /SAVEPOINT/i.test(text))).toEqual([]);

      let taken!: () => void;
      const held = new Promise<void>((resolve) => (taken = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let holderPid = 0;
      const holder = store.transaction(async (tx) => {
        await tx.append({ streamId: 'p-2', events: [{ type: 'First', data: {} }] });
        holderPid = (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(tx.db)).rows[0]?.pid ?? 0;
        taken();
        await released;
      });
      await held;
      // Numbered after what p-2 holds now (nothing committed): it waits on the holder's version 1.
      const loser = store.transaction((tx) =>
        tx.appendMany([
          { streamId: 'p-3', events: [{ type: 'Other', data: {} }] },
          { streamId: 'p-2', events: [{ type: 'Second', data: {} }] },
        ]),
      );
      // Released only once the loser waits on the holder's lock: a fixed pause lost that race on a busy machine.
      for (let waited = 0; waited < 200; waited++) {
        const blocked = await sql<{
          n: number;
        }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${holderPid} = ANY (pg_blocking_pids(pid))`.execute(postgres.db);
        if ((blocked.rows[0]?.n ?? 0) > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      release();
      await holder;
      await expect(loser).rejects.toMatchObject({ code: 'event-store.concurrency', message: expect.stringContaining('p-2') });
      expect((await store.readStream('p-2')).map((e) => e.type)).toEqual(['First']);
      expect(await store.readStream('p-3')).toEqual([]);
      // Tried again, it goes after the version taken.
      const [, again] = await store.transaction((tx) =>
        tx.appendMany([
          { streamId: 'p-3', events: [{ type: 'Other', data: {} }] },
          { streamId: 'p-2', events: [{ type: 'Second', data: {} }] },
        ]),
      );
      expect(again?.events.map((e) => e.streamVersion)).toEqual([2]);
    } finally {
      await store.close();
      await postgres.close();
    }
  });

  it('keeps history append-only', async () => {
    const postgres = await openTemporarySchema(url);
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations]);
    const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
    try {
      await store.append({ streamId: 'h-1', events: [{ type: 'A', data: {} }] });
      await expect(postgres.pool.query(`UPDATE events SET type = 'B'`)).rejects.toThrow('append-only');
      await expect(postgres.pool.query(`DELETE FROM events`)).rejects.toThrow('append-only');
      await expect(postgres.pool.query(`TRUNCATE events`)).rejects.toThrow('append-only');
    } finally {
      await store.close();
      await postgres.close();
    }
  });
});
