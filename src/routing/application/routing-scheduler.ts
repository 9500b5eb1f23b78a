import type { Clock } from '../../shared/clock.js';
import { dataStreamId, type DataIngested, type ItemSnapshot } from '../../shared/contracts/data-events.js';
import type { DataRouted } from '../../shared/contracts/routing-events.js';
import { causedBy, type RecordedEvent } from '../../shared/events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { deliveryIdOf } from '../domain/delivery.js';
import { orderingKeyOf } from '../domain/ordering-key.js';
import { RULE_EVENT_TYPES, type RoutingRuleEvent } from '../domain/routing-rule.js';
import type { DatabaseConfig } from '../domain/destination-config.js';
import { destinationKeyOfRule } from './destination-key.js';
import type {
  DeliveryStoreFor,
  DestinationRow,
  DestinationTablesFor,
  NewDelivery,
  RuleCatalogFor,
  StoredRule,
  TallyIncrement,
  TallyStoreFor,
} from './ports.js';
import type { RuleEvaluator } from './rule-evaluator.js';

export interface SchedulerDeps {
  readonly clock: Clock;
  readonly rules: RuleCatalogFor;
  readonly deliveries: DeliveryStoreFor;
  /** Database destinations are written here, as their deliveries are scheduled. */
  readonly tables: DestinationTablesFor;
  /** Each delivery made while scheduling counts as one delivered attempt of its destination. */
  readonly tallies: TallyStoreFor;
  readonly evaluator: RuleEvaluator;
  /** Wakes the delivery worker once new deliveries are committed. */
  readonly onScheduled: () => void;
  /** Each delivery made while scheduling (database destinations), for the metrics. */
  readonly onDelivered?: (delivery: { readonly ruleId: string; readonly destinationType: string }) => void;
  /** Called for every rule event read: cached rules are forgotten. */
  readonly onRuleChanged?: (ruleId: string) => void;
}

/**
 * Turns the rules matched at ingestion into stored deliveries and records DataRouted on the item.
 * The store holds one delivery per (item, rule), so a redelivered DataIngested schedules nothing twice,
 * whatever form of id the first one got.
 * A database destination is a table of this service's own database: its row is written in the same
 * transaction, one multi-row insert per table per batch, and the delivery recorded as made (in its row
 * and in DataRouted), instead of an attempt, two events and a transaction of its own per item. Rule
 * events only invalidate this process's compiled rules: that is how every replica sees a change.
 */
export function routingScheduler({
  clock,
  rules,
  deliveries,
  tables,
  tallies,
  evaluator,
  onScheduled,
  onDelivered,
  onRuleChanged,
}: SchedulerDeps): Subscriber {
  return {
    name: 'routing',
    handles: ['DataIngested', ...RULE_EVENT_TYPES],
    // An item no rule matched at ingestion has nothing to schedule.
    wants: (event) => event.type !== 'DataIngested' || ((event.data as DataIngested['data']).routing?.matched_rule_ids.length ?? 0) > 0,
    async handle(events, tx) {
      const now = clock.now().toISOString();
      const catalog = rules(tx.db);
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
          tx.afterCommit(forget);
          continue;
        }
        const item = (event as unknown as DataIngested).data;
        const routing = item.routing;
        if (!routing || routing.matched_rule_ids.length === 0) continue;
        const body = deliveryBodyOf(item);
        const document = routedDocumentOf(item);
        for (const ruleId of routing.matched_rule_ids) {
          const rule = await catalog.get(ruleId);
          if (!rule?.is_active) continue;
          const table = rule.destination_type === 'database' ? (rule.destination_config as DatabaseConfig).table : undefined;
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
      // Deliveries made here, per rule: a delivered attempt each, added to the tallies once per batch.
      const madeByRule = new Map<string, { rule: StoredRule; made: number }>();
      for (const { delivery, table, rule } of made) {
        if (table === undefined) continue;
        const counted = madeByRule.get(rule.rule_id);
        if (counted) counted.made++;
        else madeByRule.set(rule.rule_id, { rule, made: 1 });
        const rows = rowsByTable.get(table) ?? [];
        rows.push({
          delivery_id: delivery.deliveryId,
          event_id: delivery.itemId,
          app_id: delivery.appId,
          event_type: delivery.eventType,
          body: delivery.body,
          delivered_at: now,
        });
        rowsByTable.set(table, rows);
      }
      for (const [table, rows] of rowsByTable) await tables(tx.db, (callback) => tx.afterCommit(callback)).insertMany(table, rows);

      // One event per item: DataRouted, whose entries for deliveries already made say when.
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
              deliveries: group.map(({ delivery: d, table }) => ({
                delivery_id: d.deliveryId,
                rule_id: d.ruleId,
                destination_type: d.destinationType,
                ...(table === undefined ? {} : { delivered_at: now }),
              })),
              routed_at: now,
            },
          };
          return { streamId: dataStreamId(itemId), events: [{ ...routed, metadata: causedBy(cause) }] };
        }),
      );
      if (madeByRule.size > 0) {
        const increments: TallyIncrement[] = [...madeByRule.values()].map(({ rule, made: n }) => ({
          ruleId: rule.rule_id,
          destination: destinationKeyOfRule(rule),
          attempts: n,
          delivered: n,
          failed: 0,
          totalDurationMs: 0,
        }));
        await tallies(tx.db).add(increments, now);
      }
      // Counted and announced once committed: a pass that is rolled back and retried counts once.
      tx.afterCommit(() => {
        for (const { table, delivery } of made) if (table !== undefined) onDelivered?.(delivery);
        if (made.some(({ table }) => table === undefined)) onScheduled();
      });
    },
  };
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
