/** The event envelope shared by every context. Events are facts, named in the past tense. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface EventMetadata {
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly [key: string]: JsonValue | undefined;
}

export interface NewEvent<Type extends string = string, Data extends object = object> {
  readonly type: Type;
  readonly data: Data;
  readonly metadata?: EventMetadata;
}

export interface RecordedEvent<Type extends string = string, Data extends object = object> {
  readonly eventId: string;
  /** Global, strictly increasing order of the log. */
  readonly position: number;
  readonly streamId: string;
  /** 1 for a stream's first event. */
  readonly streamVersion: number;
  readonly type: Type;
  readonly data: Data;
  readonly metadata: EventMetadata;
  readonly recordedAt: string;
}

/** Narrows a recorded event to one of a context's own event unions by its type. */
export function isEventOf<E extends { type: string }>(event: RecordedEvent, types: readonly E['type'][]): event is RecordedEvent & E {
  return (types as readonly string[]).includes(event.type);
}

/** Metadata for an event recorded in reaction to another: the causal chain and the request's correlation id. */
export function causedBy(cause: RecordedEvent): EventMetadata {
  const correlationId = cause.metadata.correlationId;
  return { schema_version: 1, causationId: cause.eventId, ...(correlationId ? { correlationId } : {}) };
}
