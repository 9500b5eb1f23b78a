import type { RecordedEvent } from '../events.js';

/**
 * What a reader of the log knows of the commits it has not read yet. An announced commit that a read
 * did not find (the read began before the commit was visible to it) is looked for again soon, with
 * growing pauses, instead of waiting for the next commit or the poll: nothing else would wake the reader.
 */
export interface LogFollower {
  /** A commit was announced, by the position of its last event (the store's `onAppended`). */
  announced(head: number): void;
  /** The reader read these events. */
  read(events: readonly RecordedEvent[]): void;
  /** How long to wait before reading again after a read that found nothing new. */
  idleWaitMs(): number;
}

const FIRST_RETRY_MS = 2;
const MAX_RETRY_MS = 100;
/** An announced event not read by then was not this reader's to read (it had read past it already). */
const FORGET_AFTER_MS = 5000;
const MAX_PENDING = 10_000;
/** Batches read lately: an announcement that arrives after its event was read asks for nothing. */
const REMEMBERED_BATCHES = 16;

/** `pollIntervalMs` once every announced commit was read; short, growing retries until then. */
export function logFollower(pollIntervalMs: number, now: () => number = Date.now): LogFollower {
  // Each announced position is looked for by itself: events a PostgreSQL log holds from before
  // position order (decision 0040) are read in their old order, not by position.
  const pending = new Map<number, number>();
  // The first and last position of recent batches read in position order (all there was in between).
  const readRanges: Array<readonly [number, number]> = [];
  let retryMs = FIRST_RETRY_MS;
  return {
    announced(head) {
      // A reader that was reading already can read a commit before the commit's announcement comes.
      if (readRanges.some(([first, last]) => head >= first && head <= last)) return;
      if (pending.size >= MAX_PENDING) pending.delete(pending.keys().next().value as number);
      pending.set(head, now());
    },
    read(events) {
      let ordered = true;
      let previous = 0;
      for (const event of events) {
        pending.delete(event.position);
        ordered &&= event.position > previous;
        previous = event.position;
      }
      const first = events[0]?.position;
      if (first !== undefined && ordered) {
        readRanges.push([first, previous]);
        if (readRanges.length > REMEMBERED_BATCHES) readRanges.shift();
      }
      if (events.length > 0) retryMs = FIRST_RETRY_MS;
    },
    idleWaitMs() {
      const forgetBefore = now() - FORGET_AFTER_MS;
      for (const [position, at] of pending) if (at < forgetBefore) pending.delete(position);
      if (pending.size === 0) return pollIntervalMs;
      const wait = retryMs;
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      return Math.min(wait, pollIntervalMs);
    },
  };
}
