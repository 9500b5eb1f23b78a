import type { RecordedEvent } from '../events.js';
import { publisherOf } from '../contracts/event-publishers.js';
import type { BusMessage, DeliveredMessage } from './message-bus.js';

// NATS subject tokens cannot hold separators, wildcards or whitespace.
const NOT_A_SUBJECT_TOKEN = /[.*>\s]/g;

/** The prefix subjects use unless told otherwise. */
export const DEFAULT_SUBJECT_PREFIX = 'intake';

/**
 * `<prefix>.<context>.<EventType>`: consumers filter by context, by type, or both. The prefix keeps
 * deployments sharing one NATS apart: each has its own stream over its own subjects.
 */
export function subjectOf(context: string, eventType: string, prefix = DEFAULT_SUBJECT_PREFIX): string {
  return `${prefix}.${context.replace(NOT_A_SUBJECT_TOKEN, '_')}.${eventType.replace(NOT_A_SUBJECT_TOKEN, '_')}`;
}

/** The subjects of some event types, whichever context publishes them. */
export function subjectsOfTypes(eventTypes: readonly string[], prefix = DEFAULT_SUBJECT_PREFIX): string[] {
  return eventTypes.map((type) => `${prefix}.*.${type.replace(NOT_A_SUBJECT_TOKEN, '_')}`);
}

/**
 * What a subscriber's consumer reads: each type as the role running the context that publishes it
 * (the context the subscriber names, else the type's publisher), or from whichever role when that
 * role is not known.
 */
export function subjectsOfSubscriber(
  subscriber: { readonly handles: readonly string[]; readonly from?: string },
  roleOf: (context: string) => string | undefined,
  prefix = DEFAULT_SUBJECT_PREFIX,
): string[] {
  return subscriber.handles.map((type) => {
    const context = subscriber.from ?? publisherOf(type);
    const role = context === undefined ? undefined : roleOf(context);
    return role === undefined ? `${prefix}.*.${type.replace(NOT_A_SUBJECT_TOKEN, '_')}` : subjectOf(role, type, prefix);
  });
}

/** Every subject of a deployment. */
export function allSubjectsOf(prefix = DEFAULT_SUBJECT_PREFIX): string {
  return `${prefix}.>`;
}

/** An event as it leaves its service: the id for deduplication, its place in its stream in the metadata. */
export function messageOfEvent(event: RecordedEvent): BusMessage {
  return {
    id: event.eventId,
    type: event.type,
    data: event.data,
    metadata: {
      ...event.metadata,
      streamId: event.streamId,
      streamVersion: event.streamVersion,
      recordedAt: event.recordedAt,
      sourcePosition: event.position,
    },
  };
}

/**
 * The event again on the consuming side. Its `position` is the one in the publishing service's own log:
 * it identifies the event there, but orders nothing across services.
 */
export function eventOfMessage(message: DeliveredMessage): RecordedEvent {
  const { streamId, streamVersion, recordedAt, sourcePosition, ...metadata } = message.metadata;
  return {
    eventId: message.id,
    position: typeof sourcePosition === 'number' ? sourcePosition : 0,
    streamId: typeof streamId === 'string' ? streamId : '',
    streamVersion: typeof streamVersion === 'number' ? streamVersion : 0,
    type: message.type,
    data: message.data,
    metadata,
    recordedAt: typeof recordedAt === 'string' ? recordedAt : '',
  };
}
