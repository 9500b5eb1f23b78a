import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { systemClock, type Clock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { sqliteEventStore } from '../shared/event-store/sqlite/sqlite-event-store.js';
import { uuidV7, type IdGenerator } from '../shared/ids.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { inProcessSubscriptions, type Subscriptions } from '../shared/subscriptions/in-process-subscriptions.js';
import type { ProcessorRegistry } from '../processing/domain/pipeline.js';
import { ingestionModule } from '../ingestion/module.js';
import { validationModule } from '../validation/module.js';
import { processingModule } from '../processing/module.js';
import { queryModule } from '../query/module.js';
import { applicationsModule } from '../applications/module.js';
import { routingModule } from '../routing/module.js';
import { trackingModule } from '../tracking/module.js';
import { attributionModule } from '../attribution/module.js';
import { statisticsModule } from '../statistics/module.js';
import { countAppendedEvents, createMetrics, type IntakeMetrics } from './metrics/metrics.js';
import type { ModuleDeps } from './context-module.js';
import type { Config } from './config.js';
import { buildHttpServer } from './http/server.js';
import { subscriptionHttp } from './http/subscription-routes.js';
import { embeddedMigrations, embeddedTables } from './migrations.js';
import { routingOptionsFrom } from './routing-options.js';
import { version } from './version.js';

export interface Intake {
  readonly app: FastifyInstance;
  readonly store: EventStore;
  readonly subscriptions: Subscriptions;
  readonly metrics: IntakeMetrics;
  /** Every context's subscribers, including any left out by `runSubscribers`. */
  readonly subscribers: readonly Subscriber[];
  readonly db: Kysely<object>;
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  readonly config: Config;
  readonly logger: FastifyBaseLogger & Logger;
  readonly clock?: Clock;
  readonly newId?: IdGenerator;
  /** Digest of the admin token (see admin-token.ts). */
  readonly adminDigest: Buffer;
  /** Start the subscribers right away (the default); the replay command drives them itself. */
  readonly startSubscribers?: boolean;
  /** Which subscribers run (all by default): tests hold a stage back with it. */
  readonly runSubscribers?: (name: string) => boolean;
  /** Processors pipelines may name, beyond or instead of the built-in ones. */
  readonly processors?: ProcessorRegistry;
}

// A subscriber this far behind the head, or with parked events, makes readiness report "degraded".
const LAG_WARNING = 10_000;

/** The composition root of the default mode: every context in one process on one SQLite file. */
export async function buildEmbedded(options: EmbeddedOptions): Promise<Intake> {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  const newId = options.newId ?? uuidV7;

  const sqlite = openSqlite(sqlitePathFromUrl(config.databaseUrl));
  await migrateToLatest(sqlite.db, embeddedMigrations);
  // Subscriber lag is read on each scrape, which can only happen once `subscriptions` exists.
  const metrics = createMetrics({ subscriberStatus: () => subscriptions.status() });
  const store = await sqliteEventStore({
    sqlite,
    clock,
    newId,
    durability: config.durability,
    maxQueued: config.maxQueuedAppends,
    inlineProjections: embeddedTables.flatMap((t) => t.inlineProjections ?? []),
    onBatch: (size) => metrics.groupCommitBatchSize.observe(size),
  });
  store.onAppended(countAppendedEvents(metrics.eventsAppended, await store.headPosition()));

  const deps: ModuleDeps = { store, db: sqlite.db, clock, newId, logger, config };
  const applications = applicationsModule(deps);
  const routing = routingModule(
    deps,
    routingOptionsFrom(
      config,
      async (appId) => (await applications.find(appId)) !== undefined,
      (_destination, status) => metrics.deliveries.inc({ outcome: status }),
    ),
  );
  const modules = [
    applications,
    ingestionModule(deps, {
      route: routing.evaluate,
      ensureSource: applications.ensureApplication,
      idempotencyWindowMs: config.idempotencyWindowHours * 3600_000,
    }),
    validationModule(deps),
    processingModule(deps, options.processors),
    queryModule(deps),
    routing,
    trackingModule(deps),
    attributionModule(deps),
    statisticsModule(deps),
  ].filter((module) => !config.disabledContexts.includes(module.name));
  const subscribers = modules.flatMap((m) => m.subscribers ?? []);
  const subscriptions = inProcessSubscriptions({
    store,
    db: sqlite.db,
    clock,
    logger,
    subscribers: subscribers.filter((s) => options.runSubscribers?.(s.name) ?? true),
  });

  const app = await buildHttpServer({
    logger,
    version,
    bodyLimitBytes: config.bodyLimitBytes,
    adminDigest: options.adminDigest,
    readiness: async () => {
      try {
        sqlite.raw.prepare('SELECT 1').get();
      } catch (error) {
        return { database: { status: 'down', detail: (error as Error).message } };
      }
      const checks: Record<string, { status: 'ok' | 'degraded'; detail: string }> = {};
      for (const s of await subscriptions.status()) {
        checks[`subscriber:${s.name}`] = {
          status: s.lag > LAG_WARNING || s.parked > 0 ? 'degraded' : 'ok',
          detail: `position ${s.position}, lag ${s.lag}, parked ${s.parked}`,
        };
      }
      return { database: { status: 'ok' as const }, ...checks };
    },
    verifyWriteKey: applications.verifyWriteKey,
    metrics,
    metricsToken: config.metricsToken,
    contexts: [...modules.flatMap((m) => m.http ?? []), subscriptionHttp(subscriptions, sqlite.db)],
  });

  if (options.startSubscribers !== false) subscriptions.start();
  for (const module of modules) module.start?.();
  const lagReport = setInterval(() => void reportLag(subscriptions, logger), 30_000);
  lagReport.unref();

  return {
    app,
    store,
    subscriptions,
    metrics,
    subscribers,
    db: sqlite.db,
    async close() {
      clearInterval(lagReport);
      await app.close();
      await subscriptions.stop();
      for (const module of modules) await module.stop?.();
      await store.close();
      await sqlite.close();
    },
  };
}

async function reportLag(subscriptions: Subscriptions, logger: Logger): Promise<void> {
  const behind = (await subscriptions.status()).filter((s) => s.lag > 0 || s.parked > 0);
  if (behind.length > 0) logger.info({ subscribers: behind }, 'subscriber lag');
}
