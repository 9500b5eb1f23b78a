import type { Clock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import type { EventMetadata, NewEvent } from '../../shared/events.js';
import type { IdGenerator } from '../../shared/ids.js';
import {
  decideRecord,
  initialState,
  PUBLISHED_AS,
  SCHEMA_VERSION,
  trackingEventFromCommand,
  trackingStreamId,
  type RecordTrackingEventCommand,
  type TrackingEvent,
} from '../domain/tracking-event.js';

export interface RecordTrackingEventDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly newId: IdGenerator;
}

/** Facts about the request that carried the event: kept in its metadata, never used to decide. */
export interface RequestContext {
  readonly correlationId?: string;
}

/** Resolves once the event is durable (group committed with concurrent requests): the caller may acknowledge it. */
export const recordTrackingEvent =
  ({ store, clock, newId }: RecordTrackingEventDeps) =>
  async (command: RecordTrackingEventCommand, context: RequestContext = {}): Promise<TrackingEvent> => {
    const event = trackingEventFromCommand(command, newId(), clock.now());
    await store.append(appendOf(event, context));
    return event;
  };

/** The append that records one event on its own stream, which must not exist yet. */
export function appendOf(event: TrackingEvent, context: RequestContext) {
  return {
    streamId: trackingStreamId(event.id),
    events: decideRecord(event, initialState).map((recorded): NewEvent => ({ ...recorded, metadata: metadataOf(context) })),
    expectedVersion: 'no_stream' as const,
  };
}

// The public name travels with the event, so a relay can publish it under that name without knowing tracking.
const metadataOf = ({ correlationId }: RequestContext): EventMetadata => ({
  schema_version: SCHEMA_VERSION,
  published_as: PUBLISHED_AS,
  ...(correlationId ? { correlationId } : {}),
});
