import type { DataEvent, ItemMetadata, ProcessingStep, Violation } from '../../shared/contracts/data-events.js';
import type { RoutingEvent } from '../../shared/contracts/routing-events.js';
import type { JsonObject } from '../../shared/events.js';

export type PipelineStatus = 'received' | 'ingested' | 'validated' | 'invalid' | 'processed' | 'failed';

/**
 * Status by stage, not by arrival: a later stage never moves an item back, so the view is the same
 * whatever order a broker delivers the events of different services in.
 */
const STAGE: Record<PipelineStatus, number> = { received: 0, ingested: 1, validated: 2, invalid: 2, processed: 3, failed: 3 };

export interface ItemView {
  readonly id: string;
  readonly partnerId: string;
  readonly eventType: string;
  readonly payload: JsonObject | null;
  readonly receivedAt: string;
  readonly status: PipelineStatus;
  /** `schemaPartnerId`: the source whose own schema judged, null for the schema of every source. */
  readonly validation: { schemaVersion: number | null; schemaPartnerId: string | null; errors: Violation[] } | null;
  readonly processing: { result: JsonObject | null; steps: ProcessingStep[]; reason: string | null; failedStep: string | null } | null;
  readonly metadata: ItemMetadata | null;
  /** Where routing sent the item, one entry per delivery. */
  readonly deliveries: DeliveryView[];
  readonly updatedAt: string;
}

/** The same words as routing's delivery API: `retrying` once an attempt failed and another is scheduled. */
export type DeliveryState = 'pending' | 'retrying' | 'succeeded' | 'dead_lettered';

export interface DeliveryView {
  readonly deliveryId: string;
  readonly ruleId: string;
  readonly destinationType: string | null;
  readonly status: DeliveryState;
  readonly attempts: number;
  readonly lastError: string | null;
  /** [attempt, rank]: the latest fact wins whatever order facts arrive in. */
  readonly stamp: readonly [number, number];
}

export type ViewEvent = DataEvent | RoutingEvent;

export interface HistoryEntry {
  readonly eventId: string;
  readonly type: string;
  readonly version: number;
  readonly recordedAt: string;
  readonly data: object;
}

export const QUERY_EVENT_TYPES: readonly ViewEvent['type'][] = [
  'DataReceived',
  'DataIngested',
  'DataValidated',
  'DataInvalid',
  'DataProcessed',
  'DataProcessingFailed',
  'DataRouted',
  'DeliveryAttempted',
  'DeliverySucceeded',
  'DeliveryFailed',
  'DeliveryDeadLettered',
  'DeliveryReplayed',
];

/** Folds one event of an item's stream into its view; `undefined` is the item before its first event. */
export function evolveItemView(view: ItemView | undefined, event: ViewEvent, recordedAt: string): ItemView {
  const base: ItemView = view ?? {
    id: event.data.item_id,
    partnerId: 'partner_id' in event.data ? event.data.partner_id : 'app_id' in event.data ? event.data.app_id : '',
    eventType: 'event_type' in event.data ? event.data.event_type : 'data',
    payload: null,
    receivedAt: 'received_at' in event.data ? event.data.received_at : recordedAt,
    status: 'received',
    validation: null,
    processing: null,
    metadata: null,
    deliveries: [],
    updatedAt: recordedAt,
  };
  const advance = (status: PipelineStatus): PipelineStatus => (STAGE[status] >= STAGE[base.status] ? status : base.status);
  // What every later stage tells of the item itself, for a view its DataIngested has not reached yet
  // (parked, or from another service that is behind): it showed type `data` and no payload.
  const known = 'event_type' in event.data ? { partnerId: event.data.partner_id, eventType: event.data.event_type } : {};
  const touched = { ...known, updatedAt: recordedAt > base.updatedAt ? recordedAt : base.updatedAt };

  switch (event.type) {
    case 'DataReceived':
      return { ...base, ...touched, receivedAt: event.data.received_at };
    case 'DataIngested':
      return {
        ...base,
        ...touched,
        partnerId: event.data.partner_id,
        eventType: event.data.event_type,
        payload: event.data.payload,
        metadata: event.data.metadata,
        receivedAt: event.data.received_at,
        status: advance('ingested'),
      };
    case 'DataValidated':
      return {
        ...base,
        ...touched,
        // A valid item's verdict carries the item.
        payload: base.payload ?? event.data.payload ?? null,
        metadata: base.metadata ?? event.data.metadata ?? null,
        status: advance('validated'),
        validation: { ...judgedBy(event.data), errors: [] },
      };
    case 'DataInvalid':
      return {
        ...base,
        ...touched,
        status: advance('invalid'),
        validation: { ...judgedBy(event.data), errors: event.data.errors },
      };
    case 'DataProcessed':
      return {
        ...base,
        ...touched,
        status: advance('processed'),
        processing: { result: event.data.result, steps: event.data.steps, reason: null, failedStep: null },
      };
    case 'DataProcessingFailed':
      return {
        ...base,
        ...touched,
        status: advance('failed'),
        processing: { result: null, steps: event.data.steps, reason: event.data.reason, failedStep: event.data.failed_step },
      };
    case 'DataRouted':
      return {
        ...base,
        ...touched,
        deliveries: event.data.deliveries.reduce(
          (all, d) =>
            withDelivery(all, d.delivery_id, (current) => {
              // An attempt read before it that named its destination (its rule changed type since) knows better.
              const routed: DeliveryView = current
                ? { ...current, destinationType: current.destinationType ?? d.destination_type }
                : {
                    deliveryId: d.delivery_id,
                    ruleId: d.rule_id,
                    destinationType: d.destination_type,
                    status: 'pending',
                    attempts: 0,
                    lastError: null,
                    stamp: [0, 0],
                  };
              // Made as it was scheduled: what a DeliverySucceeded of attempt 1 would say.
              if (d.delivered_at === undefined || laterThan(routed.stamp, MADE_AT_FIRST_ATTEMPT)) return routed;
              return { ...routed, status: 'succeeded', attempts: Math.max(routed.attempts, 1), stamp: MADE_AT_FIRST_ATTEMPT };
            }),
          base.deliveries,
        ),
      };
    default:
      return { ...base, ...touched, deliveries: evolveDelivery(base.deliveries, event) };
  }
}

const RANK = { DeliveryReplayed: 0, DeliveryAttempted: 1, DeliveryFailed: 2, DeliverySucceeded: 3, DeliveryDeadLettered: 3 } as const;
const MADE_AT_FIRST_ATTEMPT = [1, RANK.DeliverySucceeded] as const;

const laterThan = (a: readonly [number, number], b: readonly [number, number]) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);

/** A delivery fact applies unless a later one (by attempt, then rank) is already known: idempotent and order-free. */
function evolveDelivery(deliveries: DeliveryView[], event: Exclude<RoutingEvent, { type: 'DataRouted' }>): DeliveryView[] {
  const { delivery_id: deliveryId, rule_id: ruleId, attempt } = event.data;
  const stamp = [attempt, RANK[event.type]] as const;
  // A replay job's delivery has no DataRouted, and one whose rule changed type outgrew it: their
  // attempts name the destination type, the latest attempt's standing.
  const announced = 'destination_type' in event.data ? (event.data.destination_type ?? null) : null;
  return withDelivery(deliveries, deliveryId, (current) => {
    if (current && laterThan(current.stamp, stamp))
      return current.destinationType === null && announced !== null ? { ...current, destinationType: announced } : current;
    // A failure without a next attempt comes with its DeliveryDeadLettered; a replayed delivery that
    // failed before waits for another attempt, as routing's own `retrying` does.
    const status: DeliveryState =
      event.type === 'DeliveryReplayed'
        ? attempt > 1
          ? 'retrying'
          : 'pending'
        : event.type === 'DeliveryAttempted'
          ? (current?.status ?? 'pending')
          : event.type === 'DeliveryFailed'
            ? event.data.next_attempt_at
              ? 'retrying'
              : 'dead_lettered'
            : event.type === 'DeliverySucceeded'
              ? 'succeeded'
              : 'dead_lettered';
    // A dead letter replayed and given up before its next attempt (its rule deleted) carries the number
    // its DeliveryReplayed announced: that attempt was never made.
    const unmade =
      event.type === 'DeliveryReplayed' ||
      (event.type === 'DeliveryDeadLettered' && current?.stamp[0] === attempt && current.stamp[1] === RANK.DeliveryReplayed);
    return {
      deliveryId,
      ruleId,
      destinationType: announced ?? current?.destinationType ?? null,
      status,
      attempts: Math.max(current?.attempts ?? 0, unmade ? attempt - 1 : attempt),
      // A replay starts a new round, and a success ends one: the reason of a failure before no longer holds
      // (as the deliveries API says).
      lastError:
        'reason' in event.data
          ? event.data.reason
          : event.type === 'DeliveryReplayed' || event.type === 'DeliverySucceeded'
            ? null
            : (current?.lastError ?? null),
      stamp,
    };
  });
}

function withDelivery(
  deliveries: DeliveryView[],
  deliveryId: string,
  change: (current: DeliveryView | undefined) => DeliveryView,
): DeliveryView[] {
  const current = deliveries.find((d) => d.deliveryId === deliveryId);
  const next = change(current);
  if (next === current) return deliveries;
  return current
    ? deliveries.map((d) => (d === current ? next : d))
    : // By code unit, as the databases order ids: `localeCompare` depends on the locale and costs an ICU call.
      [...deliveries, next].sort((a, b) => (a.deliveryId < b.deliveryId ? -1 : a.deliveryId > b.deliveryId ? 1 : 0));
}
/** Rebuilds an item from its history, as it stood at `asOf` (inclusive) when given. */
export function foldHistory(history: readonly HistoryEntry[], asOf?: string): ItemView | undefined {
  return history
    .filter((entry) => asOf === undefined || entry.recordedAt <= asOf)
    .reduce<ItemView | undefined>(
      (view, entry) => evolveItemView(view, { type: entry.type, data: entry.data } as DataEvent, entry.recordedAt),
      undefined,
    );
}

/** Verdicts written before they named the schema's source read as the schema of every source. */
const judgedBy = (data: { schema_version: number | null; schema_partner_id?: string | null }) => ({
  schemaVersion: data.schema_version,
  schemaPartnerId: data.schema_partner_id ?? null,
});
