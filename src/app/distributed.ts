import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { postgresEventStoreMigrations } from '../shared/event-store/postgres/migrations.js';
import { postgresEventStore } from '../shared/event-store/postgres/postgres-event-store.js';
import { uuidV7, type IdGenerator } from '../shared/ids.js';
import { busSubscriptions, type BusSubscriptions } from '../shared/messaging/bus-subscriptions.js';
import type { MessageBus } from '../shared/messaging/message-bus.js';
import { allSubjectsOf } from '../shared/messaging/event-messages.js';
import { natsMessageBus } from '../shared/messaging/nats/nats-message-bus.js';
import { outboxRelay, type OutboxRelay } from '../shared/messaging/outbox-relay.js';
import { migratePostgresToLatest } from '../shared/postgres/migrate.js';
import { openPostgres, type PostgresHandle } from '../shared/postgres/open-postgres.js';
import { schemaFence, type Fence } from '../shared/postgres/schema-lock.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';
import { bindToBus, BusBindingMismatch, confirmBusBinding } from '../shared/messaging/bus-binding.js';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { localProcedures } from '../shared/procedures.js';
import { buildContexts, contextNamed, REPLICAS, type ContextDescriptor } from './catalog.js';
import { ConfigError, deploymentOf, postgresSchemaOf, subscriberLockWaitMs, type Config } from './config.js';
import { verifyModules, type ContextModule, type ModuleDeps } from '../shared/context-module.js';
import { busSubscriptionAdmin } from './distributed-admin.js';
import { subscriptionHttp } from './http/subscription-routes.js';
import { buildHttpServer, type CheckStatus } from './http/server.js';
import { createMetrics } from './metrics/metrics.js';
import { ROLES, type Role } from './roles.js';
import { version } from './version.js';
import { messageOf } from '../shared/errors.js';

/**
 * The contexts each role runs, from the one catalog. Ingestion keeps a replica of the routing rules
 * (rules are evaluated on the ingest path) and routing a replica of the applications (rules name one).
 */
export const ROLE_CONTEXTS: Readonly<Record<Role, readonly ContextDescriptor[]>> = {
  ingestion: [contextNamed('applications'), REPLICAS.routingRules, contextNamed('ingestion'), contextNamed('analytics')],
  validation: [contextNamed('validation')],
  processing: [contextNamed('processing')],
  query: [contextNamed('query')],
  routing: [REPLICAS.applications, contextNamed('routing')],
  statistics: [contextNamed('statistics')],
  tracking: [contextNamed('tracking')],
  attribution: [contextNamed('attribution')],
};

/** The role a context runs in: its events are published under that role's subjects. */
export function roleRunning(context: string): Role | undefined {
  return ROLES.find((role) => ROLE_CONTEXTS[role].some((descriptor) => descriptor.name === context));
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
  // Read on each scrape: the lag of every subscriber of these roles, as their durable consumers report it.
  const metrics = createMetrics({ subscriberStatus: async () => (await Promise.all(services.map((s) => s.consumers.status()))).flat() });
  let brokerError: { at: number; message: string } | undefined;
  const bus: MessageBus = natsMessageBus({
    servers: config.natsUrl ?? '',
    stream: config.natsStream,
    subjects: [allSubjectsOf(config.natsSubjectPrefix)],
    connectionName: `intake-${roles.join('+')}`,
    deployment: deploymentOf(config),
    onError: (error) => {
      brokerError = { at: performance.now(), message: messageOf(error) };
    },
  });

  const services: ServiceRole[] = [];
  for (const role of roles) {
    const { store, postgres, modules, subscribers } = await openRole(role, config, {
      clock,
      newId,
      logger,
      onBatch: (size) => metrics.groupCommitBatchSize.observe(size),
    });
    services.push({
      role,
      store,
      postgres,
      modules,
      relay: outboxRelay({ store, db: postgres.db, bus, context: role, subjectPrefix: config.natsSubjectPrefix, clock, logger }),
      // Fenced by the role's lock: no consumer transaction commits while `intake replay` rebuilds the role.
      consumers: roleConsumers(
        role,
        config,
        {
          bus,
          store,
          postgres,
          clock,
          logger,
          fence: schemaFence(postgresSchemaOf(config, role), { lockWaitMs: subscriberLockWaitMs(config) }),
        },
        subscribers,
        (subscriber, count) => metrics.eventsConsumed.inc({ subscriber }, count),
      ),
    });
  }

  const app = await buildHttpServer({
    logger,
    version,
    bodyLimitBytes: config.bodyLimitBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    maxConnections: config.maxConnections,
    maxJsonDepth: config.maxJsonDepth,
    maxJsonValues: config.maxJsonValues,
    adminDigest: options.adminDigest,
    metrics,
    metricsToken: config.metricsToken,
    trustProxy: config.trustProxy,
    // Write keys are known where applications live: the ingestion role.
    verifyWriteKey: services.flatMap((s) => s.modules).find((m) => m.verifyWriteKey)?.verifyWriteKey,
    readiness: async () => {
      const checks: Record<string, { status: CheckStatus; detail?: string }> = {};
      for (const service of services) {
        const { pool } = service.postgres;
        const busy = busyPoolCheck(pool);
        if (busy) {
          checks[`database:${service.role}`] = busy;
          continue;
        }
        try {
          await pool.query('SELECT 1');
          checks[`database:${service.role}`] = { status: 'ok' };
        } catch (error) {
          checks[`database:${service.role}`] = { status: 'down', detail: (error as Error).message };
        }
      }
      // Disconnected now, a relay that cannot publish (a broker that takes no more), or a consumer loop failed lately.
      // A relay that cannot read its log is the database's fault, told by the database check.
      const relayFailing = services
        .map((s) => (s.relay.failingOnBroker ? s.relay.failing : undefined))
        .find((reason) => reason !== undefined);
      const recentBrokerError =
        bus.unreachable?.() ??
        (relayFailing === undefined ? undefined : `events wait in the log: the relay cannot publish (${relayFailing})`) ??
        (brokerError && performance.now() - brokerError.at < 10_000 ? brokerError.message : undefined);
      // A consumer waiting out a fault stores nothing meanwhile: the view or table it keeps falls behind.
      // A view being rebuilt answers, but incompletely: degraded until the replay has read what was there.
      for (const service of services) {
        const faulted = service.consumers.faulted();
        // The replays are stored in the database, whose outage its own check reports.
        const replaying = faulted.length === 0 ? await service.consumers.replaying().catch(() => []) : [];
        checks[`subscribers:${service.role}`] = subscribersCheck(faulted, replaying);
      }
      const attached = services.every((s) => s.consumers.attached());
      // A refused configuration does not heal by waiting: not ready, so it cannot go unnoticed.
      // A role that only publishes (tracking) has no consumer to be refused: the bus itself tells.
      const misconfigured =
        services.map((s) => s.consumers.misconfigured()).find((problem) => problem !== undefined) ?? bus.misconfigured?.();
      // Without the broker a role still accepts and stores: events wait in its log for the relay.
      // A stream the broker made anew lacks what was published before, until the relays have published it again.
      const republishing = services.map((s) => s.relay.republishing).find((doing) => doing !== undefined);
      checks.broker = misconfigured
        ? { status: 'down', detail: misconfigured }
        : recentBrokerError || !attached
          ? { status: 'degraded', detail: recentBrokerError ?? 'consumers are attaching to the broker' }
          : republishing
            ? { status: 'degraded', detail: republishing }
            : { status: 'ok' };
      return checks;
    },
    contexts: [
      ...services.flatMap((s) => s.modules.flatMap((m) => m.http ?? [])),
      subscriptionHttp(busSubscriptionAdmin(services.map((s) => ({ consumers: s.consumers, db: s.postgres.db })))),
    ],
  });

  // As in one process: the routes' schemas are compiled before background work wants connections.
  await app.ready();
  for (const service of services) {
    service.relay.start();
    service.consumers.start();
    for (const module of service.modules) module.start?.();
  }
  // Until then a role's binding to its stream may be changed: a refused configuration is not kept.
  void bus
    .accepted?.()
    .then(() => Promise.all(services.map((service) => confirmBusBinding(service.postgres.db))))
    .catch((error: unknown) => logger.warn({ err: error }, 'could not record that the broker took the stream; the next start does'));
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

interface OpenedRole {
  readonly store: EventStore;
  readonly postgres: PostgresHandle;
  readonly modules: readonly ContextModule[];
  readonly subscribers: readonly Subscriber[];
}

/** A role's schema (migrated), event store and modules, built but not started: nothing runs yet. */
async function openRole(
  role: Role,
  config: Config,
  deps: { clock: Clock; newId: IdGenerator; logger: FastifyBaseLogger & Logger; onBatch?: (size: number) => void },
): Promise<OpenedRole> {
  const { clock, newId, logger } = deps;
  const postgres = await openPostgres({
    url: config.databaseUrl,
    schema: postgresSchemaOf(config, role),
    maxConnections: config.databasePoolSize,
    lockTimeoutMs: config.databaseLockTimeoutMs,
  });
  const tables = ROLE_CONTEXTS[role].map((context) => context.tables);
  await migratePostgresToLatest(postgres, [postgresEventStoreMigrations, subscriptionMigrations, ...tables.flatMap((t) => t.migrations)]);
  try {
    await bindToBus(postgres.db, { stream: config.natsStream, subjectPrefix: config.natsSubjectPrefix }, postgresSchemaOf(config, role));
  } catch (error) {
    await postgres.close();
    if (error instanceof BusBindingMismatch) throw new ConfigError(error.message);
    throw error;
  }
  const store = await postgresEventStore({
    postgres,
    clock,
    newId,
    inlineProjections: tables.flatMap((t) => t.inlineProjections ?? []),
    onBatch: deps.onBatch,
    // Replicas of a role share its schema: each wakes its relay when any of them appends.
    notifyChannel: `intake_${postgresSchemaOf(config, role)}`,
  });
  // Each role is its own storage: its procedures run in this process, against its own schema.
  const moduleDeps: ModuleDeps = { store, db: postgres.db, clock, newId, logger, procedures: localProcedures() };
  const { modules } = buildContexts(ROLE_CONTEXTS[role], moduleDeps, { placement: 'distributed', config });
  await verifyModules(modules, async () => {
    await store.close();
    await postgres.close();
  });
  return { store, postgres, modules, subscribers: modules.flatMap((m) => m.subscribers ?? []) };
}

function roleConsumers(
  role: Role,
  config: Config,
  deps: { bus: MessageBus; store: EventStore; postgres: PostgresHandle; clock: Clock; logger: Logger; fence?: Fence },
  subscribers: readonly Subscriber[],
  onConsumed?: (subscriber: string, count: number) => void,
): BusSubscriptions {
  return busSubscriptions({
    fence: deps.fence,
    bus: deps.bus,
    store: deps.store,
    db: deps.postgres.db,
    clock: deps.clock,
    logger: deps.logger,
    role,
    subscribers,
    subjectPrefix: config.natsSubjectPrefix,
    roleOf: roleRunning,
    commitIntervalMs: config.consumerCommitIntervalMs,
    onConsumed,
  });
}

export interface RebuildRole {
  readonly role: Role;
  /** Only the subscribers being rebuilt, not started: replay each, then start. */
  readonly consumers: BusSubscriptions;
}

export interface DistributedRebuild {
  readonly roles: readonly RebuildRole[];
  /** Every subscriber of the roles, rebuilt or not (for messages). */
  readonly known: readonly string[];
  close(): Promise<void>;
}

/**
 * What `intake replay` needs of the given roles and nothing more: their view-keeping subscribers
 * (`subscriber` alone when given), fed from the stream. No HTTP, no outbox relay, no module
 * background work (the routing role's delivery worker, say): the role itself is stopped meanwhile,
 * and whatever it owes is left for it to do when it starts again.
 */
export async function buildDistributedRebuild(options: {
  readonly config: Config;
  readonly logger: FastifyBaseLogger & Logger;
  readonly subscriber?: string;
}): Promise<DistributedRebuild> {
  const { config, logger } = options;
  const roles = config.roles === 'all' ? [...ROLES] : config.roles;
  const bus: MessageBus = natsMessageBus({
    servers: config.natsUrl ?? '',
    stream: config.natsStream,
    subjects: [allSubjectsOf(config.natsSubjectPrefix)],
    connectionName: `intake-replay-${roles.join('+')}`,
    deployment: deploymentOf(config),
  });
  const opened: { role: Role; store: EventStore; postgres: PostgresHandle; consumers: BusSubscriptions }[] = [];
  const known: string[] = [];
  const close = async () => {
    for (const role of opened) await role.consumers.stop();
    await bus.close();
    for (const role of opened) {
      await role.store.close();
      await role.postgres.close();
    }
  };
  try {
    for (const role of roles) {
      const { store, postgres, subscribers } = await openRole(role, config, { clock: systemClock, newId: uuidV7, logger });
      known.push(...subscribers.map((s) => s.name));
      const rebuilt = subscribers.filter(
        (s) => s.reset !== undefined && (options.subscriber === undefined || s.name === options.subscriber),
      );
      // A subscriber named but recording facts is kept: replaying it refuses with the reason.
      const named =
        options.subscriber === undefined ? [] : subscribers.filter((s) => s.reset === undefined && s.name === options.subscriber);
      const consumers = roleConsumers(role, config, { bus, store, postgres, clock: systemClock, logger }, [...rebuilt, ...named]);
      opened.push({ role, store, postgres, consumers });
    }
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
  return { roles: opened.map(({ role, consumers }) => ({ role, consumers })), known, close };
}

/** Requests already waiting for a connection: the check would wait behind them, and say nothing more. */
export function busyPoolCheck(pool: { readonly totalCount: number; readonly waitingCount: number }) {
  if (pool.waitingCount === 0) return undefined;
  return {
    status: 'degraded' as CheckStatus,
    detail: `busy: all ${pool.totalCount} connections in use, ${pool.waitingCount} requests waiting (DATABASE_POOL_SIZE)`,
  };
}

/**
 * A role's consumers as readiness tells them: one waiting out a fault stores nothing meanwhile (down),
 * unless every fault is a free connection waited for, a busy server's that passes with the burst; a
 * view being rebuilt answers, but incompletely (degraded until the replay has read what was there).
 */
export function subscribersCheck(
  faulted: ReadonlyArray<{ readonly name: string; readonly fault: string; readonly busy: boolean }>,
  replaying: ReadonlyArray<{ readonly name: string; readonly until: number }>,
): { status: CheckStatus; detail?: string } {
  if (faulted.length > 0)
    return {
      status: faulted.every((f) => f.busy) ? 'degraded' : 'down',
      detail: faulted.map(({ name, fault }) => `${name} retrying (${fault})`).join('; '),
    };
  if (replaying.length > 0)
    return { status: 'degraded', detail: replaying.map(({ name, until }) => `${name} replaying up to position ${until}`).join('; ') };
  return { status: 'ok' };
}
