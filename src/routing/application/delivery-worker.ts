import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import type { DeliveryReplayed } from '../../shared/contracts/routing-events.js';
import { NotFoundError } from '../../shared/errors.js';
import type { EventStore, StoreTransaction } from '../../shared/event-store/event-store.js';
import { admit, afterAttempt, closedBreaker, probing, type Breaker, type BreakerPolicy } from '../domain/circuit-breaker.js';
import { decideAttempt, decideInterrupted, type AttemptDecision, type AttemptOutcome } from '../domain/delivery.js';
import type { DatabaseConfig, QueueConfig, WebhookConfig } from '../domain/destination-config.js';
import { ruleStreamId, type RoutingRuleToggled } from '../domain/routing-rule.js';
import type { DeliveryRequest, QueuePublisher, WebhookSender } from './destination.js';
import type {
  BreakerStoreFor,
  Delivery,
  DeliveryStoreFor,
  DestinationTablesFor,
  RuleCatalogFor,
  SecretVaultFor,
  StoredRule,
} from './ports.js';
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
  readonly breakers: BreakerStoreFor;
  readonly breakerPolicy: BreakerPolicy;
  /** Names this worker's leases and in-flight attempts: after a restart under the same name it takes them back at once. */
  readonly workerId: string;
  /** Every attempt that reached a destination, for per-destination metrics. */
  readonly onAttempt?: (attempt: AttemptObservation) => void;
}

export interface AttemptObservation {
  readonly ruleId: string;
  readonly destinationType: string;
  readonly outcome: AttemptOutcome['outcome'];
  readonly durationMs: number;
  readonly replayJobId: string | null;
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
      deliveryId: delivery.webhookId,
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

  const inFlightByRule = new Map<string, number>();
  const breakerCache = new Map<string, Breaker>();
  const inFlightTo = (ruleId: string) => inFlightByRule.get(ruleId) ?? 0;

  const attemptDelivery = async (delivery: Delivery) => {
    const attempt = delivery.attempts + 1;
    const rule = await deps.rules(deps.db).get(delivery.ruleId);
    const reachable = rule?.is_active === true;
    // Written before anything is sent: if the process dies mid-attempt, the log still shows it.
    if (reachable)
      await deps.deliveries(deps.db).beginAttempt({
        deliveryId: delivery.deliveryId,
        attempt,
        at: deps.clock.now().toISOString(),
        worker: deps.workerId,
      });
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
    let breaker: Breaker | undefined;
    await deps.store.transaction(async (tx) => {
      if (rule?.is_active && rule.destination_type === 'database' && decision.status === 'succeeded')
        await writeRow(tx, delivery, rule, now);
      await recordDecision(tx, delivery, attempt, decision, outcome, now);
      if (reachable) {
        const breakers = deps.breakers(tx.db);
        const current = (await breakers.get([delivery.ruleId])).get(delivery.ruleId) ?? closedBreaker;
        breaker = afterAttempt(current, outcome.outcome === 'retry' ? 'down' : 'up', now, deps.breakerPolicy);
        // A success on a healthy destination changes nothing: no write.
        if (breaker.state !== current.state || breaker.failures !== current.failures || breaker.nextProbeAt !== current.nextProbeAt)
          await breakers.save(delivery.ruleId, breaker, now.toISOString());
        if (breaker.state === 'open' && current.state === 'closed')
          deps.logger.warn({ rule_id: delivery.ruleId, failures: breaker.failures }, 'circuit opened: the destination keeps failing');
      }
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
    if (breaker) breakerCache.set(delivery.ruleId, breaker);
    if (decision.disableRule && rule) deps.evaluator.invalidate(rule.app_id);
    if (reachable)
      deps.onAttempt?.({
        ruleId: delivery.ruleId,
        destinationType: delivery.destinationType,
        outcome: outcome.outcome,
        durationMs: outcome.durationMs,
        replayJobId: delivery.replayJobId,
      });
    deps.onOutcome?.(delivery.destinationType, decision.status === 'pending' ? 'retrying' : decision.status);
    if (decision.status === 'dead_lettered')
      deps.logger.warn({ delivery_id: delivery.deliveryId, rule_id: delivery.ruleId, attempt }, 'delivery dead-lettered');
  };

  const recordDecision = async (
    tx: StoreTransaction,
    delivery: Delivery,
    attempt: number,
    decision: AttemptDecision,
    outcome: { outcome: string; statusCode?: number; reason?: string; durationMs: number },
    now: Date,
  ) => {
    await tx.append({ streamId: dataStreamId(delivery.itemId), events: decision.events });
    await deps.deliveries(tx.db).record(
      {
        deliveryId: delivery.deliveryId,
        status: decision.status,
        attempts: attempt,
        nextAttemptAt: decision.nextAttemptAt,
        lastError: outcome.reason ?? null,
        at: now.toISOString(),
      },
      {
        deliveryId: delivery.deliveryId,
        attempt,
        at: now.toISOString(),
        outcome: outcome.outcome,
        statusCode: outcome.statusCode ?? null,
        error: outcome.reason ?? null,
        durationMs: outcome.durationMs,
      },
    );
  };

  /** What this worker left behind when it stopped: attempts in flight count as made, and go again now. */
  const recover = async () => {
    const deliveries = deps.deliveries(deps.db);
    for (const { deliveryId, attempt } of await deliveries.inFlightAttempts(deps.workerId)) {
      const delivery = await deliveries.get(deliveryId);
      const now = deps.clock.now();
      await deps.store.transaction(async (tx) => {
        if (!delivery || delivery.status !== 'pending' || delivery.attempts >= attempt) {
          await deps.deliveries(tx.db).record(
            {
              deliveryId,
              status: delivery?.status ?? 'pending',
              attempts: Math.max(delivery?.attempts ?? 0, attempt),
              nextAttemptAt: delivery?.nextAttemptAt ?? null,
              lastError: delivery?.lastError ?? null,
              at: now.toISOString(),
            },
            undefined,
          );
          return;
        }
        const decision = decideInterrupted({
          itemId: delivery.itemId,
          deliveryId,
          ruleId: delivery.ruleId,
          attempt,
          at: now,
          schedule: deps.retrySchedule,
        });
        const reason = decision.events.find((e) => e.type === 'DeliveryFailed')?.data;
        await recordDecision(
          tx,
          delivery,
          attempt,
          decision,
          { outcome: 'interrupted', ...(reason && 'reason' in reason ? { reason: reason.reason } : {}), durationMs: 0 },
          now,
        );
      });
      deps.logger.warn({ delivery_id: deliveryId, attempt }, 'an attempt was in flight when the process stopped; retrying it now');
    }
    await deliveries.releaseOwned(deps.workerId);
    await deps.breakers(deps.db).releaseProbes(deps.workerId, deps.clock.now().toISOString());
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
    inFlightByRule.set(delivery.ruleId, inFlightTo(delivery.ruleId) + 1);
    const task = attemptDelivery(delivery)
      .catch((error: unknown) =>
        deps.logger.error(
          { err: error, delivery_id: delivery.deliveryId },
          'could not record a delivery attempt; it will be retried when its lease ends',
        ),
      )
      .finally(() => {
        const left = inFlightTo(delivery.ruleId) - 1;
        if (left > 0) inFlightByRule.set(delivery.ruleId, left);
        else inFlightByRule.delete(delivery.ruleId);
        inFlight.delete(task);
        wake();
      });
    inFlight.add(task);
  };

  /** Rules this worker may not send more to now: their circuit allows no more attempts in flight. */
  const saturatedRules = (now: Date) =>
    [...inFlightByRule.keys()].filter(
      (ruleId) => admit(breakerCache.get(ruleId) ?? closedBreaker, inFlightTo(ruleId), now, deps.breakerPolicy) === 'hold',
    );

  /** Sends what the circuit breakers admit, takes the probe of a circuit due one, and gives the rest back. */
  const dispatch = async (claimed: readonly Delivery[], now: Date): Promise<number> => {
    const fresh = await deps.breakers(deps.db).get([...new Set(claimed.map((d) => d.ruleId))]);
    for (const [ruleId, breaker] of fresh) breakerCache.set(ruleId, breaker);
    const held: string[] = [];
    let launched = 0;
    for (const delivery of claimed) {
      const breaker = fresh.get(delivery.ruleId) ?? closedBreaker;
      const admission = admit(breakerCache.get(delivery.ruleId) ?? breaker, inFlightTo(delivery.ruleId), now, deps.breakerPolicy);
      if (admission === 'probe') {
        const probe = probing(breaker, new Date(now.getTime() + LEASE_MS));
        if (await deps.breakers(deps.db).startProbe(delivery.ruleId, probe, now.toISOString(), deps.workerId)) {
          breakerCache.set(delivery.ruleId, probe);
          launch(delivery);
          launched++;
          continue;
        }
      }
      if (admission === 'send') {
        launch(delivery);
        launched++;
      } else held.push(delivery.deliveryId);
    }
    await deps.deliveries(deps.db).release(held, deps.workerId);
    return launched;
  };

  const nextWakeUp = async (now: Date) => {
    const iso = now.toISOString();
    const [due, probe] = await Promise.all([
      deps.deliveries(deps.db).nextDueAt(iso, saturatedRules(now)),
      deps.breakers(deps.db).nextProbeAt(),
    ]);
    const times = [due, probe].filter((t): t is string => t !== undefined).map((t) => Date.parse(t));
    return times.length === 0 ? undefined : Math.min(...times);
  };

  const run = async () => {
    let recovered = false;
    while (running) {
      try {
        if (!recovered) {
          await recover();
          recovered = true;
        }
        const free = concurrency - inFlight.size;
        const now = deps.clock.now();
        const claimed =
          free > 0
            ? await deps.deliveries(deps.db).claimDue({
                now: now.toISOString(),
                leaseUntil: new Date(now.getTime() + LEASE_MS).toISOString(),
                limit: free,
                owner: deps.workerId,
                excludeRules: saturatedRules(now),
              })
            : [];
        if (claimed.length > 0 && (await dispatch(claimed, now)) > 0) continue;
        if (inFlight.size === 0) {
          const waiters = idleWaiters;
          idleWaiters = [];
          for (const done of waiters) done();
        }
        const next = await nextWakeUp(deps.clock.now());
        const untilDue = next === undefined ? MAX_SLEEP_MS : next - deps.clock.now().getTime();
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
