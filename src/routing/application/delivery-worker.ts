import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import type { DeliveryReplayed } from '../../shared/contracts/routing-events.js';
import { NotFoundError } from '../../shared/errors.js';
import type { EventStore, StoreTransaction } from '../../shared/event-store/event-store.js';
import { decideAttempt, type AttemptOutcome } from '../domain/delivery.js';
import type { DatabaseConfig, QueueConfig, WebhookConfig } from '../domain/destination-config.js';
import { ruleStreamId, type RoutingRuleToggled } from '../domain/routing-rule.js';
import type { DeliveryRequest, QueuePublisher, WebhookSender } from './destination.js';
import type { Delivery, DeliveryStoreFor, DestinationTablesFor, RuleCatalogFor, SecretVaultFor, StoredRule } from './ports.js';
import type { RuleEvaluator } from './rule-evaluator.js';

export interface DeliveryWorkerDeps {
  readonly store: EventStore;
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Pick<Logger, 'warn' | 'error' | 'debug'>;
  readonly rules: RuleCatalogFor;
  readonly vault: SecretVaultFor;
  readonly deliveries: DeliveryStoreFor;
  readonly tables: DestinationTablesFor;
  readonly webhooks: WebhookSender;
  readonly queues: QueuePublisher;
  readonly evaluator: RuleEvaluator;
  /** Seconds to wait after each failed attempt; its length + 1 is the attempt limit. */
  readonly retrySchedule: readonly number[];
  readonly concurrency?: number;
  readonly onOutcome?: (destinationType: string, status: string) => void;
}

export interface DeliveryWorker {
  start(): void;
  stop(): Promise<void>;
  /** New deliveries are due: look now rather than at the next poll. */
  wake(): void;
  /** Sends a dead-lettered delivery again, keeping its id. */
  replay(deliveryId: string): Promise<Delivery>;
  /** Resolves when nothing is due and nothing is in flight (for tests and shutdown). */
  idle(): Promise<void>;
}

// A lease longer than any attempt can take (15 s timeout) keeps other workers off a delivery in flight.
const LEASE_MS = 120_000;
const MAX_SLEEP_MS = 1000;

/**
 * Sends due deliveries off the log, never on the ingest path: claims them with a lease, runs up to
 * `concurrency` at once so one hanging receiver never holds up the others, and records each attempt
 * and its consequences (retry time, dead letter, disabled rule) in one transaction.
 */
export function deliveryWorker(deps: DeliveryWorkerDeps): DeliveryWorker {
  const concurrency = deps.concurrency ?? 16;
  const inFlight = new Set<Promise<void>>();
  let running = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let idleWaiters: Array<() => void> = [];

  const wake = () => wakeUp?.();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  const send = async (delivery: Delivery, rule: StoredRule | undefined, attempt: number): Promise<AttemptOutcome> => {
    if (!rule?.is_active) return { outcome: 'rejected', reason: rule ? 'the rule is disabled' : 'the rule was deleted', durationMs: 0 };
    const request: DeliveryRequest = {
      deliveryId: delivery.deliveryId,
      attempt,
      body: delivery.body,
      eventId: delivery.itemId,
      appId: delivery.appId,
      eventType: delivery.eventType,
    };
    switch (rule.destination_type) {
      case 'webhook': {
        const secret = await deps.vault(deps.db).get(rule.rule_id);
        if (!secret) return { outcome: 'rejected', reason: 'the rule has no signing secret', durationMs: 0 };
        const config = rule.destination_config as WebhookConfig;
        return deps.webhooks.send(
          { url: config.url, signingSecret: secret, ...(config.headers ? { headers: config.headers } : {}) },
          request,
        );
      }
      case 'queue':
        return deps.queues.publish(rule.destination_config as QueueConfig, request);
      case 'database':
        // Written inside the attempt's own transaction (see `record`): exactly once with its bookkeeping.
        return { outcome: 'delivered', durationMs: 0 };
    }
  };

  const attemptDelivery = async (delivery: Delivery) => {
    const attempt = delivery.attempts + 1;
    const rule = await deps.rules(deps.db).get(delivery.ruleId);
    let outcome: AttemptOutcome;
    try {
      outcome = await send(delivery, rule, attempt);
    } catch (error) {
      outcome = { outcome: 'retry', reason: `delivery failed: ${(error as Error).message}`, durationMs: 0 };
    }
    const now = deps.clock.now();
    const decision = decideAttempt(
      {
        itemId: delivery.itemId,
        deliveryId: delivery.deliveryId,
        ruleId: delivery.ruleId,
        attempt,
        at: now,
        schedule: deps.retrySchedule,
        random: deps.random(),
      },
      outcome,
    );
    await deps.store.transaction(async (tx) => {
      if (rule?.is_active && rule.destination_type === 'database' && decision.status === 'succeeded')
        await writeRow(tx, delivery, rule, now);
      await tx.append({ streamId: dataStreamId(delivery.itemId), events: decision.events });
      await deps.deliveries(tx.db).record(
        {
          deliveryId: delivery.deliveryId,
          status: decision.status,
          attempts: attempt,
          nextAttemptAt: decision.nextAttemptAt,
          lastError: 'reason' in outcome ? outcome.reason : null,
          at: now.toISOString(),
        },
        {
          deliveryId: delivery.deliveryId,
          attempt,
          at: now.toISOString(),
          outcome: outcome.outcome,
          statusCode: outcome.statusCode ?? null,
          error: 'reason' in outcome ? outcome.reason : null,
          durationMs: outcome.durationMs,
        },
      );
      if (decision.disableRule && rule) {
        const disabled: RoutingRuleToggled = {
          type: 'RoutingRuleToggled',
          data: {
            rule_id: rule.rule_id,
            app_id: rule.app_id,
            is_active: false,
            toggled_at: now.toISOString(),
            reason: 'the endpoint answered 410 Gone',
          },
        };
        await tx.append({ streamId: ruleStreamId(rule.rule_id), events: [disabled] });
        // Also before the commit is synced: from the moment the change is visible, no request may route by the old rule.
        deps.evaluator.invalidate(rule.app_id);
      }
    });
    if (decision.disableRule && rule) deps.evaluator.invalidate(rule.app_id);
    deps.onOutcome?.(delivery.destinationType, decision.status === 'pending' ? 'retrying' : decision.status);
    if (decision.status !== 'succeeded') {
      deps.logger.warn(
        {
          rule_id: delivery.ruleId,
          delivery_id: delivery.deliveryId,
          destination_type: delivery.destinationType,
          host: rule ? hostOf(rule) : null,
          status_code: 'statusCode' in outcome ? (outcome.statusCode ?? null) : null,
          attempt,
          next_attempt_at: decision.nextAttemptAt,
          reason: 'reason' in outcome ? withoutCredentials(outcome.reason) : null,
        },
        decision.status === 'dead_lettered' ? 'delivery failed and was dead-lettered' : 'delivery failed; it will be retried',
      );
    }
  };

  const writeRow = async (tx: StoreTransaction, delivery: Delivery, rule: StoredRule, now: Date) =>
    deps.tables(tx.db).insert((rule.destination_config as DatabaseConfig).table, {
      delivery_id: delivery.deliveryId,
      event_id: delivery.itemId,
      app_id: delivery.appId,
      event_type: delivery.eventType,
      body: delivery.body,
      delivered_at: now.toISOString(),
    });

  const launch = (delivery: Delivery) => {
    const task = attemptDelivery(delivery)
      .catch((error: unknown) =>
        deps.logger.error(
          { err: error, delivery_id: delivery.deliveryId },
          'could not record a delivery attempt; it will be retried when its lease ends',
        ),
      )
      .finally(() => {
        inFlight.delete(task);
        wake();
      });
    inFlight.add(task);
  };

  const run = async () => {
    while (running) {
      try {
        const free = concurrency - inFlight.size;
        const now = deps.clock.now();
        const claimed =
          free > 0
            ? await deps.deliveries(deps.db).claimDue(now.toISOString(), new Date(now.getTime() + LEASE_MS).toISOString(), free)
            : [];
        for (const delivery of claimed) launch(delivery);
        if (claimed.length > 0) continue;
        if (inFlight.size === 0) {
          const waiters = idleWaiters;
          idleWaiters = [];
          for (const done of waiters) done();
        }
        const next = await deps.deliveries(deps.db).nextDueAt();
        const untilDue = next === undefined ? MAX_SLEEP_MS : Date.parse(next) - deps.clock.now().getTime();
        await sleep(Math.max(5, Math.min(MAX_SLEEP_MS, untilDue)));
      } catch (error) {
        deps.logger.error({ err: error }, 'delivery worker failed; retrying');
        await sleep(MAX_SLEEP_MS);
      }
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop() {
      running = false;
      wake();
      await loop;
      await Promise.all(inFlight);
    },
    wake,
    async replay(deliveryId) {
      const now = deps.clock.now().toISOString();
      const requeued = await deps.store.transaction(async (tx) => {
        const delivery = await deps.deliveries(tx.db).requeue(deliveryId, now);
        if (!delivery) return undefined;
        const replayed: DeliveryReplayed = {
          type: 'DeliveryReplayed',
          data: {
            item_id: delivery.itemId,
            delivery_id: deliveryId,
            rule_id: delivery.ruleId,
            attempt: delivery.attempts + 1,
            replayed_at: now,
          },
        };
        await tx.append({ streamId: dataStreamId(delivery.itemId), events: [replayed] });
        return delivery;
      });
      if (!requeued) throw new NotFoundError('routing.not-dead-lettered', `no dead-lettered delivery ${deliveryId}`);
      wake();
      return requeued;
    },
    idle() {
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        wake();
      });
    },
  };
}

/** Where a rule delivers, for logs: the host alone, since a URL's path, query or user part may hold a secret. */
function hostOf(rule: StoredRule): string | null {
  const config = rule.destination_config as Partial<WebhookConfig & { url: string; broker: string }>;
  if (typeof config.url !== 'string') return config.broker ?? null;
  try {
    return new URL(config.url).host;
  } catch {
    return null;
  }
}

const withoutCredentials = (text: string) => text.replace(/\/\/[^@/\s]*@/g, '//').slice(0, 300);
