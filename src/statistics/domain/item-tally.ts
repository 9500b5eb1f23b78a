import type { DataIngested, DataInvalid, DataProcessed, DataProcessingFailed, DataValidated } from '../../shared/contracts/data-events.js';
import { bucketStarts, TIME_PERIODS } from './buckets.js';
import { isZero, NO_EVENTS, type BucketCounters, type Counters } from './counters.js';

/** The data events that move an item's counters. */
export type StatisticsEvent = DataIngested | DataValidated | DataInvalid | DataProcessed | DataProcessingFailed;

export const STATISTICS_EVENT_TYPES: readonly StatisticsEvent['type'][] = [
  'DataIngested',
  'DataValidated',
  'DataInvalid',
  'DataProcessed',
  'DataProcessingFailed',
];

export type ItemState = 'pending' | 'processed' | 'failed';

/**
 * What the statistics remember of one item: enough to know where it is counted and in which
 * column, so that a repeated event, or one whose state was already reached, changes nothing.
 */
export interface ItemTally {
  readonly itemId: string;
  /** The application is the item's partner_id. */
  readonly appId: string;
  readonly eventType: string;
  /**
   * Null while the item's receipt is unknown: across services an outcome may arrive before the
   * DataIngested it follows. Such an item is remembered but counted only once its receipt arrives.
   */
  readonly receivedAt: string | null;
  readonly state: ItemState;
  /** Log position of the last event that changed this tally: lets a refresh tell newer work from its own. */
  readonly position: number;
}

/** Folds one event into an item's tally; returns the same object when the event changes nothing. */
export function evolveItemTally(tally: ItemTally | undefined, event: StatisticsEvent, position: number): ItemTally {
  const base: ItemTally = tally ?? {
    itemId: event.data.item_id,
    appId: event.data.partner_id,
    eventType: event.data.event_type,
    receivedAt: null,
    state: 'pending',
    position,
  };
  const next = (changes: Partial<Pick<ItemTally, 'receivedAt' | 'state'>>): ItemTally => {
    const receivedAt = changes.receivedAt ?? base.receivedAt;
    const state = changes.state ?? base.state;
    if (tally && receivedAt === tally.receivedAt && state === tally.state) return tally;
    return { ...base, receivedAt, state, position: Math.max(base.position, position) };
  };
  // An outcome is final: the first one reached stays, whatever arrives after it.
  const settle = (state: ItemState) => next({ state: base.state === 'pending' ? state : base.state });

  switch (event.type) {
    case 'DataIngested':
    case 'DataValidated':
      return next({ receivedAt: base.receivedAt ?? event.data.received_at });
    case 'DataInvalid':
    case 'DataProcessingFailed':
      return settle('failed');
    case 'DataProcessed':
      return settle('processed');
  }
}

/**
 * Combines a tally rebuilt from the log up to some position with one the subscriber wrote after
 * it: the receipt whichever saw it, and the outcome that came first.
 */
export function mergeNewerTally(rebuilt: ItemTally | undefined, newer: ItemTally): ItemTally {
  if (!rebuilt) return newer;
  return {
    ...rebuilt,
    receivedAt: rebuilt.receivedAt ?? newer.receivedAt,
    state: rebuilt.state === 'pending' ? newer.state : rebuilt.state,
    position: Math.max(rebuilt.position, newer.position),
  };
}

/**
 * Accumulates, in memory, what items add to (or take from) their buckets, so that a whole batch
 * ends as one change per touched bucket. An item counts once in each period's bucket.
 */
export function bucketChanges() {
  type Tally = { -readonly [K in keyof Counters]: number };
  const changes = new Map<string, Omit<BucketCounters, 'counters'> & { counters: Tally }>();
  return {
    count(tally: ItemTally | undefined, sign: 1 | -1 = 1): void {
      if (!tally || tally.receivedAt === null) return;
      const starts = bucketStarts(tally.receivedAt);
      // Each part's length before it keeps the key unambiguous whatever the names hold.
      const owner = `${tally.appId.length}:${tally.appId}${tally.eventType.length}:${tally.eventType}`;
      for (const period of TIME_PERIODS) {
        const key = `${owner}${period}${starts[period]}`;
        let bucket = changes.get(key);
        if (!bucket) {
          bucket = { appId: tally.appId, eventType: tally.eventType, period, bucketStart: starts[period], counters: { ...NO_EVENTS } };
          changes.set(key, bucket);
        }
        // Summed in place: these records are this accumulator's own until list() hands them out.
        const { counters } = bucket;
        counters.totalEvents += sign;
        if (tally.state === 'processed') counters.processedEvents += sign;
        else if (tally.state === 'failed') counters.failedEvents += sign;
        else counters.pendingEvents += sign;
      }
    },
    /** The buckets whose counters change, leaving out those whose changes cancelled out. */
    list(): BucketCounters[] {
      return [...changes.values()].filter((bucket) => !isZero(bucket.counters));
    },
  };
}
