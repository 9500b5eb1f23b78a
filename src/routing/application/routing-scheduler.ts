import type { Clock } from '../../shared/clock.js';
import { dataStreamId, type DataIngested, type ItemSnapshot } from '../../shared/contracts/data-events.js';
import type { DataRouted } from '../../shared/contracts/routing-events.js';
import { causedBy } from '../../shared/events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { deliveryIdOf } from '../domain/delivery.js';
import { orderingKeyOf } from '../domain/ordering-key.js';
import { RULE_EVENT_TYPES, type RoutingRuleEvent } from '../domain/routing-rule.js';
import type { DeliveryStoreFor, NewDelivery, RuleCatalogFor } from './ports.js';
import type { RuleEvaluator } from './rule-evaluator.js';

export interface SchedulerDeps {
  readonly clock: Clock;
  readonly rules: RuleCatalogFor;
  readonly deliveries: DeliveryStoreFor;
  readonly evaluator: RuleEvaluator;
  /** Wakes the delivery worker once new deliveries are committed. */
  readonly onScheduled: () => void;
}

/**
 * Turns the rules matched at ingestion into stored deliveries and records DataRouted on the item.
 * Delivery ids are derived from (item, rule), so a redelivered DataIngested schedules nothing twice.
 * Rule events only invalidate this process's compiled rules: that is how every replica sees a change.
 */
export function routingScheduler({ clock, rules, deliveries, evaluator, onScheduled }: SchedulerDeps): Subscriber {
  return {
    name: 'routing',
    handles: ['DataIngested', ...RULE_EVENT_TYPES],
    async handle(events, tx) {
      let scheduled = false;
      for (const event of events) {
        if (event.type !== 'DataIngested') {
          evaluator.invalidate((event as unknown as RoutingRuleEvent).data.app_id);
          continue;
        }
        const item = (event as unknown as DataIngested).data;
        const routing = item.routing;
        if (!routing || routing.matched_rule_ids.length === 0) continue;
        const now = clock.now().toISOString();
        const body = deliveryBodyOf(item);
        const document = routedDocumentOf(item);
        const planned: NewDelivery[] = [];
        for (const ruleId of routing.matched_rule_ids) {
          const rule = await rules(tx.db).get(ruleId);
          if (!rule?.is_active) continue;
          planned.push({
            deliveryId: deliveryIdOf(item.item_id, ruleId),
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
          });
        }
        const inserted = new Set(await deliveries(tx.db).schedule(planned));
        if (inserted.size === 0) continue;
        const routed: DataRouted = {
          type: 'DataRouted',
          data: {
            item_id: item.item_id,
            app_id: item.partner_id,
            deliveries: planned
              .filter((d) => inserted.has(d.deliveryId))
              .map((d) => ({ delivery_id: d.deliveryId, rule_id: d.ruleId, destination_type: d.destinationType })),
            routed_at: now,
          },
        };
        await tx.append({ streamId: dataStreamId(item.item_id), events: [{ ...routed, metadata: causedBy(event) }] });
        scheduled = true;
      }
      if (scheduled) setImmediate(onScheduled);
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
