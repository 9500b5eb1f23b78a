import type { ResourceLimits, Worker } from 'node:worker_threads';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { systemClock, type Clock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { sqliteEventStore } from '../shared/event-store/sqlite/sqlite-event-store.js';
import { UnavailableError } from '../shared/errors.js';
import type { StorageHealth } from '../shared/event-store/storage-fault.js';
import { uuidV7, type IdGenerator } from '../shared/ids.js';
import { localProcedures } from '../shared/procedures.js';
import { schemaFence } from '../shared/postgres/schema-lock.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { startWorker } from '../shared/threads/start-worker.js';
import { DEFAULT_STORAGE_BUDGET, storageClient, type StorageBudget, type StorageClient } from '../shared/storage-thread/storage-client.js';
import type { StorageMessage } from '../shared/storage-thread/protocol.js';
import { fromWire } from '../shared/storage-thread/wire-errors.js';
import type { Subscriptions } from '../shared/subscriptions/in-process-subscriptions.js';
import type { ProcessorRegistry } from '../processing/domain/pipeline.js';
import { buildContexts, CONTEXTS, type ContextLinks } from './catalog.js';
import { isPostgresUrl, postgresSchemaOf, subscriberLockWaitMs, type Config } from './config.js';
import type { ContextModule, ModuleDeps } from '../shared/context-module.js';
import { buildHttpServer, type CheckStatus, type ReadinessCheck } from './http/server.js';
import { subscriptionAdminOf, subscriptionHttp } from './http/subscription-routes.js';
import { createMetrics, type IntakeMetrics } from './metrics/metrics.js';
import { buildStorageCore, embeddedContexts } from './storage-core.js';
import { subscriberCheck } from './subscriber-readiness.js';
import { remoteSubscriptions, STORAGE_REPORTS, storageControl } from './storage-control.js';
import type { StorageThreadData } from './storage-thread.js';
import { version } from './version.js';

export interface Intake {
  readonly app: FastifyInstance;
  readonly store: EventStore;
  readonly subscriptions: Subscriptions;
  readonly metrics: IntakeMetrics;
  /** Every context's subscribers, including any left out by `runSubscribers`. */
  readonly subscribers: readonly Subscriber[];
  readonly db: Kysely<object>;
  /** The storage thread, when there is one. */
  readonly storageThread?: Pick<Worker, 'terminate' | 'threadId' | 'resourceLimits'>;
  /** The contexts' background work (the delivery worker, replay jobs) held and let go again; one thread only. */
  readonly backgroundWork?: { pause(): Promise<void>; resume(): void };
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  readonly config: Config;
  readonly logger: FastifyBaseLogger & Logger;
  /**
   * `thread`: a storage thread owns the write connection, the subscribers and background work, and
   * this thread serves HTTP (what `intake serve` runs). `inline`: everything on this thread, which
   * lets tests inject a clock, ids, processors or hold subscribers back.
   */
  readonly storage?: 'thread' | 'inline';
  readonly clock?: Clock;
  readonly newId?: IdGenerator;
  /** Digest of the admin token (see admin-token.ts). */
  readonly adminDigest: Buffer;
  /** Start the subscribers right away (the default); the replay command drives them itself. */
  readonly startSubscribers?: boolean;
  /**
   * Start each context's background work (the default): routing's delivery worker and replay jobs.
   * Off for `intake replay`, which rebuilds views and nothing else: what a stopped server owes (due
   * deliveries, running replay jobs) is left for it to do when it starts. Inline mode only.
   */
  readonly startBackgroundWork?: boolean;
  /** Why writes are refused for now (the schema's lock was lost): see `HttpServerOptions.writesRefused`. */
  readonly writesRefused?: () => Error | undefined;
  /** Which subscribers run (all by default): tests hold a stage back with it. */
  readonly runSubscribers?: (name: string) => boolean;
  /** Processors pipelines may name, beyond or instead of the built-in ones. */
  readonly processors?: ProcessorRegistry;
  /** Called when the storage thread dies; by default the process exits, as it cannot store anything more. */
  readonly onStorageFailure?: (error: Error) => void;
  /**
   * On PostgreSQL, subscribers commit only while no `intake replay` or `intake secret-key adopt` holds
   * the schema (schema-lock.ts). On by default; off for the replay itself, which holds it.
   */
  readonly fenced?: boolean;
}

/** The composition root of the default mode: every context in one process on one SQLite file. */
export async function buildEmbedded(options: EmbeddedOptions): Promise<Intake> {
  return options.storage === 'thread' ? withStorageThread(options) : onOneThread(options);
}

async function onOneThread(options: EmbeddedOptions): Promise<Intake> {
  const { config, logger } = options;
  const core = await buildStorageCore({
    config,
    logger,
    clock: options.clock ?? systemClock,
    newId: options.newId ?? uuidV7,
    procedures: localProcedures(),
    processMetrics: true,
    ...(isPostgresUrl(config.databaseUrl) && options.fenced !== false
      ? { fence: schemaFence(postgresSchemaOf(config), { lockWaitMs: subscriberLockWaitMs(config) }) }
      : {}),
    ...(options.runSubscribers ? { runSubscribers: options.runSubscribers } : {}),
    ...(options.processors ? { links: { processors: options.processors } } : {}),
  });
  const app = await httpEdge(options, core.modules, core.links, core.subscriptions, core.metrics, core.db, core.ping, async () =>
    core.store.health?.(),
  );
  // Fastify compiles the routes' schemas in one stretch of the thread (over a second on a busy machine):
  // background work started before it found its database connections timed out meanwhile, and logged
  // errors at every start on PostgreSQL.
  await app.ready();
  core.start({ subscribers: options.startSubscribers !== false, backgroundWork: options.startBackgroundWork !== false });
  return {
    app,
    store: core.store,
    subscriptions: core.subscriptions,
    metrics: core.metrics,
    subscribers: core.subscribers,
    db: core.db,
    backgroundWork: { pause: () => core.pauseBackgroundWork(), resume: () => core.resumeBackgroundWork() },
    async close() {
      await app.close();
      await core.close();
    },
  };
}

/**
 * The HTTP thread of a process with a storage thread: it parses, authenticates, validates and
 * serialises, reads from a read-only connection, and hands appends and procedures over.
 */
async function withStorageThread(options: EmbeddedOptions): Promise<Intake> {
  const { config, logger } = options;
  if (options.clock || options.newId || options.processors || options.runSubscribers || options.startBackgroundWork === false) {
    throw new Error('a clock, ids, processors, held-back subscribers or background work are injected into the inline mode only');
  }
  const clock = systemClock;
  const newId = uuidV7;
  let closing = false;
  let dead: Error | undefined;
  // Filled once the thread is ready; a death before that rejects the start instead.
  const started: { client?: StorageClient } = {};
  const worker = await startStorageThread(config, (error) => {
    if (closing || dead) return;
    dead = error;
    started.client?.fail(new UnavailableError('storage.down', 'the storage thread stopped; nothing can be stored', 5));
    logger.fatal({ err: error }, 'the storage thread died: stopping, since nothing can be stored any more');
    if (options.onStorageFailure) options.onStorageFailure(error);
    else process.exit(1);
  });

  const readonly = openSqlite(sqlitePathFromUrl(config.databaseUrl), { readonly: true });
  const reads = await sqliteEventStore({ sqlite: readonly, clock, newId, durability: 'process-crash' });
  const client = (started.client = storageClient(worker, reads, storageBudgetOf(config)));
  const deps: ModuleDeps = { store: client.store, db: readonly.db, clock, newId, logger, procedures: client.procedures };
  const { modules, links } = buildContexts(embeddedContexts(config), deps, { placement: 'embedded', config });
  const control = storageControl(client.procedures);
  const subscribers = modules.flatMap((m) => m.subscribers ?? []);
  const subscriptions = remoteSubscriptions(
    control,
    subscribers.map((s) => s.name),
    subscribers.filter((s) => s.reset).map((s) => s.name),
  );
  const metrics = { ...createMetrics(), elsewhere: () => control.metrics() };
  const ping = async () => {
    readonly.raw.prepare('SELECT 1').get();
  };
  const app = await httpEdge(
    options,
    modules,
    links,
    subscriptions,
    metrics,
    readonly.db,
    ping,
    () => control.health(),
    () => client.saturation(),
  );

  return {
    app,
    store: client.store,
    subscriptions,
    metrics,
    subscribers,
    db: readonly.db,
    storageThread: worker,
    async close() {
      closing = true;
      await app.close();
      // Closed before the writer, which then is the last connection and checkpoints and removes the WAL.
      await readonly.close();
      if (!dead) await control.stop();
      await worker.terminate();
    },
  };
}

/** Starts the storage thread and waits until it has migrated, built every context and started them. */
function startStorageThread(config: Config, onFailure: (error: Error) => void): Promise<Worker> {
  const workerData: StorageThreadData = { config };
  const worker = startWorker(import.meta.url, 'storage-thread', { workerData, resourceLimits: storageThreadLimits(workerData) });
  return new Promise((resolve, reject) => {
    let ready = false;
    worker.on('message', (message: StorageMessage) => {
      if (message.type === 'ready') {
        ready = true;
        resolve(worker);
      } else if (message.type === 'failed') {
        const error = fromWire(message.error);
        if (ready) onFailure(error);
        else reject(error);
      }
    });
    worker.on('error', (error) => (ready ? onFailure(error) : reject(error)));
    worker.on('exit', (code) => {
      const error = new Error(`the storage thread exited with code ${code}`);
      if (ready) onFailure(error);
      else reject(error);
    });
  });
}

async function httpEdge(
  options: EmbeddedOptions,
  modules: readonly ContextModule[],
  links: ContextLinks,
  subscriptions: Subscriptions,
  metrics: IntakeMetrics,
  db: Kysely<object>,
  ping: () => Promise<void>,
  storageHealth: () => Promise<StorageHealth | undefined>,
  saturation?: () => string | undefined,
): Promise<FastifyInstance> {
  const switchedOff = CONTEXTS.flatMap((context) =>
    context.optional && options.config.disabledContexts.includes(context.name) ? [{ name: context.name, paths: context.paths }] : [],
  );
  const readiness: ReadinessCheck = async () => {
    try {
      await ping();
    } catch (error) {
      return { database: { status: 'down', detail: (error as Error).message } };
    }
    const fault = (await storageHealth())?.fault;
    // Writes refused for now (the lock on the schema lost): the database answers, but this server may not write.
    const refused = options.writesRefused?.();
    const checks: Record<string, { status: CheckStatus; detail: string }> = {
      database: fault
        ? { status: 'down', detail: `writes failing since ${fault.since}: ${fault.message}` }
        : refused
          ? { status: 'down', detail: `reads succeed; writes refused: ${refused.message}` }
          : { status: 'ok', detail: 'reads and writes succeed' },
    };
    for (const s of await subscriptions.status()) {
      checks[`subscriber:${s.name}`] = subscriberCheck(s, options.config.subscriberBacklogLimit);
    }
    for (const { name } of switchedOff) checks[`context:${name}`] = { status: 'ok', detail: 'switched off (INTAKE_DISABLE)' };
    return checks;
  };
  return buildHttpServer({
    logger: options.logger,
    switchedOff,
    version,
    bodyLimitBytes: options.config.bodyLimitBytes,
    requestTimeoutMs: options.config.requestTimeoutMs,
    maxConnections: options.config.maxConnections,
    maxJsonDepth: options.config.maxJsonDepth,
    maxJsonValues: options.config.maxJsonValues,
    metricsToken: options.config.metricsToken,
    trustProxy: options.config.trustProxy,
    adminDigest: options.adminDigest,
    readiness,
    ...(saturation ? { saturation } : {}),
    ...(options.writesRefused ? { writesRefused: options.writesRefused } : {}),
    ...(links.verifyWriteKey ? { verifyWriteKey: links.verifyWriteKey } : {}),
    metrics,
    contexts: [...modules.flatMap((m) => m.http ?? []), subscriptionHttp(subscriptionAdminOf(subscriptions, db))],
  });
}

/**
 * An explicit heap limit makes V8 collect the storage thread's garbage sooner: under load its heap
 * held about 150 MB, of which some 40 MB was alive, and the process's peak RSS fell by about 90 MB.
 * The default (1 GB) leaves the live data many times its usual size.
 */
function storageThreadLimits({ config }: StorageThreadData): ResourceLimits {
  return { maxOldGenerationSizeMb: config.storageThreadHeapMb };
}

/**
 * What the HTTP thread may have in the storage thread's hands: MAX_QUEUED_APPENDS calls, and text in
 * proportion to the storage thread's heap (64 M characters at the default 1 GB), since each character
 * handed over costs the storage thread several bytes of objects until it is committed.
 */
export function storageBudgetOf(config: Pick<Config, 'maxQueuedAppends' | 'storageThreadHeapMb'>): StorageBudget {
  const perMb = DEFAULT_STORAGE_BUDGET.maxChars / 1024;
  return {
    maxCalls: config.maxQueuedAppends,
    maxChars: Math.min(DEFAULT_STORAGE_BUDGET.maxChars, Math.round(config.storageThreadHeapMb * perMb)),
    reports: STORAGE_REPORTS,
  };
}
