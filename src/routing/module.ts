import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import type { QueuePublisher, QueueTarget, WebhookSender } from './application/destination.js';
import { deliveryWorker, type DeliveryWorker } from './application/delivery-worker.js';
import {
  createRule,
  deleteRule,
  getRule,
  patchRule,
  rotateSecret,
  saveRuleChange,
  ruleStateOf,
  toggleRule,
  updateRule,
  type RuleDeps,
} from './application/manage-rules.js';
import { allDestinations, listDestinations } from './application/destinations.js';
import { assertReplayable, cancelReplay, replayProgress, replayRunner, startReplay, type ReplayDeps } from './application/replay-jobs.js';
import { testSend } from './application/test-send.js';
import { eventStoreItems } from './adapters/log/event-store-items.js';
import { registerRoutingMetrics } from './adapters/metrics/routing-metrics.js';
import { sqlReplayStore } from './adapters/sql/sql-replays.js';
import type { Registry } from 'prom-client';
import { verifySecretKey } from './adapters/sql/sql-secret-key.js';
import { cachedRules } from './application/cached-rules.js';
import { routingScheduler } from './application/routing-scheduler.js';
import { ruleEvaluator, type RuleCacheOptions, type RuleEvaluator } from './application/rule-evaluator.js';
import { routingHttp } from './adapters/http/routing-routes.js';
import { sqlDeliveryStore } from './adapters/sql/sql-deliveries.js';
import { sqlDeliveryHistory } from './adapters/sql/sql-delivery-history.js';
import { DEFAULT_DELIVERY_RETENTION_MS, deliveryPruner } from './application/delivery-pruner.js';
import { deletedRuleSweeper } from './application/deleted-rule-backlogs.js';
import { sqlDeletedRuleBacklogs } from './adapters/sql/sql-deleted-rule-backlogs.js';
import { sqlDestinationTables } from './adapters/sql/sql-destination-tables.js';
import { routingMigrations } from './adapters/sql/migrations.js';
import { rulesProjection, sealClearSecrets, sqlRuleCatalog, sqlSecretVault } from './adapters/sql/sql-rules.js';
import { newSecretReference, secretBox } from './adapters/secrets/secret-box.js';
import { assertPublicUrl } from './adapters/webhook/assert-public-url.js';
import { assertQueueDestination, type NamedBrokers } from './adapters/queue/broker-address-policy.js';
import { newSigningSecret } from './adapters/webhook/standard-webhooks.js';
import { NotFoundError } from '../shared/errors.js';
import type { Page, PageRequest } from '../shared/pagination.js';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { RULE_EVENT_TYPES } from './domain/routing-rule.js';
import { closedBreaker, DEFAULT_BREAKER_POLICY, type BreakerPolicy } from './domain/circuit-breaker.js';
import { sqlBreakerStore } from './adapters/sql/sql-breakers.js';
import { sqlTallyStore } from './adapters/sql/sql-tallies.js';
import { attemptsShown, type DeliverySummary, type StoredRule } from './application/ports.js';
import { conditionErrors, ruleViewOf } from './application/condition-errors.js';
import { mapYielding } from '../shared/yielding.js';
import type { CreatedRule } from './application/manage-rules.js';

/**
 * Said once per rule version by each process that evaluates rules: a stored rule whose condition
 * today's limits refuse (saved by an older release) is not evaluated, and matches no event.
 */
const tellUnevaluable = (logger: Pick<ModuleDeps['logger'], 'warn'>) => (rule: StoredRule, error: string) =>
  logger.warn(
    { rule_id: rule.rule_id, app_id: rule.app_id, condition_error: error },
    'a routing rule’s condition cannot run under today’s limits: the rule matches no event until its condition is replaced (PUT /api/routing-rules/{rule_id})',
  );

export const routingTables: ContextTables = { migrations: [routingMigrations], inlineProjections: [rulesProjection] };

export interface RoutingOptions {
  readonly webhooks: WebhookSender;
  readonly queues: QueuePublisher;
  /** Hosts and CIDRs webhooks may reach although private (WEBHOOK_ALLOWED_HOSTS). */
  readonly allowedHosts: readonly string[];
  /** Whether ingestion's events are in this store's log (one process): replays may re-evaluate conditions over them. */
  readonly sharesLog?: boolean;
  /** Brokers rules may name in `destination_config.connection` (QUEUE_BROKERS). */
  readonly queueBrokers?: NamedBrokers;
  /** The brokers with a default URL (NATS_URL, RABBITMQ_URL, REDIS_URL): a rule naming neither URL nor connection uses it. */
  readonly defaultBrokers?: ReadonlySet<QueueTarget['broker']>;
  readonly retrySchedule: readonly number[];
  /** Rules may only be written for applications that exist (answered by the applications context). */
  readonly applicationExists: (appId: string) => Promise<boolean>;
  readonly onOutcome?: (destinationType: string, status: string) => void;
  /** Consecutive failures that open a destination's circuit, and its cool-down. */
  readonly breakerPolicy?: BreakerPolicy;
  /** Attempts the delivery worker runs at once (ROUTING_CONCURRENCY); each destination may take a quarter of them. */
  readonly deliveryConcurrency?: number;
  /** Stable per replica: a restarted worker takes back its leases and in-flight attempts at once. */
  readonly workerId?: string;
  /** Seals webhook signing secrets at rest (see resolveSecretKey). */
  readonly secretKey: Buffer;
  /** The file `secretKey` was generated into by this start, if it was. */
  readonly secretKeyGeneratedInto?: string;
  /** Events a replay job sends per second at most. */
  readonly replayRatePerSecond?: number;
  /** How long cached rules are used before they are read again, beside rule events (see RuleCacheOptions). */
  readonly ruleCacheMaxAgeMs?: number;
  /** Where the per-destination metrics go (the process's /metrics registry). */
  readonly metricsRegistry?: Registry;
  /** How long succeeded deliveries are kept after their last change (DELIVERY_RETENTION_DAYS); 0 keeps them for ever. */
  readonly deliveryRetentionMs?: number;
}

export interface RoutingModule extends ContextModule {
  /** For ingestion: the rules an event matches, evaluated on the ingest path from compiled, cached rules. */
  readonly evaluate: RuleEvaluator['evaluate'];
  readonly worker: DeliveryWorker;
}

export function routingModule({ store, db, clock, newId, logger, procedures }: ModuleDeps, options: RoutingOptions): RoutingModule {
  const catalog = sqlRuleCatalog(db);
  const cacheOptions = { maxAgeMs: options.ruleCacheMaxAgeMs };
  const conditionError = conditionErrors();
  const ruleView = ruleViewOf(conditionError);
  const createdView = (created: CreatedRule) => ({ ...created, rule: ruleView(created.rule) });
  const evaluator = ruleEvaluator((appId) => catalog.listByApp(appId), {
    ...cacheOptions,
    conditionError,
    onUnevaluable: tellUnevaluable(logger),
  });
  // Rules read by id on the delivery path come from memory, forgotten by the rule events the scheduler reads.
  const rulesById = cachedRules(sqlRuleCatalog, cacheOptions);
  const tables = sqlDestinationTables(() => clock.now());
  const box = secretBox(options.secretKey);
  const vault = sqlSecretVault(box);
  const destinations = listDestinations({
    db,
    clock,
    catalog,
    breakers: sqlBreakerStore,
    deliveries: sqlDeliveryStore,
    tallies: sqlTallyStore,
    conditionError,
  });
  const metricsObserver = options.metricsRegistry
    ? registerRoutingMetrics(options.metricsRegistry, () => allDestinations(destinations))
    : undefined;
  const worker = deliveryWorker({
    store,
    db,
    clock,
    random: Math.random,
    logger,
    rules: rulesById.catalog,
    storedRules: sqlRuleCatalog,
    vault,
    deliveries: sqlDeliveryStore,
    tables,
    webhooks: options.webhooks,
    queues: options.queues,
    evaluator,
    retrySchedule: options.retrySchedule,
    onOutcome: options.onOutcome,
    breakers: sqlBreakerStore,
    breakerPolicy: options.breakerPolicy ?? DEFAULT_BREAKER_POLICY,
    tallies: sqlTallyStore,
    workerId: options.workerId ?? 'embedded',
    ...(options.deliveryConcurrency === undefined ? {} : { concurrency: options.deliveryConcurrency }),
    onAttempt(attempt) {
      metricsObserver?.(attempt);
      if (attempt.replayJobId !== null) replays.wake();
    },
  });
  const replayDeps: ReplayDeps = {
    store,
    db,
    clock,
    newId,
    logger,
    rules: rulesById.catalog,
    deliveries: sqlDeliveryStore,
    replays: sqlReplayStore,
    ruleState: (ruleId) => ruleStateOf(store, ruleId),
    // Only the embedded process shares its log with ingestion.
    ingested: options.sharesLog ? eventStoreItems(store) : undefined,
    ratePerSecond: options.replayRatePerSecond ?? 50,
    onScheduled: () => worker.wake(),
    conditionError,
  };
  const replays = replayRunner(replayDeps);
  // Wherever deliveries are stored: on the storage thread of the one process, in the routing role.
  const pruner = deliveryPruner({
    db,
    clock,
    logger,
    history: sqlDeliveryHistory,
    retentionMs: options.deliveryRetentionMs ?? DEFAULT_DELIVERY_RETENTION_MS,
  });
  const countDeadLetters = (given: readonly DeliverySummary[]) => {
    for (const delivery of given) options.onOutcome?.(delivery.destinationType, 'dead_lettered');
  };
  // Beside the procedure that deletes rules: on the storage thread of the one process, in the routing role.
  const sweeper = deletedRuleSweeper({
    store,
    db,
    deliveries: sqlDeliveryStore,
    backlogs: sqlDeletedRuleBacklogs,
    logger,
    onGivenUp: (_ruleId, given) => countDeadLetters(given),
  });
  const ruleDeps: RuleDeps = {
    store,
    saveChange: procedures.define(
      'routing.save-rule-change',
      saveRuleChange({
        store,
        vault,
        breakers: sqlBreakerStore,
        tallies: sqlTallyStore,
        newSigningSecret,
        rules: sqlRuleCatalog,
        deliveries: sqlDeliveryStore,
        backlogs: sqlDeletedRuleBacklogs,
        // The worker of the side that runs the procedure: with a storage thread, the one that sends.
        onDeliveriesDue: () => worker.wake(),
        onGivenUp(ruleId, given) {
          countDeadLetters(given);
          logger.warn({ rule_id: ruleId, deliveries: given.length }, 'the rule was deleted: its waiting deliveries were dead-lettered');
        },
        onBacklogLeft: () => sweeper.wake(),
        onCommitted: rulesById.invalidate,
      }),
    ),
    clock,
    newId,
    catalog,
    vault,
    secrets: vault(db),
    breakers: sqlBreakerStore,
    tallies: sqlTallyStore,
    evaluator,
    destinationTables: tables(db),
    applicationExists: options.applicationExists,
    checkWebhookUrl: (url) => assertPublicUrl(url, options.allowedHosts),
    checkQueueDestination: (config) =>
      assertQueueDestination(config, options.allowedHosts, options.queueBrokers ?? {}, options.defaultBrokers),
    newSigningSecret,
    newSecretReference,
  };
  const deliveries = sqlDeliveryStore(db);
  const replay = procedures.define('routing.replay-delivery', async (deliveryId: string) => {
    // As the bulk replay and a rule's replay: a deleted or disabled rule would dead-letter it again at once.
    const delivery = await deliveries.get(deliveryId);
    if (delivery) assertReplayable(delivery.ruleId, await ruleStateOf(store, delivery.ruleId));
    return worker.replay(deliveryId);
  });
  const replayDeadLetters = procedures.define('routing.replay-dead-letters', async (ruleId: string | undefined) => {
    // As a replay of the rule: an unknown rule is not found, a deleted or disabled one has nowhere to send them.
    if (ruleId !== undefined) assertReplayable(ruleId, await ruleStateOf(store, ruleId));
    // Of every rule: those of a deleted or disabled rule stay dead-lettered, as they would fail again at once.
    const replayable = new Map<string, boolean>();
    const mayReplay = async (rule: string) => {
      let known = replayable.get(rule);
      if (known === undefined) {
        const state = await ruleStateOf(store, rule);
        replayable.set(rule, (known = state.status === 'live' && state.fields.is_active));
      }
      return known;
    };
    // Every page, by cursor: a replayed delivery that fails again at once is behind the cursor, never taken twice.
    let replayed = 0;
    let skipped = 0;
    let cursor: string | null = null;
    do {
      const dead: Page<DeliverySummary> = await deliveries.list(
        { ruleId, status: 'dead_lettered' },
        { limit: 1000, ...(cursor ? { cursor } : {}) },
      );
      const page: string[] = [];
      for (const delivery of dead.items) {
        if (await mayReplay(delivery.ruleId)) page.push(delivery.deliveryId);
        else skipped++;
      }
      // Those replayed or deleted meanwhile by someone else are left: nothing to do for them.
      replayed += await worker.replayMany(page);
      cursor = dead.nextCursor;
    } while (cursor !== null);
    return { replayed, skipped };
  });

  /** The background work stopped, its connections kept. */
  const hold = async () => {
    await sweeper.stop();
    await pruner.stop();
    await replays.stop();
    await worker.stop();
  };

  return {
    name: 'routing',
    evaluate: (event, request) => evaluator.evaluate(event, request),
    worker,
    subscribers: [
      routingScheduler({
        clock,
        rules: rulesById.catalog,
        deliveries: sqlDeliveryStore,
        history: sqlDeliveryHistory,
        tables,
        tallies: sqlTallyStore,
        evaluator,
        onScheduled: worker.wake,
        onDelivered({ ruleId, destinationType }) {
          options.onOutcome?.(destinationType, 'succeeded');
          // Written with the scheduling, a table row is an attempt of its own too (attempts and duration metrics).
          metricsObserver?.({ ruleId, destinationType, outcome: 'delivered', durationMs: 0, replayJobId: null });
        },
        onDeadLettered({ deliveryId, ruleId, destinationType }, reason) {
          options.onOutcome?.(destinationType, 'dead_lettered');
          // Its one attempt, refused: counted as the success ratio counts it.
          metricsObserver?.({ ruleId, destinationType, outcome: 'rejected', durationMs: 0, replayJobId: null });
          logger.warn(
            { rule_id: ruleId, delivery_id: deliveryId, destination_type: destinationType, reason },
            'delivery failed and was dead-lettered',
          );
        },
        onRuleChanged: rulesById.invalidate,
        onUnroutable(itemId, reason) {
          logger.warn({ item_id: itemId, reason }, 'an item that arrived while routing was off is too costly to route: it stays unrouted');
        },
      }),
    ],
    http: [
      routingHttp({
        create: async (input) => createdView(await createRule(ruleDeps)(input)),
        update: async (ruleId, input) => createdView(await updateRule(ruleDeps)(ruleId, input)),
        patch: async (ruleId, patch) => createdView(await patchRule(ruleDeps)(ruleId, patch)),
        async get(ruleId) {
          const rule = await getRule(catalog)(ruleId);
          return { ...ruleView(rule), circuit: (await sqlBreakerStore(db).get([ruleId])).get(ruleId) ?? closedBreaker };
        },
        listByApp: async (appId, page) => {
          const rules = await catalog.pageByApp(appId, page);
          // A mistyped application answers as the keys of one do, not as an application without rules.
          if (rules.items.length === 0 && page.cursor === undefined && !(await options.applicationExists(appId)))
            throw new NotFoundError('applications.not-found', `no application ${appId}`);
          // Each rule's condition is checked (cold, a rule of large patterns takes milliseconds).
          return { items: await mapYielding(rules.items, ruleView), nextCursor: rules.nextCursor };
        },
        toggle: async (ruleId, to) => ruleView(await toggleRule(ruleDeps)(ruleId, to)),
        remove: deleteRule(ruleDeps),
        rotateSecret: rotateSecret(ruleDeps),
        deliveries: (filter, page) => deliveries.list(filter, page),
        async delivery(deliveryId) {
          const delivery = await deliveries.get(deliveryId);
          if (!delivery) throw new NotFoundError('routing.delivery-not-found', `no delivery ${deliveryId}`);
          return { delivery, attempts: attemptsShown(delivery, await deliveries.attemptsOf(deliveryId)) };
        },
        replay,
        replayDeadLetters,
        destinations: procedures.define('routing.destinations', (page: PageRequest) => destinations(page)),
        test: testSend({ db, clock, newId, catalog, vault, webhooks: options.webhooks, queues: options.queues }),
        startReplay: procedures.define('routing.start-replay', startReplay(replayDeps)),
        replayProgress: replayProgress(replayDeps),
        replays: (ruleId, page) => sqlReplayStore(db).listByRule(ruleId, page),
        cancelReplay: procedures.define('routing.cancel-replay', cancelReplay(replayDeps)),
      }),
    ],
    verify: () => verifySecretKey(db, box, () => clock.now(), options.secretKeyGeneratedInto),
    start() {
      sealClearSecrets(db, box).then(
        (sealed) => sealed > 0 && logger.info({ sealed }, 'sealed webhook signing secrets stored in clear'),
        (error: unknown) =>
          logger.error({ err: error }, 'could not seal the signing secrets stored in clear; they keep working as they are'),
      );
      worker.start();
      replays.start();
      pruner.start();
      sweeper.start();
    },
    async stop() {
      await hold();
      await Promise.all([options.webhooks.close(), options.queues.close()]);
    },
    pause: hold,
    resume() {
      worker.start();
      replays.start();
      pruner.start();
      sweeper.start();
    },
  };
}

/**
 * Routing rules for another service (ingestion, in distributed mode): a local copy of the rule table
 * kept from the rule events it consumes, and the evaluator over it, invalidated by the same events.
 */
export function routingRulesReplica(
  { db, logger }: Pick<ModuleDeps, 'db' | 'logger'>,
  cacheOptions: RuleCacheOptions = {},
): { evaluate: RoutingModule['evaluate']; subscriber: Subscriber } {
  const catalog = sqlRuleCatalog(db);
  const evaluator = ruleEvaluator((appId) => catalog.listByApp(appId), { ...cacheOptions, onUnevaluable: tellUnevaluable(logger) });
  return {
    evaluate: (event, request) => evaluator.evaluate(event, request),
    subscriber: {
      name: 'routing-rules-replica',
      handles: RULE_EVENT_TYPES,
      from: 'routing',
      async handle(events, tx) {
        await rulesProjection.apply(tx.db, events);
        // Only once committed: a request evaluating in between would read the old rules through
        // another connection and keep them until the next rule event.
        const apps = new Set(events.map((event) => (event.data as { app_id: string }).app_id));
        tx.afterCommit(() => {
          for (const appId of apps) evaluator.invalidate(appId);
        });
      },
    },
  };
}
