import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { withoutUrlCredentials } from '../../shared/url-credentials.js';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import { ConcurrencyError, type AppendRequest, type EventStore, type StoreTransaction } from '../../shared/event-store/event-store.js';
import { failsTheTransaction } from '../../shared/event-store/savepoint.js';
import { isStorageFault, lostToAnotherTransaction } from '../../shared/event-store/storage-fault.js';
import { afterAttempt, closedBreaker, type Breaker, type BreakerPolicy } from '../domain/circuit-breaker.js';
import {
  decideAttempt,
  decideInterrupted,
  INTERRUPTED,
  MAX_RETRY_AFTER_MS,
  givenUpAfter,
  retriedAt,
  RULE_DELETED,
  type AttemptDecision,
  type AttemptOutcome,
} from '../domain/delivery.js';
import type { DatabaseConfig } from '../domain/destination-config.js';
import { ruleStreamId, type RoutingRuleToggled } from '../domain/routing-rule.js';
import type { DeliveryRequest, QueuePublisher, WebhookSender } from './destination.js';
import { lacksCredentials, sendWithCredentials } from './destination-credentials.js';
import { destinationKeyOfRule } from './destination-key.js';
import type {
  BreakerStoreFor,
  Delivery,
  DeliveryStoreFor,
  DestinationTablesFor,
  RuleCatalogFor,
  SecretVaultFor,
  StoredRule,
  TallyStoreFor,
} from './ports.js';
import type { RuleEvaluator } from './rule-evaluator.js';

/** Tries of an attempt's recording when the database fails it for a moment (about 6 s in all). */
const RECORDING_TRIES = 5;
/** Races for an item's next stream version lost in a row before the recording gives up. */
const RECORDING_RACES = 20;
const RECORDING_PAUSE_MS = 400;

export interface AttemptDeps {
  readonly store: EventStore;
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Pick<Logger, 'warn' | 'error' | 'debug'>;
  readonly rules: RuleCatalogFor;
  /** The rule table itself, not a cache of it: what tells a rule deleted since it was read. */
  readonly storedRules: RuleCatalogFor;
  readonly vault: SecretVaultFor;
  readonly deliveries: DeliveryStoreFor;
  readonly tables: DestinationTablesFor;
  readonly webhooks: WebhookSender;
  readonly queues: QueuePublisher;
  readonly evaluator: RuleEvaluator;
  /** Seconds to wait after each failed attempt; its length + 1 is the attempt limit. */
  readonly retrySchedule: readonly number[];
  readonly onOutcome?: (destinationType: string, status: string) => void;
  readonly breakers: BreakerStoreFor;
  readonly breakerPolicy: BreakerPolicy;
  /** Attempt tallies per destination, for the destinations view and the success-rate metric. */
  readonly tallies: TallyStoreFor;
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

/**
 * Whether an attempt's answer says the destination cannot take deliveries now: a retryable failure, or
 * a receiver refusing Intake's credentials (401, 403), which a retry would not change but which holds
 * for every delivery after it: the circuit opens and keeps the backlog waiting instead of dead-lettering
 * it at full speed until the credential is fixed.
 */
function destinationDown(outcome: AttemptOutcome): boolean {
  if (outcome.outcome === 'retry') return true;
  return outcome.outcome === 'rejected' && (outcome.statusCode === 401 || outcome.statusCode === 403 || outcome.refusesAll === true);
}

/**
 * One attempt of one delivery, as a use case: written as in flight before it is sent, then its
 * outcome, the retry or dead letter it leads to, the destination's circuit and a disabled rule
 * (410 Gone) recorded in one transaction. Answers the destination's circuit after it.
 */
export function deliveryAttempts(
  deps: AttemptDeps,
  /** The worker stopped waiting for its attempts: an outcome that comes after is not recorded. */
  abandoned: () => boolean = () => false,
): {
  attempt(delivery: Delivery): Promise<Breaker | undefined>;
  recover(): Promise<void>;
} {
  const send = async (delivery: Delivery, rule: StoredRule | undefined, attempt: number): Promise<AttemptOutcome> => {
    // A disabled rule's deliveries are given back before this (giveBack): only a deleted rule gets here.
    if (!rule) return { outcome: 'rejected', reason: RULE_DELETED, durationMs: 0 };
    const request: DeliveryRequest = {
      deliveryId: delivery.webhookId,
      attempt,
      body: delivery.body,
      eventId: delivery.itemId,
      appId: delivery.appId,
      eventType: delivery.eventType,
    };
    switch (rule.destination_type) {
      case 'webhook':
      case 'queue': {
        const outcome = await sendWithCredentials({ ...deps, vault: deps.vault(deps.db) }, rule, request, deps.clock.now().toISOString());
        // Its credentials gone with it: a rule deleted since it was read is not a rule without a secret.
        if (lacksCredentials(outcome) && !(await deps.storedRules(deps.db).get(rule.rule_id)))
          return { outcome: 'rejected', reason: RULE_DELETED, durationMs: 0 };
        return outcome;
      }
      case 'database':
        // Written inside the attempt's own transaction (see `record`): exactly once with its bookkeeping.
        return { outcome: 'delivered', durationMs: 0 };
    }
  };

  /**
   * Nothing was sent (the rule is disabled or deleted), so this cannot have been the probe the circuit
   * waits for: the probe is given back at once rather than after its lease, or each of the rule's
   * remaining deliveries would wait that long.
   */
  const releaseProbe = async (db: Kysely<object>, ruleId: string, now: Date): Promise<Breaker | undefined> => {
    const breakers = deps.breakers(db);
    const current = (await breakers.get([ruleId])).get(ruleId);
    if (current?.state !== 'half_open') return undefined;
    await breakers.releaseProbes(deps.workerId, now.toISOString(), ruleId);
    return { ...current, state: 'open', nextProbeAt: now.toISOString() };
  };

  /** Whether the rule still points where an attempt made by it went (and is still on). */
  const stillSentTo = async (db: Kysely<object>, sentBy: StoredRule): Promise<boolean> => {
    const now = await deps.rules(db).get(sentBy.rule_id);
    return now !== undefined && now.is_active && destinationKeyOfRule(now) === destinationKeyOfRule(sentBy);
  };

  /** A rule switched off after the claim: its delivery waits, unattempted, until it is switched on again. */
  const giveBack = async (delivery: Delivery): Promise<Breaker | undefined> =>
    deps.store.transaction(async (tx) => {
      await deps.deliveries(tx.db).release([delivery.deliveryId], deps.workerId);
      return releaseProbe(tx.db, delivery.ruleId, deps.clock.now());
    });

  /** An attempt begun but never sent: taken back, and its delivery given back unattempted. */
  const withdraw = async (delivery: Delivery, attempt: number): Promise<Breaker | undefined> =>
    deps.store.transaction(async (tx) => {
      await deps.deliveries(tx.db).withdrawAttempt({ deliveryId: delivery.deliveryId, attempt });
      await deps.deliveries(tx.db).release([delivery.deliveryId], deps.workerId);
      return releaseProbe(tx.db, delivery.ruleId, deps.clock.now());
    });

  /** What deciding an attempt's outcome needs to know of it. */
  const attemptOf = (delivery: Delivery, attempt: number, at: Date) => ({
    itemId: delivery.itemId,
    deliveryId: delivery.deliveryId,
    ruleId: delivery.ruleId,
    attempt,
    earlierAttempts: delivery.earlierAttempts,
    at,
    schedule: deps.retrySchedule,
  });

  const attemptDelivery = async (claimed: Delivery): Promise<Breaker | undefined> => {
    const attempt = claimed.attempts + 1;
    const rule = await deps.rules(deps.db).get(claimed.ruleId);
    // Its rule may point at another type of destination than when it was made: the attempt goes there,
    // and its row, events, metrics and log say so.
    const retyped = rule !== undefined && rule.destination_type !== claimed.destinationType;
    const delivery = retyped ? { ...claimed, destinationType: rule.destination_type } : claimed;
    if (rule && !rule.is_active) return giveBack(delivery);
    // Written before anything is sent: if the process dies mid-attempt, the log still shows it.
    if (
      rule &&
      !(await deps.deliveries(deps.db).beginAttempt({
        deliveryId: delivery.deliveryId,
        attempt,
        at: deps.clock.now().toISOString(),
        worker: deps.workerId,
      }))
    )
      return takeOver(delivery, attempt);
    let outcome: AttemptOutcome;
    try {
      outcome = await send(delivery, rule, attempt);
    } catch (error) {
      // The database failed before anything went (reading the credentials): no answer of the
      // destination's, so no attempt, retry or circuit failure of its. The delivery goes back, as a
      // disabled rule's does; if the database cannot take even that, the worker's fault path does it.
      if (isStorageFault(error)) return withdraw(delivery, attempt);
      outcome = { outcome: 'retry', reason: `delivery failed: ${(error as Error).message}`, durationMs: 0 };
    }
    // Cut by the shutdown, it is no outcome of the destination's: left in flight, the next start
    // takes it as interrupted and sends it again at once, its circuit untouched.
    if (abandoned()) return undefined;
    const now = deps.clock.now();
    const context = { ...attemptOf(delivery, attempt, now), random: deps.random() };
    const sent = { outcome, decision: decideAttempt(context, outcome) };
    let decision = sent.decision;
    let breaker: Breaker | undefined;
    await recordingAgainOnFault(() =>
      deps.store.transaction(async (tx) => {
        // Each try starts from what the destination answered: a failed try's changes are rolled back.
        ({ outcome, decision } = sent);
        breaker = undefined;
        if (rule?.destination_type === 'database' && decision.status === 'succeeded') {
          try {
            // A second try: a table dropped under Intake is made again by it.
            await tx
              .isolated(() => writeRow(tx, delivery, rule, now))
              .catch((error: unknown) => {
                if (failsTheTransaction(error)) throw error;
                return tx.isolated(() => writeRow(tx, delivery, rule, now));
              });
          } catch (error) {
            if (failsTheTransaction(error)) throw error;
            // A table that cannot be written (its name taken by a table Intake does not own, say) refuses
            // the delivery as a receiver would: dead-lettered with the reason, never retried forever.
            const table = (rule.destination_config as DatabaseConfig).table;
            outcome = { outcome: 'rejected', reason: `table ${table} could not be written: ${(error as Error).message}`, durationMs: 0 };
            decision = decideAttempt(context, outcome);
          }
        }
        await recordDelivery(tx, delivery, attempt, decision, outcome, now);
        // The rule deleted while the attempt was in flight (the delete left its delivery to it).
        let deletedMeanwhile = false;
        if (decision.status === 'pending' && rule) {
          // Read once the delivery's row is held: a change of the rule that held it first has committed.
          const current = await deps.storedRules(tx.db).get(rule.rule_id);
          deletedMeanwhile = current === undefined;
          const retried = !current
            ? givenUpAfter(decision, RULE_DELETED, now)
            : destinationKeyOfRule(current) !== destinationKeyOfRule(rule)
              ? retriedAt(decision, now)
              : decision;
          if (retried !== decision) {
            decision = retried;
            await recordDelivery(tx, delivery, attempt, decision, outcome, now);
          }
        }
        if (rule && !deletedMeanwhile) {
          // The destination this attempt went to: if the rule has moved on since, its outcome is the
          // old destination's business and leaves the new one's circuit alone.
          const destination = destinationKeyOfRule(rule);
          const breakers = deps.breakers(tx.db);
          const current = (await breakers.getForChange(delivery.ruleId, destination, now.toISOString())) ?? closedBreaker;
          const quiet = outcome.outcome === 'retry' ? Math.min(outcome.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS) : 0;
          const next = afterAttempt(current, destinationDown(outcome) ? 'down' : 'up', now, deps.breakerPolicy, quiet);
          // A success on a healthy destination changes nothing: no write.
          const changed = next.state !== current.state || next.failures !== current.failures || next.nextProbeAt !== current.nextProbeAt;
          if (!changed) breaker = next;
          else if (await breakers.save(delivery.ruleId, next, now.toISOString(), destination)) {
            breaker = next;
            if (next.state === 'open' && current.state === 'closed')
              deps.logger.warn({ rule_id: delivery.ruleId, failures: next.failures }, 'circuit opened: the destination keeps failing');
          } else
            deps.logger.debug(
              { rule_id: delivery.ruleId, delivery_id: delivery.deliveryId },
              'an attempt to the rule’s former destination finished after the change: the new destination’s circuit is left alone',
            );
          const delivered = outcome.outcome === 'delivered' ? 1 : 0;
          await deps.tallies(tx.db).add(
            [
              {
                ruleId: delivery.ruleId,
                destination,
                attempts: 1,
                delivered,
                failed: 1 - delivered,
                totalDurationMs: outcome.durationMs,
              },
            ],
            now.toISOString(),
          );
        } else breaker = await releaseProbe(tx.db, delivery.ruleId, now);
        // The 410 is the old destination's when the rule was pointed elsewhere during the attempt.
        if (decision.disableRule && rule && !(await stillSentTo(tx.db, rule))) decision = { ...decision, disableRule: false };
        const appends = [announcement(delivery, decision, retyped)];
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
          appends.push({ streamId: ruleStreamId(rule.rule_id), events: [disabled] });
        }
        // Last, in one statement: on PostgreSQL the first append takes the log's lock until the commit, and
        // every statement after it held every other appender (the other replicas' attempts too) waiting.
        await tx.appendMany(appends);
        // Also before the commit is synced: from the moment the change is visible, no request may route by the old rule.
        if (decision.disableRule && rule) deps.evaluator.invalidate(rule.app_id);
      }),
    );
    if (decision.disableRule && rule) deps.evaluator.invalidate(rule.app_id);
    if (rule)
      deps.onAttempt?.({
        ruleId: delivery.ruleId,
        destinationType: delivery.destinationType,
        outcome: outcome.outcome,
        durationMs: outcome.durationMs,
        replayJobId: delivery.replayJobId,
      });
    deps.onOutcome?.(delivery.destinationType, decision.status === 'pending' ? 'retrying' : decision.status);
    if (decision.status !== 'succeeded') {
      // Enough for an operator to find the receiver; never the URL's path or query, nor the secret.
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
    return breaker;
  };

  /**
   * The outcome is known once the destination answered: a database that failed the recording for a
   * moment (every connection in use, one cut) is tried again, rather than the delivery sent again
   * once its attempt is taken for interrupted.
   */
  const recordingAgainOnFault = async (record: () => Promise<void>) => {
    for (let tried = 1, races = 0; ;) {
      try {
        return await record();
      } catch (error) {
        // On PostgreSQL, attempts of two rules on one item append to its stream at once, and the later
        // to take the next version fails its transaction; or a rule's delete and its attempts lock the
        // same rows and the log in turn, and one is ended to break the deadlock: recorded again at once.
        const raced = error instanceof ConcurrencyError || lostToAnotherTransaction(error);
        if (raced && ++races < RECORDING_RACES && !abandoned()) continue;
        if (!isStorageFault(error) || tried >= RECORDING_TRIES || abandoned()) throw error;
        await sleep(RECORDING_PAUSE_MS * 2 ** (tried - 1));
        tried++;
      }
    }
  };

  /** The attempt's events on the item's stream. */
  const announcement = (delivery: Delivery, decision: AttemptDecision, retyped = false): AppendRequest => ({
    streamId: dataStreamId(delivery.itemId),
    events: announced(delivery, decision.events, retyped),
  });

  /** The attempt and its delivery's new state; its events are appended by the caller, last. */
  const recordDelivery = async (
    tx: StoreTransaction,
    delivery: Delivery,
    attempt: number,
    decision: AttemptDecision,
    outcome: { outcome: string; statusCode?: number; reason?: string; durationMs: number },
    now: Date,
  ) => {
    // The delivery tells what its events tell (a dead letter, why it was given up: "HTTP 500 (gave up
    // after 4 attempts)"); the attempt, what happened to that attempt.
    const failed = decision.events.find((event) => event.type === 'DeliveryFailed');
    // Given up for another reason than the attempt's (its rule deleted meanwhile): that one.
    const given = decision.events.find((event) => event.type === 'DeliveryDeadLettered');
    await deps.deliveries(tx.db).record(
      {
        deliveryId: delivery.deliveryId,
        destinationType: delivery.destinationType,
        status: decision.status,
        attempts: attempt,
        nextAttemptAt: decision.nextAttemptAt,
        lastError: given?.data.reason ?? failed?.data.reason ?? outcome.reason ?? null,
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

  /** An attempt in flight counts as made, and goes again now (or is dead-lettered, if it was the last). */
  const interrupted = async (tx: StoreTransaction, delivery: Delivery, attempt: number, now: Date): Promise<void> => {
    const decision = decideInterrupted(attemptOf(delivery, attempt, now));
    await recordDelivery(tx, delivery, attempt, decision, { outcome: 'interrupted', reason: INTERRUPTED, durationMs: 0 }, now);
    await tx.append(announcement(delivery, decision));
  };

  /**
   * Another worker's attempt of this number is in flight: that worker stopped and its lease ran out. Its
   * attempt counts as interrupted, as its own restart would have counted it, and the delivery goes again
   * as the next attempt at the next claim; sent now under the same number, the receiver's copy of the
   * first was lost from the log, and a delivery that stops every worker in turn would never run out of attempts.
   */
  const takeOver = async (delivery: Delivery, attempt: number): Promise<undefined> => {
    await recordingAgainOnFault(() => deps.store.transaction((tx) => interrupted(tx, delivery, attempt, deps.clock.now())));
    deps.logger.warn(
      { delivery_id: delivery.deliveryId, attempt },
      "another worker's attempt was in flight when its lease ran out; it counts as interrupted and goes again",
    );
    return undefined;
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
        await interrupted(tx, delivery, attempt, now);
      });
      deps.logger.warn({ delivery_id: deliveryId, attempt }, 'an attempt was in flight when the process stopped; retrying it now');
    }
    await deliveries.releaseOwned(deps.workerId);
    await deps.breakers(deps.db).releaseProbes(deps.workerId, deps.clock.now().toISOString());
  };

  const writeRow = async (tx: StoreTransaction, delivery: Delivery, rule: StoredRule, now: Date) =>
    deps
      .tables(tx.db, (callback) => tx.afterCommit(callback))
      .insert((rule.destination_config as DatabaseConfig).table, {
        // The id receivers see (`webhook-id` for webhooks): a replay writes no second row unless given fresh ids.
        delivery_id: delivery.webhookId,
        event_id: delivery.itemId,
        app_id: delivery.appId,
        event_type: delivery.eventType,
        body: delivery.body,
        delivered_at: now.toISOString(),
      });

  return { attempt: attemptDelivery, recover };
}

function hostOf(rule: StoredRule): string | null {
  const config = rule.destination_config as { url?: unknown; broker?: unknown };
  if (typeof config.url !== 'string') return typeof config.broker === 'string' ? config.broker : null;
  try {
    return new URL(config.url).host;
  } catch {
    return null;
  }
}

const withoutCredentials = (text: string) => withoutUrlCredentials(text).slice(0, 300);

/**
 * A replay job's delivery has no DataRouted entry, and one whose rule now points at another type of
 * destination outgrew its entry: their attempts say where they go, for readers of the item.
 */
function announced(delivery: Delivery, events: AttemptDecision['events'], retyped: boolean): AttemptDecision['events'] {
  if (delivery.replayJobId === null && !retyped) return events;
  return events.map((event) =>
    event.type === 'DeliveryAttempted' ? { ...event, data: { ...event.data, destination_type: delivery.destinationType } } : event,
  );
}
