/**
 * Routing's published events, recorded on the item's stream (`data-<item id>`): where the item was
 * sent and what became of each delivery. Every delivery event carries its attempt number, so a
 * reader can order them without relying on arrival order.
 */
export interface DataRouted {
  readonly type: 'DataRouted';
  readonly data: {
    item_id: string;
    app_id: string;
    /**
     * `delivered_at` marks a delivery made as it was scheduled (a database destination): it succeeded
     * at attempt 1, and no DeliveryAttempted or DeliverySucceeded follows for it.
     */
    deliveries: Array<{ delivery_id: string; rule_id: string; destination_type: string; delivered_at?: string }>;
    routed_at: string;
  };
}

export interface DeliveryAttempted {
  readonly type: 'DeliveryAttempted';
  readonly data: {
    item_id: string;
    delivery_id: string;
    rule_id: string;
    attempt: number;
    attempted_at: string;
    /** On the attempts of a replay job's delivery, which no DataRouted announces, and of one whose rule changed type since (added December 2026). */
    destination_type?: string;
  };
}

export interface DeliverySucceeded {
  readonly type: 'DeliverySucceeded';
  readonly data: {
    item_id: string;
    delivery_id: string;
    rule_id: string;
    attempt: number;
    status_code: number | null;
    duration_ms: number;
    delivered_at: string;
  };
}

export interface DeliveryFailed {
  readonly type: 'DeliveryFailed';
  readonly data: {
    item_id: string;
    delivery_id: string;
    rule_id: string;
    attempt: number;
    reason: string;
    status_code: number | null;
    /** null when no retry follows (the delivery is dead-lettered). */
    next_attempt_at: string | null;
    failed_at: string;
  };
}

export interface DeliveryDeadLettered {
  readonly type: 'DeliveryDeadLettered';
  readonly data: { item_id: string; delivery_id: string; rule_id: string; attempt: number; reason: string; dead_lettered_at: string };
}

/** A dead-lettered delivery sent back to the queue by an operator; `attempt` is the next one. */
export interface DeliveryReplayed {
  readonly type: 'DeliveryReplayed';
  readonly data: { item_id: string; delivery_id: string; rule_id: string; attempt: number; replayed_at: string };
}

export type RoutingEvent = DataRouted | DeliveryAttempted | DeliverySucceeded | DeliveryFailed | DeliveryDeadLettered | DeliveryReplayed;

export const ROUTING_EVENT_TYPES = [
  'DataRouted',
  'DeliveryAttempted',
  'DeliverySucceeded',
  'DeliveryFailed',
  'DeliveryDeadLettered',
  'DeliveryReplayed',
] as const;
