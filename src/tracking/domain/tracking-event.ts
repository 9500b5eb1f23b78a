import { ConflictError, parseAll } from '../../shared/errors.js';
import {
  instantOf,
  parseExternalId,
  parseInteractionType,
  parseOccurredAt,
  parseTrackedUrl,
  type ExternalId,
  type Instant,
  type InteractionType,
  type TrackedUrl,
  INVALID_EVENT,
} from './values.js';

/** A partner's report that a visitor interacted with one of its campaigns: a fact attribution is computed from. */
export interface TrackingEvent {
  readonly id: string;
  readonly partnerId: ExternalId;
  readonly campaignId: ExternalId;
  readonly visitorId: ExternalId;
  readonly interactionType: InteractionType;
  readonly sourceUrl: TrackedUrl;
  readonly destinationUrl: TrackedUrl;
  readonly occurredAt: Instant;
  readonly recordedAt: Instant;
}

/** Fields straight from the client, not yet trusted. */
export interface RecordTrackingEventCommand {
  readonly partnerId: unknown;
  readonly campaignId: unknown;
  readonly visitorId: unknown;
  readonly interactionType: unknown;
  readonly sourceUrl: unknown;
  readonly destinationUrl: unknown;
  readonly occurredAt?: unknown;
}

/** Published as `tracking_event.recorded.v1` (docs/tracking-events.md): its shape is a contract with other services. */
export interface TrackingEventRecorded {
  readonly type: 'TrackingEventRecorded';
  readonly data: {
    tracking_event_id: string;
    partner_id: string;
    campaign_id: string;
    visitor_id: string;
    interaction_type: InteractionType;
    source_url: string;
    destination_url: string;
    occurred_at: string;
    recorded_at: string;
  };
}

export type TrackingEventEvent = TrackingEventRecorded;

export const PUBLISHED_AS = 'tracking_event.recorded.v1';
export const SCHEMA_VERSION = 1;

export type TrackingEventState = { readonly status: 'absent' } | { readonly status: 'recorded'; readonly event: TrackingEvent };

export const initialState: TrackingEventState = { status: 'absent' };

export const trackingStreamId = (id: string) => `tracking-${id}`;

/** Builds a valid tracking event, or throws one ValidationError listing every invalid field. */
export function trackingEventFromCommand(command: RecordTrackingEventCommand, id: string, receivedAt: Date): TrackingEvent {
  const fields = parseAll<Omit<TrackingEvent, 'id' | 'recordedAt'>>(INVALID_EVENT, 'tracking event', {
    partnerId: () => parseExternalId(command.partnerId, 'partner_id'),
    campaignId: () => parseExternalId(command.campaignId, 'campaign_id'),
    visitorId: () => parseExternalId(command.visitorId, 'visitor_id'),
    interactionType: () => parseInteractionType(command.interactionType),
    sourceUrl: () => parseTrackedUrl(command.sourceUrl, 'source_url'),
    destinationUrl: () => parseTrackedUrl(command.destinationUrl, 'destination_url'),
    occurredAt: () => parseOccurredAt(command.occurredAt, receivedAt),
  });
  return { id, ...fields, recordedAt: instantOf(receivedAt) };
}

export function decideRecord(event: TrackingEvent, state: TrackingEventState): TrackingEventEvent[] {
  if (state.status !== 'absent') throw new ConflictError('tracking.already-recorded', `tracking event ${event.id} was already recorded`);
  return [
    {
      type: 'TrackingEventRecorded',
      data: {
        tracking_event_id: event.id,
        partner_id: event.partnerId,
        campaign_id: event.campaignId,
        visitor_id: event.visitorId,
        interaction_type: event.interactionType,
        source_url: event.sourceUrl,
        destination_url: event.destinationUrl,
        occurred_at: event.occurredAt,
        recorded_at: event.recordedAt,
      },
    },
  ];
}

export function evolve(_state: TrackingEventState, event: TrackingEventEvent): TrackingEventState {
  switch (event.type) {
    case 'TrackingEventRecorded':
      return { status: 'recorded', event: trackingEventFromRecorded(event.data) };
  }
}

export function trackingEventFromRecorded(data: TrackingEventRecorded['data']): TrackingEvent {
  return {
    id: data.tracking_event_id,
    partnerId: data.partner_id as ExternalId,
    campaignId: data.campaign_id as ExternalId,
    visitorId: data.visitor_id as ExternalId,
    interactionType: data.interaction_type,
    sourceUrl: data.source_url as TrackedUrl,
    destinationUrl: data.destination_url as TrackedUrl,
    occurredAt: data.occurred_at as Instant,
    recordedAt: data.recorded_at as Instant,
  };
}
