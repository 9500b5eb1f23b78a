import type { Logger } from 'pino';
import type { Clock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { sqliteEventStore, type SqliteEventStoreOptions } from '../shared/event-store/sqlite/sqlite-event-store.js';
import type { IdGenerator } from '../shared/ids.js';
import type { Procedures } from '../shared/procedures.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { BACKSTOP_AUTOCHECKPOINT_PAGES, startWalCheckpointer } from '../shared/sqlite/wal-checkpointer.js';
import { postgresEventStoreMigrations } from '../shared/event-store/postgres/migrations.js';
import { postgresEventStore } from '../shared/event-store/postgres/postgres-event-store.js';
import { migratePostgresToLatest } from '../shared/postgres/migrate.js';
import { openPostgres } from '../shared/postgres/open-postgres.js';
import type { Fence } from '../shared/postgres/schema-lock.js';
import type { Kysely } from 'kysely';
import { inProcessSubscriptions, type Subscriptions } from '../shared/subscriptions/in-process-subscriptions.js';
import { admittingAppends, flowControl } from '../shared/subscriptions/flow-control.js';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { dissolveChain, joinMembers, subscriberChain, type ChainOptions } from '../shared/subscriptions/subscriber-chain.js';
import { buildContexts, CONTEXTS, type ContextLinks } from './catalog.js';
import { isPostgresUrl, postgresSchemaOf, type Config } from './config.js';
import { verifyModules, type ContextModule, type ModuleDeps } from '../shared/context-module.js';
import { countAppendedEvents, createMetrics, type IntakeMetrics } from './metrics/metrics.js';
import { embeddedMigrations, embeddedTables, sharedMigrations } from './migrations.js';

export interface StorageCoreOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly procedures: Procedures;
  /** Process metrics belong to the thread that serves /metrics; a storage thread leaves them out. */
  readonly processMetrics: boolean;
  readonly runSubscribers?: (name: string) => boolean;
  readonly links?: ContextLinks;
  /** Copy the SQLite WAL into the database file from a thread of its own (the storage thread does). */
  readonly backgroundCheckpoints?: boolean;
  /** Run first in every subscriber transaction (see inProcessSubscriptions). */
  readonly fence?: Fence;
}

/** Everything that owns the write connection: the event store, every context, the subscribers. */
export interface StorageCore {
  /** Every context's tables, and the event store's. */
  readonly db: Kysely<object>;
  /** Resolves when the database answers. */
  ping(): Promise<void>;
  readonly store: EventStore;
  readonly modules: readonly ContextModule[];
  readonly subscribers: readonly Subscriber[];
  readonly subscriptions: Subscriptions;
  readonly metrics: IntakeMetrics;
  readonly links: ContextLinks;
  /**
   * Starts the subscribers and each context's background work (routing's delivery worker and replay
   * jobs), or only what `what` names: a subscriber left out is driven by the caller.
   */
  start(what: { readonly subscribers: boolean; readonly backgroundWork: boolean }): void;
  /** Holds the background work (connections kept) while the process may not write, and lets it go again. */
  pauseBackgroundWork(): Promise<void>;
  resumeBackgroundWork(): void;
  close(): Promise<void>;
}

/** The contexts the embedded process runs: all but those INTAKE_DISABLE leaves out. */
export function embeddedContexts(config: Config) {
  return CONTEXTS.filter((context) => !config.disabledContexts.includes(context.name));
}

export async function buildStorageCore(options: StorageCoreOptions): Promise<StorageCore> {
  const { config, logger, clock, newId, procedures } = options;
  // Subscriber lag is read on each scrape, which can only happen once `subscriptions` exists.
  const metrics = createMetrics({ subscriberStatus: () => subscriptions.status(), processMetrics: options.processMetrics });
  const backend = await openBackend(config, options.backgroundCheckpoints ? logger : undefined, {
    clock,
    newId,
    maxQueued: config.maxQueuedAppends,
    inlineProjections: embeddedTables.flatMap((t) => t.inlineProjections ?? []),
    onBatch: (size) => metrics.groupCommitBatchSize.observe(size),
  });
  const { db } = backend;
  backend.store.onAppended(countAppendedEvents(metrics.eventsAppended, await backend.store.headPosition()));
  // Requests take their turn behind the subscribers once these trail far behind; the subscribers
  // themselves write through the store as it is.
  const flow =
    config.subscriberBacklogLimit > 0
      ? flowControl({
          backlog: () => subscriptions.backlog(),
          holdAbove: config.subscriberBacklogLimit,
          maxWaitMs: config.subscriberBacklogWaitMs,
          maxWaiting: config.maxQueuedAppends,
          onWaited: (ms) => {
            metrics.heldRequests.inc();
            metrics.heldSeconds.inc(ms / 1000);
          },
        })
      : undefined;
  const store = flow ? admittingAppends(backend.store, flow.admit) : backend.store;

  const deps: ModuleDeps = { store, db, clock, newId, logger, procedures, ...(flow ? { admit: flow.admit } : {}) };
  const { modules, links } = buildContexts(
    embeddedContexts(config),
    deps,
    { placement: 'embedded', config },
    {
      ...options.links,
      onDeliveryOutcome: (_destination, status) => metrics.deliveries.inc({ outcome: status }),
      metricsRegistry: metrics.registry,
    },
  );
  await verifyModules(modules, async () => {
    await store.close();
    await backend.close();
  });
  const subscribers = modules.flatMap((m) => m.subscribers ?? []);
  const running = await chained(
    subscribers.filter((s) => options.runSubscribers?.(s.name) ?? true),
    db,
    { clock, logger },
  );
  const subscriptions = inProcessSubscriptions({ store: backend.store, db, clock, logger, subscribers: running, fence: options.fence });
  const lagReport = setInterval(() => void reportLag(subscriptions, logger), 30_000);
  lagReport.unref();

  return {
    db,
    ping: backend.ping,
    store,
    modules,
    subscribers,
    subscriptions,
    metrics,
    links,
    start(what) {
      if (what.subscribers) subscriptions.start();
      if (what.backgroundWork) for (const module of modules) module.start?.();
    },
    async pauseBackgroundWork() {
      for (const module of modules) await module.pause?.();
    },
    resumeBackgroundWork() {
      for (const module of modules) module.resume?.();
    },
    async close() {
      clearInterval(lagReport);
      flow?.close();
      await subscriptions.stop();
      for (const module of modules) await module.stop?.();
      await store.close();
      await backend.close();
    },
  };
}

/**
 * Subscribers run as chains, one pass over each batch: one read of the log, one transaction and one
 * checkpoint per chain instead of per subscriber. `pipeline` holds an item's stages, so the views
 * are written once per item per batch. `views` holds the views kept beside it; a chain of its own
 * (rather than more members of `pipeline`) lets it start from its members' own checkpoints.
 */
const CHAINS: Readonly<Record<string, readonly string[]>> = {
  pipeline: ['validation', 'processing', 'routing', 'query', 'statistics'],
  views: ['item-status', 'profiles', 'attribution'],
};

async function chained(subscribers: readonly Subscriber[], db: Kysely<object>, options: ChainOptions): Promise<Subscriber[]> {
  let running = [...subscribers];
  for (const [name, memberNames] of Object.entries(CHAINS)) {
    const members = memberNames.flatMap((member) => running.filter((s) => s.name === member));
    if (members.length < 2) {
      await dissolveChain(
        db,
        name,
        members.map((member) => member.name),
        options.clock.now().toISOString(),
      );
      continue;
    }
    const chain = subscriberChain(name, members, options);
    await joinMembers(db, chain, options.clock.now().toISOString());
    running = [chain, ...running.filter((s) => !members.includes(s))];
  }
  return running;
}

/**
 * Logs the subscribers that lag. It runs off a timer with nobody to catch for it: while the database
 * is unreachable its status read fails, and an uncaught rejection there ended the process (a
 * PostgreSQL outage of 30 s took down the single process that would have healed on its own).
 */
export async function reportLag(subscriptions: Pick<Subscriptions, 'status'>, logger: Pick<Logger, 'info' | 'warn'>): Promise<void> {
  try {
    const behind = (await subscriptions.status()).filter((s) => s.lag > 0 || s.parked > 0);
    if (behind.length > 0) logger.info({ subscribers: behind }, 'subscriber lag');
  } catch (error) {
    logger.warn({ err: error }, "cannot report the subscribers' lag now; readiness says why");
  }
}

interface Backend {
  readonly db: Kysely<object>;
  readonly store: EventStore;
  ping(): Promise<void>;
  close(): Promise<void>;
}

type StoreOptions = Pick<SqliteEventStoreOptions, 'clock' | 'newId' | 'maxQueued' | 'inlineProjections' | 'onBatch'>;

/**
 * One SQLite file by default; or one PostgreSQL schema (`<DB_SCHEMA_PREFIX>intake`) for a user who
 * wants a database server without the distributed mode. Both read the log in commit order.
 */
async function openBackend(config: Config, checkpointLogger: Logger | undefined, options: StoreOptions): Promise<Backend> {
  if (isPostgresUrl(config.databaseUrl)) {
    const postgres = await openPostgres({
      url: config.databaseUrl,
      schema: postgresSchemaOf(config),
      maxConnections: config.databasePoolSize,
      lockTimeoutMs: config.databaseLockTimeoutMs,
    });
    await migratePostgresToLatest(postgres, [
      postgresEventStoreMigrations,
      ...sharedMigrations,
      ...embeddedTables.flatMap((t) => t.migrations),
    ]);
    const store = await postgresEventStore({ postgres, ...options });
    return {
      db: postgres.db,
      store,
      ping: async () => {
        await postgres.pool.query('SELECT 1');
      },
      close: () => postgres.close(),
    };
  }
  const path = sqlitePathFromUrl(config.databaseUrl);
  const background = checkpointLogger !== undefined && path !== ':memory:';
  const sqlite = openSqlite(path, background ? { autocheckpointPages: BACKSTOP_AUTOCHECKPOINT_PAGES } : {});
  await migrateToLatest(sqlite.db, embeddedMigrations);
  const store = await sqliteEventStore({ sqlite, durability: config.durability, ...options });
  const checkpointer = background ? startWalCheckpointer({ path, logger: checkpointLogger }) : undefined;
  return {
    db: sqlite.db,
    store,
    ping: async () => {
      sqlite.raw.prepare('SELECT 1').get();
    },
    async close() {
      // Stopped first, so the writer's connection is the last one and leaves a checkpointed file.
      await checkpointer?.stop();
      await sqlite.close();
    },
  };
}
