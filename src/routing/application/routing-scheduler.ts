import type { Clock } from '../../shared/clock.js';
import { dataStreamId, type DataIngested, type ItemSnapshot } from '../../shared/contracts/data-events.js';
import type { DataRouted } from '../../shared/contracts/routing-events.js';
import type { StoreTransaction } from '../../shared/event-store/event-store.js';
import { failsTheTransaction } from '../../shared/event-store/savepoint.js';
import { causedBy, type RecordedEvent } from '../../shared/events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { messageOf, ValidationError } from '../../shared/errors.js';
import { decideAttempt, deliveryIdOf, type AttemptDecision } from '../domain/delivery.js';
import { orderingKeyOf } from '../domain/ordering-key.js';
import { RULE_EVENT_TYPES, type RoutingRuleEvent } from '../domain/routing-rule.js';
import type { DatabaseConfig } from '../domain/destination-config.js';
import { destinationKeyOfRule } from './destination-key.js';
import type {
  DeliveryHistoryFor,
  DeliveryStoreFor,
  DestinationRow,
  DestinationTables,
  DestinationTablesFor,
  NewDelivery,
  RuleCatalogFor,
  StoredRule,
  TallyIncrement,
  TallyStoreFor,
} from './ports.js';
import { ruleEvaluator, type RuleEvaluator } from './rule-evaluator.js';

export interface SchedulerDeps {
  readonly clock: Clock;
  readonly rules: RuleCatalogFor;
  readonly deliveries: DeliveryStoreFor;
  /**
   * Where deliveries past their retention were deleted: an event at or before the last position
   * deleted was routed already, and is not scheduled again (a replay of the subscriber, a redelivery).
   */
  readonly history?: DeliveryHistoryFor;
  /** Database destinations are written here, as their deliveries are scheduled. */
  readonly tables: DestinationTablesFor;
  /** Each delivery made while scheduling counts as one delivered attempt of its destination. */
  readonly tallies: TallyStoreFor;
  readonly evaluator: RuleEvaluator;
  /** Wakes the delivery worker once new deliveries are committed. */
  readonly onScheduled: () => void;
  /** Each delivery made while scheduling (database destinations), for the metrics. */
  readonly onDelivered?: (delivery: { readonly ruleId: string; readonly destinationType: string }) => void;
  /** Each delivery whose table could not be written as it was scheduled: dead-lettered with the reason. */
  readonly onDeadLettered?: (
    delivery: { readonly deliveryId: string; readonly ruleId: string; readonly destinationType: string },
    reason: string,
  ) => void;
  /** Called for every rule event read: cached rules are forgotten. */
  readonly onRuleChanged?: (ruleId: string) => void;
  /** An item that came while routing was off whose rules cost too much to evaluate: it stays unrouted. */
  readonly onUnroutable?: (itemId: string, reason: string) => void;
}

/**
 * Turns the rules matched at ingestion into stored deliveries and records DataRouted on the item.
 * The store holds one delivery per (item, rule), so a redelivered DataIngested schedules nothing twice,
 * whatever form of id the first one got; one whose delivery was deleted past its retention is known by
 * its log position (`history`).
 * A database destination is a table of this service's own database: its row is written in the same
 * transaction, one multi-row insert per table per batch, and the delivery recorded as made (in its row
 * and in DataRouted), instead of an attempt, two events and a transaction of its own per item. A
 * table that cannot be written (a name now taken by a table Intake does not own, say) dead-letters
 * only its own deliveries, with the reason: the item's other deliveries are scheduled all the same.
 * Rule events only invalidate this process's compiled rules: that is how every replica sees a change.
 */
export function routingScheduler({
  clock,
  rules,
  deliveries,
  history,
  tables,
  tallies,
  evaluator,
  onScheduled,
  onDelivered,
  onDeadLettered,
  onRuleChanged,
  onUnroutable,
}: SchedulerDeps): Subscriber {
  /**
   * The rules an item that arrived while routing was off matches: those in force now, as a replay that
   * re-evaluates takes them, read in the subscriber's own transaction (the shared evaluator reads on
   * another connection, which waits for this transaction). One too costly to evaluate is left
   * unrouted, as it would have been refused.
   */
  const deferredMatches = async (deferred: RuleEvaluator, item: DataIngested['data']): Promise<readonly string[]> => {
    try {
      const decision = await deferred.evaluate({
        app_id: item.partner_id,
        event_type: item.event_type,
        payload: item.payload,
        metadata: item.metadata,
      });
      return decision.matchedRuleIds;
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      onUnroutable?.(item.item_id, error.message);
      return [];
    }
  };
  return {
    name: 'routing',
    handles: ['DataIngested', ...RULE_EVENT_TYPES],
    // An item no rule matched at ingestion has nothing to schedule; one that came while routing was off has its rules evaluated now.
    wants: (event) => {
      if (event.type !== 'DataIngested') return true;
      const routing = (event.data as DataIngested['data']).routing;
      return routing?.deferred === true || (routing?.matched_rule_ids.length ?? 0) > 0;
    },
    async handle(events, tx) {
      const at = clock.now();
      const now = at.toISOString();
      const catalog = rules(tx.db);
      // One per batch, made on the first deferred item: its rules are read and compiled once, not per item.
      let deferred: RuleEvaluator | undefined;
      // Read once a batch, at its first item: the store's one delivery per (item, rule) no longer
      // answers for an item whose delivery was deleted, and without this a replay sent it again.
      let forgottenThrough: number | undefined;
      const planned: Array<{ cause: RecordedEvent; delivery: NewDelivery; table: string | undefined; rule: StoredRule }> = [];
      for (const event of events) {
        if (event.type !== 'DataIngested') {
          const changed = (event as unknown as RoutingRuleEvent).data;
          // Now for the items after it in this batch, and again once committed, for readers on
          // other connections that refilled a cache from the old rules in between.
          const forget = () => {
            evaluator.invalidate(changed.app_id);
            onRuleChanged?.(changed.rule_id);
          };
          forget();
          deferred?.invalidate(changed.app_id);
          tx.afterCommit(forget);
          continue;
        }
        // A parked item was never routed, however old: its retry schedules it.
        forgottenThrough ??= history && !tx.parkedRetry ? await history(tx.db).forgottenThrough() : 0;
        if (event.position <= forgottenThrough) continue;
        const item = (event as unknown as DataIngested).data;
        const matched = item.routing?.deferred
          ? await deferredMatches((deferred ??= ruleEvaluator((appId) => catalog.listByApp(appId))), item)
          : (item.routing?.matched_rule_ids ?? []);
        if (matched.length === 0) continue;
        const body = deliveryBodyOf(item);
        const document = routedDocumentOf(item);
        for (const ruleId of matched) {
          const rule = await catalog.get(ruleId);
          // Deleted since it matched: nothing is left to deliver to.
          if (!rule) continue;
          // Switched off since it matched (the item was acknowledged as routed): the delivery waits,
          // unattempted, as the rule's other pending ones do, and goes once the rule is on again; a
          // database row is written then, by the worker.
          const table =
            rule.is_active && rule.destination_type === 'database' ? (rule.destination_config as DatabaseConfig).table : undefined;
          planned.push({
            cause: event,
            table,
            rule,
            delivery: {
              deliveryId: deliveryIdOf(item.item_id, ruleId, item.received_at),
              ruleId,
              itemId: item.item_id,
              appId: item.partner_id,
              eventType: item.event_type,
              destinationType: rule.destination_type,
              body,
              createdAt: now,
              orderingKey: rule.ordering_key ? (orderingKeyOf(rule.ordering_key, document) ?? null) : null,
              position: event.position,
              receivedAt: item.received_at,
              ...(table === undefined ? {} : { deliveredAt: now }),
            },
          });
        }
      }
      if (planned.length === 0) return;

      const inserted = new Set(await deliveries(tx.db).schedule(planned.map((p) => p.delivery)));
      const made = planned.filter((p) => inserted.has(p.delivery.deliveryId));
      const rowsByTable = new Map<string, DestinationRow[]>();
      for (const { delivery, table } of made) {
        if (table === undefined) continue;
        const rows = rowsByTable.get(table) ?? [];
        rows.push({
          // The id receivers see: a replay's row keeps the first delivery's, so the table holds it once.
          delivery_id: delivery.webhookId ?? delivery.deliveryId,
          event_id: delivery.itemId,
          app_id: delivery.appId,
          event_type: delivery.eventType,
          body: delivery.body,
          delivered_at: now,
        });
        rowsByTable.set(table, rows);
      }
      const unwritable = await writeTables(tx, (db) => tables(db, (callback) => tx.afterCommit(callback)), rowsByTable);

      // A delivery whose table failed is given up at once, as a destination's refusal is: its one
      // attempt failed, with the reason, and a replay of the dead letter tries the table again.
      const deadLettered = new Map<string, { reason: string; decision: AttemptDecision }>();
      for (const { delivery, table } of made) {
        const reason = table === undefined ? undefined : unwritable.get(table);
        if (reason === undefined) continue;
        const decision = decideAttempt(
          {
            itemId: delivery.itemId,
            deliveryId: delivery.deliveryId,
            ruleId: delivery.ruleId,
            attempt: 1,
            earlierAttempts: 0,
            at,
            schedule: [],
            random: 0,
          },
          { outcome: 'rejected', reason, durationMs: 0 },
        );
        await deliveries(tx.db).record(
          { deliveryId: delivery.deliveryId, status: decision.status, attempts: 1, nextAttemptAt: null, lastError: reason, at: now },
          { deliveryId: delivery.deliveryId, attempt: 1, at: now, outcome: 'rejected', statusCode: null, error: reason, durationMs: 0 },
        );
        deadLettered.set(delivery.deliveryId, { reason, decision });
      }
      const delivered = (entry: (typeof made)[number]) => entry.table !== undefined && !deadLettered.has(entry.delivery.deliveryId);

      // One event per item: DataRouted, whose entries for deliveries already made say when, followed
      // by what became of those whose table failed.
      const byItem = new Map<string, { cause: RecordedEvent; deliveries: typeof made }>();
      for (const entry of made) {
        const group = byItem.get(entry.delivery.itemId) ?? { cause: entry.cause, deliveries: [] };
        group.deliveries.push(entry);
        byItem.set(entry.delivery.itemId, group);
      }
      await tx.appendMany(
        [...byItem.entries()].map(([itemId, { cause, deliveries: group }]) => {
          const routed: DataRouted = {
            type: 'DataRouted',
            data: {
              item_id: itemId,
              app_id: group[0]?.delivery.appId ?? '',
              deliveries: group.map((entry) => ({
                delivery_id: entry.delivery.deliveryId,
                rule_id: entry.delivery.ruleId,
                destination_type: entry.delivery.destinationType,
                ...(delivered(entry) ? { delivered_at: now } : {}),
              })),
              routed_at: now,
            },
          };
          const failures = group.flatMap(({ delivery: d }) => deadLettered.get(d.deliveryId)?.decision.events ?? []);
          return {
            streamId: dataStreamId(itemId),
            events: [routed, ...failures].map((event) => ({ ...event, metadata: causedBy(cause) })),
          };
        }),
      );

      // Deliveries made or given up here, per rule: an attempt each, added to the tallies once per batch.
      const triedByRule = new Map<string, { rule: StoredRule; attempts: number; delivered: number }>();
      for (const entry of made) {
        if (entry.table === undefined) continue;
        const counted = triedByRule.get(entry.rule.rule_id) ?? { rule: entry.rule, attempts: 0, delivered: 0 };
        counted.attempts++;
        if (delivered(entry)) counted.delivered++;
        triedByRule.set(entry.rule.rule_id, counted);
      }
      if (triedByRule.size > 0) {
        const increments: TallyIncrement[] = [...triedByRule.values()].map(({ rule, attempts, delivered: n }) => ({
          ruleId: rule.rule_id,
          destination: destinationKeyOfRule(rule),
          attempts,
          delivered: n,
          failed: attempts - n,
          totalDurationMs: 0,
        }));
        await tallies(tx.db).add(increments, now);
      }
      // Counted and announced once committed: a pass that is rolled back and retried counts once.
      tx.afterCommit(() => {
        for (const entry of made) if (delivered(entry)) onDelivered?.(entry.delivery);
        for (const { delivery } of made) {
          const failed = deadLettered.get(delivery.deliveryId);
          if (failed) onDeadLettered?.(delivery, failed.reason);
        }
        if (made.some(({ table }) => table === undefined)) onScheduled();
      });
    },
  };
}

/**
 * Writes each table's rows, all in one savepoint; when that fails, each table again in one of its
 * own, so a table that cannot be written fails only its own rows. Answers why each such table failed.
 * A storage fault or an aborted transaction fails the whole pass, which the subscription retries.
 */
async function writeTables(
  tx: StoreTransaction,
  tables: (db: StoreTransaction['db']) => DestinationTables,
  rowsByTable: ReadonlyMap<string, readonly DestinationRow[]>,
): Promise<Map<string, string>> {
  const unwritable = new Map<string, string>();
  if (rowsByTable.size === 0) return unwritable;
  try {
    await tx.isolated(async () => {
      for (const [table, rows] of rowsByTable) await tables(tx.db).insertMany(table, rows);
    });
    return unwritable;
  } catch (error) {
    if (failsTheTransaction(error)) throw error;
  }
  for (const [table, rows] of rowsByTable) {
    try {
      await tx.isolated(() => tables(tx.db).insertMany(table, rows));
    } catch (error) {
      if (failsTheTransaction(error)) throw error;
      unwritable.set(table, `table ${table} could not be written: ${messageOf(error)}`);
    }
  }
  return unwritable;
}

/** The JSON document every destination receives for an item. */
export function deliveryBodyOf(item: ItemSnapshot): string {
  return JSON.stringify({
    type: item.event_type,
    timestamp: item.received_at,
    data: {
      event_id: item.item_id,
      app_id: item.partner_id,
      event_type: item.event_type,
      payload: item.payload,
      metadata: item.metadata,
      received_at: item.received_at,
    },
  });
}

/** What a rule's condition and ordering key see of an item. */
export function routedDocumentOf(item: ItemSnapshot) {
  return { app_id: item.partner_id, event_type: item.event_type, payload: item.payload, metadata: item.metadata };
}
