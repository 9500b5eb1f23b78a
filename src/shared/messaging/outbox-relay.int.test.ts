import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { InsertQueryNode, type Kysely, type KyselyPlugin, type QueryId } from 'kysely';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import type { EventStore } from '../event-store/event-store.js';
import { postgresEventStoreMigrations } from '../event-store/postgres/migrations.js';
import { postgresEventStore } from '../event-store/postgres/postgres-event-store.js';
import { sqliteEventStoreMigrations } from '../event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../ids.js';
import { migratePostgresToLatest } from '../postgres/migrate.js';
import { openOlderTransaction, openTemporarySchema, testPostgresUrl } from '../postgres/temporary-schema.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite } from '../sqlite/open-sqlite.js';
import { loadCheckpoint } from '../subscriptions/checkpoints.js';
import { subscriptionMigrations } from '../subscriptions/migrations.js';
import { inProcessMessageBus } from './in-process/in-process-message-bus.js';
import { MessageBusUnavailableError, type DeliveredMessage, type MessageBus } from './message-bus.js';
import { natsMessageBus } from './nats/nats-message-bus.js';
import { natsServerAvailable, startPrivateNatsServer } from './nats/private-nats-server.js';
import { loadRelayStream, saveRelayStream } from './bus-binding.js';
import { outboxRelay, type OutboxRelayOptions } from './outbox-relay.js';

interface ServiceStore {
  readonly store: EventStore;
  readonly db: Kysely<object>;
  close(): Promise<void>;
}

async function sqliteService(): Promise<ServiceStore> {
  const dir = mkdtempSync(join(tmpdir(), 'intake-relay-'));
  const sqlite = openSqlite(join(dir, 'events.db'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations, subscriptionMigrations]);
  const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, durability: 'process-crash' });
  return {
    store,
    db: sqlite.db,
    async close() {
      await store.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgresService(): Promise<ServiceStore> {
  const postgres = await openTemporarySchema(testPostgresUrl ?? '');
  await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations]);
  const store = await postgresEventStore({ postgres, clock: systemClock, newId: uuidV7 });
  return {
    store,
    db: postgres.db,
    async close() {
      await store.close();
      await postgres.close();
    },
  };
}

const services: Array<[string, () => Promise<ServiceStore>]> = [
  ['sqlite', sqliteService],
  ...(testPostgresUrl ? [['postgres', postgresService] as [string, () => Promise<ServiceStore>]] : []),
];
if (!testPostgresUrl) console.warn('skipping the outbox relay on PostgreSQL: TEST_POSTGRES_URL is not set');
const natsUrl = process.env.TEST_NATS_URL || undefined;
if (!natsUrl) console.warn('skipping the outbox relay over JetStream: TEST_NATS_URL is not set');
else if (!natsServerAvailable()) console.warn('skipping the outbox relay broker outage: no nats-server binary (NATS_SERVER_BIN)');

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

/** A bus that can be taken down, and that counts what reached it. */
function switchableBus(inner: MessageBus): MessageBus & { down: boolean; published: string[]; refused: number } {
  const bus = {
    down: false,
    published: [] as string[],
    refused: 0,
    async publish(subject: string, message: Parameters<MessageBus['publish']>[1]) {
      if (bus.down) {
        bus.refused += 1;
        throw new MessageBusUnavailableError('switched off for the test');
      }
      bus.published.push(message.id);
      await inner.publish(subject, message);
    },
    consume: inner.consume.bind(inner),
    progress: inner.progress.bind(inner),
    rewind: inner.rewind.bind(inner),
    close: inner.close.bind(inner),
  };
  return bus;
}

const appendItems = (store: EventStore, from: number, count: number) =>
  Promise.all(
    Array.from({ length: count }, (_, i) =>
      store.append({
        streamId: `data-${from + i}`,
        events: [
          { type: i % 2 === 0 ? 'DataReceived' : 'DataIngested', data: { n: from + i }, metadata: { correlationId: `c-${from + i}` } },
        ],
      }),
    ),
  ).then((results) => results.flatMap((r) => r.events));

/** Holds back the answer to every checkpoint write until `open()`: shows what waits for one. */
function gatedCheckpoints(db: Kysely<object>): { db: Kysely<object>; open(): void } {
  let open = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  const held = new Set<QueryId>();
  const plugin: KyselyPlugin = {
    transformQuery({ node, queryId }) {
      if (InsertQueryNode.is(node) && node.into?.table.identifier.name === 'subscription_checkpoints') held.add(queryId);
      return node;
    },
    async transformResult({ result, queryId }) {
      if (held.delete(queryId)) await gate;
      return result;
    },
  };
  return { db: db.withPlugin(plugin), open: () => open() };
}

/** Counts the checkpoint writes made through the returned handle. */
function countedCheckpoints(db: Kysely<object>): { db: Kysely<object>; writes(): number } {
  let writes = 0;
  const plugin: KyselyPlugin = {
    transformQuery({ node }) {
      if (InsertQueryNode.is(node) && node.into?.table.identifier.name === 'subscription_checkpoints') writes += 1;
      return node;
    },
    transformResult: async ({ result }) => result,
  };
  return { db: db.withPlugin(plugin), writes: () => writes };
}

const consumeOptions = { maxDeliver: 5, ackWaitMs: 2000, retryDelayMs: 20, onParked: async () => {} };

const relayOf = (service: ServiceStore, bus: MessageBus, overrides: Partial<OutboxRelayOptions> = {}) =>
  outboxRelay({
    store: service.store,
    db: service.db,
    bus,
    context: 'ingestion',
    clock: systemClock,
    logger: silent,
    pollIntervalMs: 50,
    retryBaseMs: 10,
    retryMaxMs: 100,
    ...overrides,
  });

describe.each(services)('outbox relay on %s', (name, openService) => {
  const withService = async (test: (service: ServiceStore, bus: ReturnType<typeof switchableBus>) => Promise<void>) => {
    const service = await openService();
    const bus = switchableBus(inProcessMessageBus());
    try {
      await test(service, bus);
    } finally {
      await bus.close();
      await service.close();
    }
  };

  it('publishes each event to intake.<context>.<EventType> with its id, and checkpoints after the acknowledgement', () =>
    withService(async (service, bus) => {
      const received: DeliveredMessage[] = [];
      await bus.consume('everything', ['intake.ingestion.>'], async (m) => void received.push(m), consumeOptions);
      const events = await appendItems(service.store, 0, 3);
      const relay = relayOf(service, bus);
      relay.start();
      await eventually(() => received.length === 3, 'three messages arrived');
      await relay.stop();

      expect(received.map((m) => [m.subject, m.id])).toEqual(events.map((e) => [`intake.ingestion.${e.type}`, e.eventId]));
      expect(received[0]).toMatchObject({
        type: 'DataReceived',
        data: { n: 0 },
        metadata: { correlationId: 'c-0', streamId: 'data-0', streamVersion: 1, sourcePosition: events[0]?.position },
      });
      expect(await loadCheckpoint(service.db, 'relay')).toBe(await service.store.headPosition());
    }));

  it('writes its checkpoint at most once an interval while events keep coming, and the newest one when it stops', () =>
    withService(async (service, bus) => {
      const received = new Set<string>();
      await bus.consume('everything', ['intake.ingestion.>'], async (m) => void received.add(m.id), consumeOptions);
      const counted = countedCheckpoints(service.db);
      const relay = relayOf({ ...service, db: counted.db }, bus, { checkpointIntervalMs: 60_000 });
      relay.start();
      try {
        for (const round of [0, 1, 2]) {
          await appendItems(service.store, round * 2, 2);
          await eventually(() => received.size === (round + 1) * 2, `batch ${round} arrived`);
        }
        expect(counted.writes()).toBe(1);
      } finally {
        await relay.stop();
      }
      expect(counted.writes()).toBe(2);
      expect(await loadCheckpoint(service.db, 'relay')).toBe(await service.store.headPosition());
    }));

  it('reads once for a batch shorter than its limit, then waits for the next commit, naming itself to the store', () =>
    withService(async (service, bus) => {
      const received = new Set<string>();
      await bus.consume('everything', ['intake.ingestion.>'], async (m) => void received.add(m.id), consumeOptions);
      let reads = 0;
      const readers = new Set<string | undefined>();
      const counted: EventStore = {
        ...service.store,
        readAll(options) {
          reads += 1;
          // A named reader is one the store's in-memory tail keeps events for until it has read them.
          readers.add(options.reader);
          return service.store.readAll(options);
        },
      };
      const relay = relayOf({ ...service, store: counted }, bus, { pollIntervalMs: 60_000 });
      relay.start();
      try {
        await eventually(() => reads === 1, 'the first read found the log empty');
        await appendItems(service.store, 0, 1);
        await eventually(() => received.size === 1, 'the event arrived');
        await sleep(100);
        expect(reads).toBe(2);
        expect([...readers]).toEqual(['relay']);
      } finally {
        await relay.stop();
      }
    }));

  // On SQLite a held answer holds the one connection, appends included; the relay runs on PostgreSQL.
  it.runIf(name === 'postgres')('publishes the next batch while the checkpoint of the last one is still being written', () =>
    withService(async (service, bus) => {
      const received = new Set<string>();
      await bus.consume('everything', ['intake.ingestion.>'], async (m) => void received.add(m.id), consumeOptions);
      const gated = gatedCheckpoints(service.db);
      const relay = relayOf({ ...service, db: gated.db }, bus);
      relay.start();
      try {
        await appendItems(service.store, 0, 3);
        await eventually(() => received.size === 3, 'the first batch arrived');
        await appendItems(service.store, 3, 3);
        await eventually(() => received.size === 6, 'the second batch arrived while the first checkpoint was held');
      } finally {
        gated.open();
        await relay.stop();
      }
      expect(await loadCheckpoint(service.db, 'relay')).toBe(await service.store.headPosition());
    }),
  );

  it.runIf(name === 'postgres')('publishes a commit at once while a transaction stays open elsewhere on the server', () =>
    withService(async (service, bus) => {
      const received = new Set<string>();
      await bus.consume('everything', ['intake.ingestion.>'], async (m) => void received.add(m.id), consumeOptions);
      // Only a wake or this poll would make it read again: the poll is out of the test's reach.
      const relay = relayOf(service, bus, { pollIntervalMs: 60_000 });
      relay.start();
      // Begun before the append and still open: it once kept the append's commit out of reads.
      const other = await openOlderTransaction(testPostgresUrl ?? '');
      try {
        const [event] = await appendItems(service.store, 0, 1);
        await eventually(() => received.has(event?.eventId ?? ''), 'the commit was published', 2000);
      } finally {
        await other.end();
        await relay.stop();
      }
    }),
  );

  it('stops at once when stopped while it reads, however long its poll', () =>
    withService(async (service, bus) => {
      let reading!: () => void;
      const read = new Promise<void>((resolve) => (reading = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      // The first read is held until stop() has been called: it then finds nothing, and must not wait.
      const held: EventStore = {
        ...service.store,
        async readAll(options) {
          reading();
          await released;
          return service.store.readAll(options);
        },
      };
      const relay = relayOf({ ...service, store: held }, bus, { pollIntervalMs: 60_000 });
      relay.start();
      await read;
      const stopped = relay.stop();
      release();
      const outcome = await Promise.race([stopped.then(() => 'stopped'), sleep(2000).then(() => 'still waiting')]);
      expect(outcome).toBe('stopped');
      await stopped;
    }));

  it('keeps ingestion going while the broker is down, retries, and publishes everything once it is back', () =>
    withService(async (service, bus) => {
      const received = new Set<string>();
      await bus.consume('everything', ['intake.ingestion.>'], async (m) => void received.add(m.id), consumeOptions);
      bus.down = true;
      const relay = relayOf(service, bus);
      relay.start();

      const started = Date.now();
      const events = await appendItems(service.store, 0, 50);
      expect(Date.now() - started).toBeLessThan(2000);
      await eventually(() => bus.refused >= 3, 'the relay retried');
      expect(await loadCheckpoint(service.db, 'relay')).toBe(0);
      // Said for readiness while it lasts, as the broker's fault.
      expect(relay.failing).toEqual(expect.any(String));
      expect(relay.failingOnBroker).toBe(true);

      bus.down = false;
      await eventually(() => received.size === 50, 'every event arrived after the outage');
      expect(relay.failing).toBeUndefined();
      await relay.stop();
      expect([...received].sort()).toEqual(events.map((e) => e.eventId).sort());
    }));

  it('tells a log it cannot read from a broker it cannot reach', () =>
    withService(async (service, bus) => {
      let readable = false;
      const failing: EventStore = {
        ...service.store,
        readAll: (options) =>
          readable ? service.store.readAll(options) : Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')),
      };
      const relay = relayOf({ ...service, store: failing }, bus);
      relay.start();
      try {
        await eventually(() => relay.failing !== undefined, 'the relay failed to read');
        expect([relay.failing, relay.failingOnBroker]).toEqual(['connect ECONNREFUSED 127.0.0.1:5432', false]);
        readable = true;
        await eventually(() => relay.failing === undefined, 'the relay reads again');
      } finally {
        await relay.stop();
      }
    }));

  it('resumes from its checkpoint after a restart, republishing nothing already acknowledged', () =>
    withService(async (service, bus) => {
      const received: string[] = [];
      await bus.consume('everything', ['intake.ingestion.>'], async (m) => void received.push(m.id), consumeOptions);
      const first = relayOf(service, bus);
      first.start();
      await appendItems(service.store, 0, 5);
      await eventually(() => received.length === 5, 'the first five arrived');
      await first.stop();

      await appendItems(service.store, 5, 5);
      const second = relayOf(service, bus);
      second.start();
      await eventually(() => received.length === 10, 'the rest arrived');
      await second.stop();
      expect(bus.published).toHaveLength(10);
      expect(new Set(received).size).toBe(10);
    }));

  it('knows after a restart that it was still publishing its log again into a stream made anew, until it has', () =>
    withService(async (service, bus) => {
      const events = await appendItems(service.store, 0, 5);
      // As a relay stopped halfway through left it: the new stream's time, the target, a checkpoint short of it.
      await saveRelayStream(service.db, 'relay', { created: '2026-12-07T08:00:00.000Z', republishUntil: events.at(-1)?.position });
      bus.down = true;
      const relay = relayOf(service, bus);
      relay.start();
      await sleep(100);
      expect(relay.republishing).toMatch(/publishing this role's log again, at 0 of \d+/);
      bus.down = false;
      await eventually(() => relay.republishing === undefined, 'it had published its log again');
      await relay.stop();
      expect(await loadRelayStream(service.db, 'relay')).toEqual({ created: '2026-12-07T08:00:00.000Z', republishUntil: undefined });
    }));

  describe.skipIf(!natsUrl || !natsServerAvailable())('over JetStream', () => {
    it('delivers every event exactly once to a consumer across a broker outage', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
      const server = await startPrivateNatsServer(join(dir, 'jetstream'));
      const service = await openService();
      const streamConfig = { servers: server.url, stream: 'INTAKE_INGESTION', subjects: ['intake.ingestion.>'], publishTimeoutMs: 1000 };
      const publisher = natsMessageBus({ ...streamConfig, connectionName: 'relay' });
      const subscriber = natsMessageBus({ ...streamConfig, connectionName: 'validation' });
      const relay = relayOf(service, publisher);
      try {
        const deliveries = new Map<string, number>();
        await subscriber.consume(
          'validation',
          ['intake.ingestion.>'],
          async (m) => void deliveries.set(m.id, (deliveries.get(m.id) ?? 0) + 1),
          consumeOptions,
        );
        relay.start();
        const before = await appendItems(service.store, 0, 20);
        await eventually(() => deliveries.size === 20, 'the events before the outage arrived');

        await server.stop();
        const started = Date.now();
        const during = await appendItems(service.store, 20, 20);
        expect(Date.now() - started).toBeLessThan(2000);
        await sleep(1000);
        expect(relay.position).toBe(before.at(-1)?.position);

        await server.restart();
        await eventually(() => deliveries.size === 40, 'the events appended during the outage arrived', 30_000);
        await relay.stop();

        expect([...deliveries.keys()].sort()).toEqual([...before, ...during].map((e) => e.eventId).sort());
        // Deduplicated by the broker on the event id: each event is one message in the stream.
        const admin = await connect({ servers: server.url });
        try {
          const info = await (await jetstreamManager(admin)).streams.info('INTAKE_INGESTION');
          expect(info.state.messages).toBe(40);
        } finally {
          await admin.close();
        }
      } finally {
        await relay.stop();
        await subscriber.close();
        await publisher.close();
        await service.close();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000);

    it('publishes as soon as the broker is back, not after the rest of its backoff', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
      const server = await startPrivateNatsServer(join(dir, 'jetstream'));
      const service = await openService();
      const streamConfig = { servers: server.url, stream: 'INTAKE_BACK', subjects: ['intake.ingestion.>'], publishTimeoutMs: 1000 };
      const publisher = natsMessageBus({ ...streamConfig, connectionName: 'relay' });
      const subscriber = natsMessageBus({ ...streamConfig, connectionName: 'validation' });
      // After a failure the relay would pause for half a minute: only the broker's return may end it.
      const relay = relayOf(service, publisher, { retryBaseMs: 30_000, retryMaxMs: 30_000 });
      try {
        const received = new Set<string>();
        await subscriber.consume('validation', ['intake.ingestion.>'], async (m) => void received.add(m.id), consumeOptions);
        relay.start();
        await appendItems(service.store, 0, 5);
        await eventually(() => received.size === 5, 'the events before the outage arrived');

        await server.stop();
        await appendItems(service.store, 5, 5);
        await eventually(() => relay.failingOnBroker, 'the relay failed to publish and backs off');
        await server.restart();
        await eventually(() => received.size === 10, 'the events of the outage arrived once the broker was back', 10_000);
        expect(relay.failing).toBeUndefined();
      } finally {
        await relay.stop();
        await subscriber.close();
        await publisher.close();
        await service.close();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000);

    it('notices a stream deleted on a running broker with nothing to publish and no consumer, and publishes its log again', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
      const server = await startPrivateNatsServer(join(dir, 'jetstream'));
      const service = await openService();
      const empty = await openService();
      const bus = (name: string) =>
        natsMessageBus({
          servers: server.url,
          stream: 'INTAKE_DELETED',
          subjects: ['intake.ingestion.>'],
          streamCheckIntervalMs: 200,
          connectionName: name,
        });
      const publisher = bus('tracking');
      const idle = bus('query');
      const relay = relayOf(service, publisher);
      // A role whose log is empty (it only consumes) has nothing to publish again, and says nothing is pending.
      const told: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void told.push((JSON.parse(line) as { msg: string }).msg) });
      const emptyRelay = relayOf(empty, idle, { logger });
      const admin = await connect({ servers: server.url });
      const jsm = await jetstreamManager(admin);
      const messages = () =>
        jsm.streams.info('INTAKE_DELETED').then(
          (info) => info.state.messages,
          () => 0,
        );
      try {
        // The idle role consumes, as every role with an empty log does.
        await idle.consume('query', ['intake.ingestion.>'], async () => undefined, consumeOptions);
        relay.start();
        emptyRelay.start();
        const events = await appendItems(service.store, 0, 12);
        await eventually(() => relay.position === events.at(-1)?.position, 'the log was published');
        const before = idle.streamCreated?.();
        await jsm.streams.delete('INTAKE_DELETED');
        let seen = 0;
        for (const deadline = Date.now() + 20_000; (seen = await messages()) < 12 && Date.now() < deadline;) await sleep(100);
        // Nothing failed to publish and no consumer was lost: only looking at the stream tells.
        expect(seen).toBe(12);
        await eventually(() => idle.streamCreated?.() !== before, 'the idle role saw the new stream');
        await sleep(500);
        expect(emptyRelay.republishing).toBeUndefined();
        expect(told.filter((line) => line.startsWith('the broker made the stream anew'))).toEqual([]);
      } finally {
        await admin.close();
        await relay.stop();
        await emptyRelay.stop();
        await publisher.close();
        await idle.close();
        await service.close();
        await empty.close();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000);

    it('publishes its whole log again into a stream the broker made anew after losing its data, and says so meanwhile', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intake-nats-'));
      const store = join(dir, 'jetstream');
      const server = await startPrivateNatsServer(store);
      const service = await openService();
      const publisher = natsMessageBus({
        servers: server.url,
        stream: 'INTAKE_LOST',
        subjects: ['intake.ingestion.>'],
        publishTimeoutMs: 1000,
      });
      const told: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => void told.push((JSON.parse(line) as { msg: string }).msg) });
      const relay = relayOf(service, publisher, { logger });
      const messagesInStream = async () => {
        const admin = await connect({ servers: server.url });
        try {
          return (await (await jetstreamManager(admin)).streams.info('INTAKE_LOST')).state.messages;
        } catch {
          return 0;
        } finally {
          await admin.close();
        }
      };
      try {
        relay.start();
        const before = await appendItems(service.store, 0, 30);
        await eventually(() => relay.position === before.at(-1)?.position, 'the log was published');
        expect(await messagesInStream()).toBe(30);

        // The broker restarted without its data; nothing new is appended to the log meanwhile.
        await server.stop();
        rmSync(store, { recursive: true, force: true });
        await server.restart();
        let seen = 0;
        const deadline = Date.now() + 30_000;
        while ((seen = await messagesInStream()) < 30 && Date.now() < deadline) await sleep(100);
        // Before, the relay went on from its checkpoint: the new stream never held these 30 events.
        expect(seen).toBe(30);
        await eventually(() => relay.republishing === undefined, 'the relay said it had published its log again');
        expect(told).toContain(
          'the broker made the stream anew, without the messages published before (its data lost?): publishing the log again from the start',
        );
        await relay.stop();
        // A restart finds the checkpoint in the new stream: nothing is published a third time.
        const again = relayOf(service, publisher);
        again.start();
        await sleep(500);
        await again.stop();
        expect(await messagesInStream()).toBe(30);
      } finally {
        await relay.stop();
        await publisher.close();
        await service.close();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000);
  });
});
