import { OverloadedError, type EventStore } from '../event-store/event-store.js';
import { recentShares } from './recent-shares.js';

/**
 * Flow control between what comes in and what the subscribers have handled. A burst is taken in at
 * full speed; once the subscribers trail the head by more than `holdAbove` events, appends from outside
 * wait until they are back within `resumeAt`. Left alone, a sustained load outran them without bound:
 * they fell out of the log's in-memory tail, read and parsed every event again from SQLite, and
 * handled fewer events a second than when they kept up, so the backlog grew faster still.
 *
 * The hold falls on the sources that make the backlog: while it holds, a source (an application or a
 * partner) that sent under half of an even share of the recent load goes ahead (recent-shares.ts).
 * Held alike, one tenant's flood made every other tenant's single event wait up to `maxWaitMs`.
 */
export interface FlowControlOptions {
  /** How far the subscribers that count trail the head, in events (see Subscriptions.backlog). */
  backlog(): number;
  readonly holdAbove?: number;
  /** Seven eighths of `holdAbove` unless given. */
  readonly resumeAt?: number;
  /** A caller waits at most this long and then goes ahead: the gate slows a load, it never stops one. */
  readonly maxWaitMs?: number;
  /** Beyond this many callers waiting, the next is refused as overloaded (503 with Retry-After). */
  readonly maxWaiting?: number;
  /** How often the backlog is looked at again while callers wait. */
  readonly recheckMs?: number;
  /** Told of each caller that waited, when it goes, with how long it waited (metrics). */
  onWaited?(ms: number): void;
}

export interface FlowControl {
  /**
   * Resolves when the caller may append `weight` events from `source`; rejects with OverloadedError
   * when too many already wait.
   */
  admit(source?: string, weight?: number): Promise<void>;
  /** Callers waiting now. */
  readonly waiting: number;
  /** Lets every waiting caller go and holds none from now on (the server is stopping). */
  close(): void;
}

interface Waiter {
  readonly since: number;
  go(): void;
}

// The log's in-memory tail keeps 32,768 events: holding at half of it keeps the subscribers reading
// there. At a few thousand items a second that is about a second of work behind the head.
const HOLD_ABOVE = 16_384;

export function flowControl(options: FlowControlOptions): FlowControl {
  const holdAbove = options.holdAbove ?? HOLD_ABOVE;
  // Measured with batches of 100 (bench, batch and segment-batch): resuming at half the limit held
  // requests twice as long (p99 0.8-1.2 s against 0.5-0.8) for no more events a second.
  const resumeAt = options.resumeAt ?? Math.floor((holdAbove * 7) / 8);
  const maxWaitMs = options.maxWaitMs ?? 1000;
  const maxWaiting = options.maxWaiting ?? 10_000;
  const recheckMs = options.recheckMs ?? 5;
  const shares = recentShares();
  let holding = false;
  let closed = false;
  let waiters: Waiter[] = [];
  let timer: NodeJS.Timeout | undefined;

  const release = (keep: (waiter: Waiter) => boolean) => {
    const staying: Waiter[] = [];
    const now = performance.now();
    for (const waiter of waiters) {
      if (keep(waiter)) staying.push(waiter);
      else {
        waiter.go();
        options.onWaited?.(now - waiter.since);
      }
    }
    waiters = staying;
    if (waiters.length === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  /** Whether callers must wait now; lets the waiting ones go when not. */
  const hold = (): boolean => {
    if (closed) return false;
    const backlog = options.backlog();
    // Hysteresis: released callers arrive together, and one event over the mark must not hold them all again.
    holding = holding ? backlog > resumeAt : backlog > holdAbove;
    if (!holding && waiters.length > 0) release(() => false);
    return holding;
  };

  const recheck = () => {
    if (hold()) {
      const now = performance.now();
      release((waiter) => now - waiter.since < maxWaitMs);
    }
  };

  return {
    admit(source, weight = 1) {
      if (!hold()) {
        shares.add(source ?? '', weight);
        return Promise.resolve();
      }
      // Appends that name no source are held alike, as before sources were told apart.
      if (source !== undefined && shares.isLight(source)) {
        shares.add(source, weight, true);
        return Promise.resolve();
      }
      if (waiters.length >= maxWaiting) return Promise.reject(new OverloadedError(waiters.length));
      // Counted as it arrives: a flood held for long must not fade from the shares while it waits.
      shares.add(source ?? '', weight);
      return new Promise<void>((resolve) => {
        waiters.push({ since: performance.now(), go: resolve });
        if (timer === undefined) {
          timer = setInterval(recheck, recheckMs);
          timer.unref();
        }
      });
    },
    get waiting() {
      return waiters.length;
    },
    close() {
      closed = true;
      release(() => false);
    },
  };
}

/**
 * The store as data from outside reaches it: each plain append waits for flow control first. Only
 * requests append outside a transaction; subscribers and background work use transactions, which
 * never wait here (they are what brings the backlog down).
 */
export function admittingAppends(store: EventStore, admit: FlowControl['admit']): EventStore {
  return {
    ...store,
    async append(request) {
      await admit(request.source, request.events.length);
      return store.append(request);
    },
  };
}
