import type { ContextModule, ContextTables, ModuleDeps } from '../app/context-module.js';
import type { QueuePublisher, WebhookSender } from './application/destination.js';
import { deliveryWorker, type DeliveryWorker } from './application/delivery-worker.js';
import {
  createRule,
  deleteRule,
  getRule,
  patchRule,
  rotateSecret,
  toggleRule,
  updateRule,
  type RuleDeps,
} from './application/manage-rules.js';
import { routingScheduler } from './application/routing-scheduler.js';
import { ruleEvaluator, type RoutableEvent, type RoutingDecision } from './application/rule-evaluator.js';
import { routingHttp } from './adapters/http/routing-routes.js';
import { sqlDeliveryStore } from './adapters/sql/sql-deliveries.js';
import { sqlDestinationTables } from './adapters/sql/sql-destination-tables.js';
import { routingMigrations } from './adapters/sql/migrations.js';
import { rulesProjection, sqlRuleCatalog, sqlSecretVault } from './adapters/sql/sql-rules.js';
import { assertPublicUrl } from './adapters/webhook/assert-public-url.js';
import { newSigningSecret } from './adapters/webhook/standard-webhooks.js';
import { NotFoundError } from '../shared/errors.js';
import type { Subscriber } from '../shared/subscriptions/subscriber.js';
import { RULE_EVENT_TYPES } from './domain/routing-rule.js';

export const routingTables: ContextTables = { migrations: [routingMigrations], inlineProjections: [rulesProjection] };

export interface RoutingOptions {
  readonly webhooks: WebhookSender;
  readonly queues: QueuePublisher;
  /** Hosts and CIDRs webhooks may reach although private (WEBHOOK_ALLOWED_HOSTS). */
  readonly allowedHosts: readonly string[];
  readonly retrySchedule: readonly number[];
  /** Rules may only be written for applications that exist (answered by the applications context). */
  readonly applicationExists: (appId: string) => Promise<boolean>;
  readonly onOutcome?: (destinationType: string, status: string) => void;
}

export interface RoutingModule extends ContextModule {
  /** For ingestion: the rules an event matches, evaluated on the ingest path from compiled, cached rules. */
  readonly evaluate: (event: RoutableEvent) => Promise<RoutingDecision>;
  readonly worker: DeliveryWorker;
}

export function routingModule({ store, db, clock, newId, logger }: ModuleDeps, options: RoutingOptions): RoutingModule {
  const catalog = sqlRuleCatalog(db);
  const evaluator = ruleEvaluator((appId) => catalog.listByApp(appId));
  const tables = sqlDestinationTables(() => clock.now());
  const worker = deliveryWorker({
    store,
    db,
    clock,
    random: Math.random,
    logger,
    rules: sqlRuleCatalog,
    vault: sqlSecretVault,
    deliveries: sqlDeliveryStore,
    tables,
    webhooks: options.webhooks,
    queues: options.queues,
    evaluator,
    retrySchedule: options.retrySchedule,
    onOutcome: options.onOutcome,
  });
  const ruleDeps: RuleDeps = {
    store,
    clock,
    newId,
    catalog,
    vault: sqlSecretVault,
    evaluator,
    destinationTables: tables(db),
    applicationExists: options.applicationExists,
    checkWebhookUrl: (url) => assertPublicUrl(url, options.allowedHosts),
    newSigningSecret,
  };
  const deliveries = sqlDeliveryStore(db);

  return {
    name: 'routing',
    evaluate: (event) => evaluator.evaluate(event),
    worker,
    subscribers: [routingScheduler({ clock, rules: sqlRuleCatalog, deliveries: sqlDeliveryStore, evaluator, onScheduled: worker.wake })],
    http: [
      routingHttp({
        create: createRule(ruleDeps),
        update: updateRule(ruleDeps),
        patch: patchRule(ruleDeps),
        get: getRule(catalog),
        listByApp: (appId) => catalog.listByApp(appId),
        toggle: (ruleId) => toggleRule(ruleDeps)(ruleId),
        remove: deleteRule(ruleDeps),
        rotateSecret: rotateSecret(ruleDeps),
        deliveries: (filter) => deliveries.list(filter),
        async delivery(deliveryId) {
          const delivery = await deliveries.get(deliveryId);
          if (!delivery) throw new NotFoundError('routing.delivery-not-found', `no delivery ${deliveryId}`);
          return { delivery, attempts: await deliveries.attemptsOf(deliveryId) };
        },
        replay: (deliveryId) => worker.replay(deliveryId),
        async replayDeadLetters(ruleId) {
          const dead = await deliveries.list({ ruleId, status: 'dead_lettered', limit: 1000 });
          for (const delivery of dead) await worker.replay(delivery.deliveryId);
          return dead.length;
        },
      }),
    ],
    start: () => worker.start(),
    async stop() {
      await worker.stop();
      await Promise.all([options.webhooks.close(), options.queues.close()]);
    },
  };
}

/**
 * Routing rules for another service (ingestion, in distributed mode): a local copy of the rule table
 * kept from the rule events it consumes, and the evaluator over it, invalidated by the same events.
 */
export function routingRulesReplica({ db }: Pick<ModuleDeps, 'db'>): { evaluate: RoutingModule['evaluate']; subscriber: Subscriber } {
  const catalog = sqlRuleCatalog(db);
  const evaluator = ruleEvaluator((appId) => catalog.listByApp(appId));
  return {
    evaluate: (event) => evaluator.evaluate(event),
    subscriber: {
      name: 'routing-rules-replica',
      handles: RULE_EVENT_TYPES,
      async handle(events, tx) {
        await rulesProjection.apply(tx.db, events);
        for (const event of events) evaluator.invalidate((event.data as { app_id: string }).app_id);
      },
    },
  };
}
