import { parseAll, ValidationError } from '../../shared/errors.js';
import type { EventMetadata } from '../../shared/events.js';
import {
  readExternalId,
  parseInstant,
  parseInteractionType,
  trackedVisitor,
  type ExternalId,
  type Instant,
  type InteractionType,
  type Visitor,
} from './values.js';

/** One interaction of a visitor with a partner's campaign, as attribution knows it. */
export interface Touch {
  readonly trackingEventId: string;
  readonly visitor: Visitor;
  readonly partnerId: ExternalId;
  readonly campaignId: ExternalId;
  readonly interactionType: InteractionType;
  readonly occurredAt: Instant;
}

/** The event type attribution consumes, and the version of its shape it understands. */
export const TRACKING_EVENT_RECORDED = 'TrackingEventRecorded';
const UNDERSTOOD_SCHEMA_VERSION = 1;

/**
 * Reads `tracking_event.recorded.v1` as a tolerant reader: it takes the fields it needs and ignores
 * the rest, so tracking may add fields without breaking attribution. A version it does not know is
 * refused loudly (the subscriber parks it) rather than misread.
 */
export function touchFromPublished(data: unknown, metadata: EventMetadata): Touch {
  const version = metadata.schema_version ?? UNDERSTOOD_SCHEMA_VERSION;
  if (version !== UNDERSTOOD_SCHEMA_VERSION) {
    throw new ValidationError(
      'attribution.unsupported-event-version',
      `TrackingEventRecorded schema_version ${String(version)} is not understood (only ${UNDERSTOOD_SCHEMA_VERSION})`,
    );
  }
  const fields = (data ?? {}) as Record<string, unknown>;
  return parseAll<Touch>('attribution.unreadable-event', 'TrackingEventRecorded', {
    trackingEventId: () => readExternalId(fields.tracking_event_id, 'tracking_event_id') as string,
    visitor: () => trackedVisitor(readExternalId(fields.visitor_id, 'visitor_id')),
    partnerId: () => readExternalId(fields.partner_id, 'partner_id'),
    campaignId: () => readExternalId(fields.campaign_id, 'campaign_id'),
    interactionType: () => parseInteractionType(fields.interaction_type),
    occurredAt: () => parseInstant(fields.occurred_at, 'occurred_at'),
  });
}

/** Touches in the order they happened; the event id breaks ties so every replay sees the same order. */
export function compareTouches(a: Touch, b: Touch): number {
  if (a.occurredAt !== b.occurredAt) return a.occurredAt < b.occurredAt ? -1 : 1;
  return a.trackingEventId < b.trackingEventId ? -1 : a.trackingEventId > b.trackingEventId ? 1 : 0;
}
