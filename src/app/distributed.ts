import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { postgresEventStoreMigrations } from '../shared/event-store/postgres/migrations.js';
import { postgresEventStore } from '../shared/event-store/postgres/postgres-event-store.js';
import { uuidV7, type IdGenerator } from '../shared/ids.js';
import { busSubscriptions, type BusSubscriptions } from '../shared/messaging/bus-subscriptions.js';
import type { MessageBus } from '../shared/messaging/message-bus.js';
import { natsMessageBus } from '../shared/messaging/nats/nats-message-bus.js';
import { outboxRelay, type OutboxRelay } from '../shared/messaging/outbox-relay.js';
import { migratePostgresToLatest } from '../shared/postgres/migrate.js';
import { openPostgres, type PostgresHandle } from '../shared/postgres/open-postgres.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { applicationsModule, applicationsReplica, applicationsTables } from '../applications/module.js';
import { attributionModule, attributionTables } from '../attribution/module.js';
import { ingestionModule, ingestionTables } from '../ingestion/module.js';
import { processingModule, processingTables } from '../processing/module.js';
import { queryModule, queryTables } from '../query/module.js';
import { routingModule, routingRulesReplica, routingTables } from '../routing/module.js';
import { statisticsModule, statisticsTables } from '../statistics/module.js';
import { trackingModule, trackingTables } from '../tracking/module.js';
import { validationModule, validationTables } from '../validation/module.js';
import type { Config } from './config.js';
import type { ContextModule, ContextTables, ModuleDeps } from './context-module.js';
import { buildHttpServer, type CheckStatus } from './http/server.js';
import { createMetrics } from './metrics/metrics.js';
import { ROLES, type Role } from './roles.js';
import { routingOptionsFrom } from './routing-options.js';
import { version } from './version.js';

/**
 * The tables each role keeps in its own schema. Ingestion keeps a replica of the routing rules (rules
 * are evaluated on the ingest path) and routing a replica of the applications (rules name one).
 */
export const ROLE_TABLES: Readonly<Record<Role, readonly ContextTables[]>> = {
  ingestion: [applicationsTables, ingestionTables, routingTables],
  validation: [validationTables],
  processing: [processingTables],
  query: [queryTables],
  routing: [routingTables, applicationsTables],
  statistics: [statisticsTables],
  tracking: [trackingTables],
  attribution: [attributionTables],
};

function roleModules(role: Role, deps: ModuleDeps, config: Config): ContextModule[] {
  switch (role) {
    case 'ingestion': {
      const applications = applicationsModule(deps);
      const rules = routingRulesReplica(deps);
      const ingestion = ingestionModule(deps, {
        route: rules.evaluate,
        ensureSource: applications.ensureApplication,
        idempotencyWindowMs: config.idempotencyWindowHours * 3600_000,
      });
      return [applications, ingestion, { name: 'routing-rules-replica', subscribers: [rules.subscriber] }];
    }
    case 'validation':
      // Items come from ingestion's log: the schema in force is found by the item's received_at.
      return [validationModule(deps, 'time')];
    case 'processing':
      return [processingModule(deps)];
    case 'query':
      return [queryModule(deps, 'own-copy')];
    case 'routing': {
      const applications = applicationsReplica(deps);
      const routing = routingModule(
        deps,
        routingOptionsFrom(config, async (appId) => (await applications.find(appId)) !== undefined),
      );
      return [routing, { name: 'applications-replica', subscribers: [applications.subscriber] }];
    }
    case 'statistics':
      return [statisticsModule(deps, false)];
    case 'tracking':
      return [trackingModule(deps)];
    case 'attribution':
      return [attributionModule(deps)];
  }
}

export interface ServiceRole {
  readonly role: Role;
  readonly store: EventStore;
  readonly postgres: PostgresHandle;
  readonly relay: OutboxRelay;
  readonly consumers: BusSubscriptions;
  readonly modules: readonly ContextModule[];
}

export interface DistributedIntake {
  readonly app: FastifyInstance;
  readonly roles: readonly ServiceRole[];
  close(): Promise<void>;
}

export interface DistributedOptions {
  readonly config: Config;
  readonly logger: FastifyBaseLogger & Logger;
  readonly adminDigest: Buffer;
  readonly clock?: Clock;
  readonly newId?: IdGenerator;
}

/**
 * The composition root of the distributed mode: the given roles, each with its own PostgreSQL schema
 * and event store, publishing its events through an outbox relay and fed by durable JetStream
 * consumers. Several roles may share a process; usually each runs in its own.
 */
export async function buildDistributed(options: DistributedOptions): Promise<DistributedIntake> {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  const newId = options.newId ?? uuidV7;
  const roles = config.roles === 'all' ? [...ROLES] : config.roles;
  const metrics = createMetrics();
  let brokerError: { at: number; message: string } | undefined;
  const bus: MessageBus = natsMessageBus({
    servers: config.natsUrl ?? '',
    stream: config.natsStream,
    subjects: ['intake.>'],
    connectionName: `intake-${roles.join('+')}`,
    onError: (error) => {
      brokerError = { at: Date.now(), message: error instanceof Error ? error.message : String(error) };
    },
  });

  const services: ServiceRole[] = [];
  for (const role of roles) {
    const postgres = await openPostgres({ url: config.databaseUrl, schema: `${config.schemaPrefix}${role}` });
    const tables = ROLE_TABLES[role];
    await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, ...tables.flatMap((t) => t.migrations)]);
    const store = await postgresEventStore({
      postgres,
      clock,
      newId,
      inlineProjections: tables.flatMap((t) => t.inlineProjections ?? []),
      onBatch: (size) => metrics.groupCommitBatchSize.observe(size),
      // Replicas of a role share its schema: each wakes its relay when any of them appends.
      notifyChannel: `intake_${config.schemaPrefix}${role}`,
    });
    const deps: ModuleDeps = { store, db: postgres.db, clock, newId, logger, config };
    const modules = roleModules(role, deps, config);
    const subscribers: Subscriber[] = modules.flatMap((m) => m.subscribers ?? []);
    services.push({
      role,
      store,
      postgres,
      modules,
      relay: outboxRelay({ store, db: postgres.db, bus, context: role, clock, logger }),
      consumers: busSubscriptions({ bus, store, clock, logger, role, subscribers }),
    });
  }

  const app = await buildHttpServer({
    logger,
    version,
    bodyLimitBytes: config.bodyLimitBytes,
    adminDigest: options.adminDigest,
    metrics,
    metricsToken: config.metricsToken,
    // Write keys are known where applications live: the ingestion role.
    verifyWriteKey: services.flatMap((s) => s.modules).find((m) => m.verifyWriteKey)?.verifyWriteKey,
    readiness: async () => {
      const checks: Record<string, { status: CheckStatus; detail?: string }> = {};
      for (const service of services) {
        try {
          await service.postgres.pool.query('SELECT 1');
          checks[`database:${service.role}`] = { status: 'ok' };
        } catch (error) {
          checks[`database:${service.role}`] = { status: 'down', detail: (error as Error).message };
        }
      }
      const recentBrokerError = brokerError && Date.now() - brokerError.at < 10_000 ? brokerError.message : undefined;
      const attached = services.every((s) => s.consumers.attached());
      // Without the broker a role still accepts and stores: events wait in its log for the relay.
      checks.broker =
        recentBrokerError || !attached
          ? { status: 'degraded', detail: recentBrokerError ?? 'consumers are attaching to the broker' }
          : { status: 'ok' };
      return checks;
    },
    contexts: services.flatMap((s) => s.modules.flatMap((m) => m.http ?? [])),
  });

  for (const service of services) {
    service.relay.start();
    service.consumers.start();
    for (const module of service.modules) module.start?.();
  }
  logger.info({ roles, schemas: services.map((s) => s.postgres.schema) }, 'distributed roles started');

  return {
    app,
    roles: services,
    async close() {
      await app.close();
      for (const service of services) {
        await service.consumers.stop();
        for (const module of service.modules) await module.stop?.();
        await service.relay.stop();
      }
      await bus.close();
      for (const service of services) {
        await service.store.close();
        await service.postgres.close();
      }
    },
  };
}
