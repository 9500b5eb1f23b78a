import type { EventMetadata, NewEvent } from '../events.js';

const SERIALIZED = Symbol('serialized');

interface Serialized {
  readonly data: string;
  readonly metadata: string;
}

/**
 * An event whose data was turned into JSON already (by the thread that received it), so the
 * storage thread writes the text as it is and parses it only if a projection looks inside.
 */
export function serializedEvent(type: string, data: string, metadata: string): NewEvent {
  let parsedData: object | undefined;
  let parsedMetadata: EventMetadata | undefined;
  return {
    type,
    get data() {
      return (parsedData ??= JSON.parse(data) as object);
    },
    get metadata() {
      return (parsedMetadata ??= JSON.parse(metadata) as EventMetadata);
    },
    [SERIALIZED]: { data, metadata },
  } as NewEvent;
}

/** The event's data and metadata as JSON text; throws (for this event alone) when they cannot be serialised. */
export function serialize(event: NewEvent): Serialized {
  const given = (event as NewEvent & { [SERIALIZED]?: Serialized })[SERIALIZED];
  return given ?? { data: JSON.stringify(event.data), metadata: JSON.stringify(event.metadata ?? {}) };
}
