/**
 * The tail of the log as this process committed it. Every in-process subscriber reads each new
 * event right after its commit; answering those reads from memory spares a SQLite read per event
 * and subscriber. The store keeps one object per event for all its readers, so each event's JSON
 * is parsed at most once however many chains read it.
 *
 * Kept only where it is known to be whole: a commit whose first position does not follow the last
 * one kept (a gap, or commits noted out of order) starts the tail afresh, and a read that starts
 * before the tail, or finds nothing in it, goes to the database.
 */
export interface RecentEvents<Row extends Positioned> {
  /** Notes events just committed, in position order. */
  add(committed: readonly Row[]): void;
  /** Up to `limit` events after `position`, or undefined when the tail cannot tell. */
  after(position: number, limit: number): Row[] | undefined;
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
}

export function recentEvents<Row extends Positioned>(limits: RecentEventsLimits<Row>): RecentEvents<Row> {
  let kept: Row[] = [];
  let first = 0; // index of the oldest event still kept
  let bytes = 0; // of the events from `first` on

  const last = () => kept.at(-1)?.position;

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
      while (first < kept.length && (kept.length - first > limits.events || bytes > limits.bytes)) {
        bytes -= limits.sizeOf(kept[first] as Row);
        first += 1;
      }
      // Compact now and then rather than shifting the array on every commit.
      if (first > limits.events / 4 || first === kept.length) {
        kept = kept.slice(first);
        first = 0;
      }
    },

    after(position, limit) {
      const oldest = kept[first];
      if (oldest === undefined || position + 1 < oldest.position) return undefined;
      const from = first + (position + 1 - oldest.position);
      if (from >= kept.length) return undefined;
      return kept.slice(from, from + limit);
    },
  };
}
