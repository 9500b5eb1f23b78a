import type { EventMetadata, NewEvent, RecordedEvent } from '../events.js';
import { checkExpectedVersion, type AppendRequest, type AppendResult, type InlineProjection } from './event-store.js';
import { ValidationError } from '../errors.js';
import { DATA_TEXT, envelopeMetadata, serialize } from './serialized-event.js';

/** An event ready to insert: its id, its place in its stream, and its serialised data. */
export interface PlannedRow {
  readonly eventId: string;
  readonly streamId: string;
  readonly streamVersion: number;
  readonly type: string;
  readonly data: string;
  readonly metadata: string;
  /** The index of the append it belongs to, in the requests planned. */
  readonly request: number;
}

export interface AppendPlan {
  /** The rows to insert, in order; appends that fail their version check have none. */
  readonly rows: readonly PlannedRow[];
  /**
   * The results once the rows are inserted, given each row's position and the commit time; and, when
   * the database numbered the events after a version the plan did not know, how far it moved a row's.
   */
  complete(
    positionOf: (row: PlannedRow) => number,
    recordedAt: string,
    versionShiftOf?: (row: PlannedRow) => number,
  ): { results: Array<AppendResult | Error>; recorded: RecordedEvent[] };
}

/**
 * What every adapter does around its INSERT: check each append's expected version against the
 * stream's current one (as moved by the appends before it in the same batch), number the events,
 * and turn the inserted rows back into results.
 */
export function planAppends(requests: readonly AppendRequest[], versions: Map<string, number>, newId: () => string): AppendPlan {
  const rows: PlannedRow[] = [];
  const planned = requests.map((request, index) => {
    const current = versions.get(request.streamId) ?? 0;
    let serialized;
    try {
      checkExpectedVersion(request.streamId, request.expectedVersion, current);
    } catch (error) {
      return error as Error;
    }
    try {
      // Serialised before any row is planned: data that cannot be (too deep, a BigInt) fails its own append only.
      serialized = request.events.map(serialize);
    } catch (error) {
      return new ValidationError('event-store.unserializable', `the event data cannot be stored as JSON: ${(error as Error).message}`);
    }
    const first = rows.length;
    request.events.forEach((event, i) => {
      const { data, metadata } = serialized[i] as { data: string; metadata: string };
      rows.push({
        eventId: newId(),
        streamId: request.streamId,
        streamVersion: current + i + 1,
        type: event.type,
        data,
        metadata,
        request: index,
      });
    });
    versions.set(request.streamId, current + request.events.length);
    return { first, count: request.events.length, nextExpectedVersion: current + request.events.length };
  });

  return {
    rows,
    complete(positionOf, recordedAt, versionShiftOf) {
      const recorded: RecordedEvent[] = [];
      const results = planned.map((plan, index): AppendResult | Error => {
        if (plan instanceof Error) return plan;
        const request = requests[index] as AppendRequest;
        const own = rows.slice(plan.first, plan.first + plan.count);
        const shift = own[0] && versionShiftOf ? versionShiftOf(own[0]) : 0;
        const events = own.map((row, i) => {
          const event = recordedOf(row, positionOf(row), row.streamVersion + shift, recordedAt, request.events[i]);
          recorded.push(event);
          return event;
        });
        return { streamId: request.streamId, nextExpectedVersion: plan.nextExpectedVersion + shift, events };
      });
      return { results, recorded };
    },
  };
}

/**
 * The appended event as readers see it, with the text it was stored as for writers that extend it
 * (`extendedEvent`). Its data is read through from the event given, so an event that arrived as text
 * is parsed only when someone looks inside, and once for every reader.
 */
function recordedOf(
  row: PlannedRow,
  position: number,
  streamVersion: number,
  recordedAt: string,
  given: NewEvent | undefined,
): RecordedEvent {
  let metadata: EventMetadata | undefined;
  return {
    eventId: row.eventId,
    position,
    streamId: row.streamId,
    streamVersion,
    type: row.type,
    get data() {
      return given?.data ?? {};
    },
    get metadata() {
      // As its text was written (serialize): read back from the log, it says the same.
      return (metadata ??= envelopeMetadata(given?.metadata));
    },
    recordedAt,
    [DATA_TEXT]: row.data,
  } as RecordedEvent;
}

/** Runs the inline projections on what a transaction appended, each on the event types it handles. */
export async function applyInlineProjections<Db>(
  projections: readonly InlineProjection[],
  db: Db,
  events: readonly RecordedEvent[],
  asProjectionDb: (db: Db) => Parameters<InlineProjection['apply']>[0],
): Promise<void> {
  for (const projection of projections) {
    const handled = events.filter((event) => projection.handles.includes(event.type));
    if (handled.length > 0) await projection.apply(asProjectionDb(db), handled);
  }
}
