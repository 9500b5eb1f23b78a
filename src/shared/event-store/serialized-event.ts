import { ValidationError } from '../errors.js';
import type { EventMetadata, NewEvent } from '../events.js';

const SERIALIZED = Symbol('serialized');

interface Serialized {
  readonly data: string;
  readonly metadata: string;
}

/** A new event as it crosses to the storage thread: a string is copied whole, an object graph field by field. */
export interface EventText extends Serialized {
  readonly type: string;
}

/**
 * The metadata an event is stored with: every envelope names the version of its data's shape
 * (docs/events.md), 1 unless its writer said otherwise. Events written without any (a delivery's
 * attempt, a rule's change) carried none.
 */
export function envelopeMetadata(metadata: EventMetadata | undefined): EventMetadata {
  return metadata?.schema_version !== undefined ? metadata : { schema_version: 1, ...metadata };
}

/** The event as text, on the sending thread; data that cannot be serialised fails the caller's request only. */
export function eventText(event: NewEvent): EventText {
  try {
    return { type: event.type, data: JSON.stringify(event.data), metadata: JSON.stringify(envelopeMetadata(event.metadata)) };
  } catch (error) {
    throw new ValidationError('event-store.unserializable', `the event data cannot be stored as JSON: ${(error as Error).message}`);
  }
}

/** The event back from its text, on the storage thread; parsed only if a projection looks inside. */
export const fromEventText = (text: EventText): NewEvent => serializedEvent(text.type, text.data, text.metadata);

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
  if (given) return given;
  const dataText = (event as NewEvent & { [DATA_TEXT]?: string })[DATA_TEXT];
  return { data: dataText ?? JSON.stringify(event.data), metadata: JSON.stringify(envelopeMetadata(event.metadata)) };
}

/** The JSON text an event's data was read from (recorded events) or is to be written as (new ones). */
export const DATA_TEXT = Symbol('dataText');

/**
 * A new event whose data is `source`'s data with `additions` after its own fields, its text spliced
 * from the source's text when the log handed that over: the item a verdict carries is most of its
 * data, and stringifying it again cost more than the rest of the verdict. Events are never changed
 * once read, so the source's text is its data. Without the text, or when an addition would replace a
 * field of the source, the data is stringified as usual.
 */
export function extendedEvent<Type extends string, Data extends object>(
  source: { readonly data: object },
  event: NewEvent<Type, Data>,
  additions: Readonly<Record<string, unknown>>,
): NewEvent<Type, Data> {
  const text = (source as { [DATA_TEXT]?: string })[DATA_TEXT];
  if (text === undefined || !text.endsWith('}') || Object.keys(source.data).length === 0) return event;
  const added = Object.keys(additions);
  if (added.length === 0 || added.some((key) => Object.hasOwn(source.data, key))) return event;
  return { ...event, [DATA_TEXT]: `${text.slice(0, -1)},${JSON.stringify(additions).slice(1)}` } as NewEvent<Type, Data>;
}
