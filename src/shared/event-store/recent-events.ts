import type { RecordedEvent } from '../events.js';
import { DATA_TEXT } from './serialized-event.js';

/**
 * The tail of the log as this process committed it. Every in-process reader (a subscriber, the
 * outbox relay) reads each new event right after its commit; answering those reads from memory
 * spares a database read per event and reader. The store keeps one object per event for all its
 * readers, so each event's JSON is parsed at most once however many chains read it.
 *
 * Kept only where it is known to be whole: a commit whose first position does not follow the last
 * one kept (a gap, or commits noted out of order) starts the tail afresh, and a read that starts
 * before the tail, or finds nothing in it, goes to the database.
 *
 * Readers that name themselves let the tail drop what all of them have read: keeping up, they hold
 * only a few commits in memory; falling behind under load, they hold up to the limits, read from
 * memory rather than from SQLite just when the storage thread has the least time to spare.
 */
export interface RecentEvents<Row extends Positioned> {
  /** Notes events just committed, in position order. */
  add(committed: readonly Row[]): void;
  /**
   * Up to `limit` events after `position`, or undefined when the tail cannot tell. A `reader` says it
   * needs nothing up to `position` any more.
   */
  after(position: number, limit: number, reader?: string): Row[] | undefined;
}

interface Positioned {
  readonly position: number;
}

export interface RecentEventsLimits<Row> {
  /** At most this many events. */
  readonly events: number;
  /** At most this much of `sizeOf` in all: a few large events must not hold memory many small ones would not. */
  readonly bytes: number;
  readonly sizeOf: (row: Row) => number;
  /** A named reader silent this long (halted, or waiting out a fault) no longer holds events in memory. */
  readonly readerIdleMs?: number;
  readonly now?: () => number;
}

const READER_IDLE_MS = 5_000;

// Readers that keep up stay within a few commits of the head, and the tail holds only those. Under
// load they fall behind by a few thousand items (several events each) and read the tail up to this
// far back; further back, they read the database.
export const RECENT_EVENTS = 32_768;
// And at most this much JSON text (in UTF-16 code units): large payloads are read from the database instead.
export const RECENT_BYTES = 32 * 1024 * 1024;

/** An event of the in-memory tail: one object for every reader, so its JSON is parsed at most once. */
export interface KeptEvent {
  readonly position: number;
  /** Its data's JSON text, in UTF-16 code units (the metadata's hardly adds to it). */
  readonly size: number;
  readonly event: RecordedEvent;
}

/** A just-appended event as the tail keeps it: appended events carry the text their data was stored as. */
export function keptEvent(event: RecordedEvent): KeptEvent {
  const text = (event as RecordedEvent & { [DATA_TEXT]?: string })[DATA_TEXT];
  return { position: event.position, size: text?.length ?? 0, event };
}

export function recentEvents<Row extends Positioned>(limits: RecentEventsLimits<Row>): RecentEvents<Row> {
  const now = limits.now ?? Date.now;
  const idleMs = limits.readerIdleMs ?? READER_IDLE_MS;
  const readers = new Map<string, { position: number; at: number }>();
  // Slots before `first` are emptied as their events are dropped: the array is compacted only now and
  // then, and a dropped event left in its slot stayed on the heap until then, with its data and text
  // (thousands of large items under a steady load, past the storage thread's heap).
  let kept: Array<Row | undefined> = [];
  let first = 0; // index of the oldest event still kept
  let bytes = 0; // of the events from `first` on

  const last = () => kept.at(-1)?.position;

  /** The position every reader heard from lately has read up to, or undefined when none was. */
  const readUpTo = () => {
    const since = now() - idleMs;
    let lowest: number | undefined;
    for (const [name, reader] of readers) {
      if (reader.at < since) readers.delete(name);
      else if (lowest === undefined || reader.position < lowest) lowest = reader.position;
    }
    return lowest;
  };

  return {
    add(committed) {
      for (const event of committed) {
        const previous = last();
        if (previous !== undefined && event.position !== previous + 1) {
          kept = [];
          first = 0;
          bytes = 0;
        }
        kept.push(event);
        bytes += limits.sizeOf(event);
      }
      const read = readUpTo() ?? -Infinity;
      const drops = (oldest: Row) => oldest.position <= read || kept.length - first > limits.events || bytes > limits.bytes;
      while (first < kept.length && drops(kept[first] as Row)) {
        bytes -= limits.sizeOf(kept[first] as Row);
        kept[first] = undefined;
        first += 1;
      }
      // Compact now and then rather than shifting the array on every commit.
      if (first > limits.events / 4 || first === kept.length) {
        kept = kept.slice(first);
        first = 0;
      }
    },

    after(position, limit, reader) {
      if (reader !== undefined) readers.set(reader, { position, at: now() });
      const oldest = kept[first];
      if (oldest === undefined || position + 1 < oldest.position) return undefined;
      const from = first + (position + 1 - oldest.position);
      if (from >= kept.length) return undefined;
      return kept.slice(from, from + limit) as Row[];
    },
  };
}
