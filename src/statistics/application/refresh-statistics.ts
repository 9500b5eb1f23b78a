import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Clock } from '../../shared/clock.js';
import { ConflictError } from '../../shared/errors.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { sumCounters, type Counters } from '../domain/counters.js';
import {
  bucketChanges,
  evolveItemTally,
  mergeNewerTally,
  STATISTICS_EVENT_TYPES,
  type ItemTally,
  type StatisticsEvent,
} from '../domain/item-tally.js';
import type { StatisticsTablesFor } from './ports.js';

/** The part of the event store a refresh needs: the log, and a transaction for the tables. */
export type EventLog = Pick<EventStore, 'readAll' | 'headPosition' | 'transaction'>;

export interface RefreshStatisticsDeps {
  readonly log: EventLog;
  readonly tables: StatisticsTablesFor;
  readonly clock: Clock;
  readonly batchSize?: number;
}

export interface RefreshResult {
  readonly appId: string;
  /**
   * The log was read up to this position; changes the subscriber made after it were kept. Null where
   * no log was read (a distributed statistics role recounts its own tallies, whose events came from
   * several services' logs, each numbered its own way).
   */
  readonly upToPosition: number | null;
  readonly items: number;
  readonly totals: Counters;
  readonly refreshedAt: string;
}

/**
 * Rebuilds one application's statistics from the event store: reads the whole log up to its head in
 * batches, folds that application's items in memory, and puts right what the tables hold. The
 * subscriber keeps running meanwhile, so tallies it changed after the position read are merged in
 * rather than overwritten; an event it delivers again later finds its state reached and changes nothing.
 *
 * Reading the log and comparing the stored tallies with the rebuilt ones happen in pieces, with other
 * writers let in between: only the final transaction holds them off, and it writes the tallies that
 * differ and the application's buckets, not every item again.
 */
export const refreshStatistics = ({ log, tables, clock, batchSize = 250 }: RefreshStatisticsDeps) => {
  // One at a time: each reads the whole log, and several at once multiplied what other writers waited.
  let running: string | undefined;
  return async (appId: string): Promise<RefreshResult> => {
    if (running !== undefined) {
      throw new ConflictError(
        'statistics.refresh-running',
        `a refresh of application ${running} is reading the event store: try again once it has answered`,
      );
    }
    running = appId;
    try {
      return await refreshOne(appId);
    } finally {
      running = undefined;
    }
  };

  async function refreshOne(appId: string): Promise<RefreshResult> {
    const resets = await log.transaction((tx) => tables(tx.db).resets());
    const head = await log.headPosition();
    const tallies = new Map<string, ItemTally>();
    let position = 0;
    while (position < head) {
      const batch = await log.readAll({ after: position, limit: batchSize });
      if (batch.length === 0) break;
      for (const recorded of batch) {
        if (!(STATISTICS_EVENT_TYPES as readonly string[]).includes(recorded.type)) continue;
        const event = { type: recorded.type, data: recorded.data } as StatisticsEvent;
        if (event.data.partner_id !== appId) continue;
        tallies.set(event.data.item_id, evolveItemTally(tallies.get(event.data.item_id), event, recorded.position));
      }
      position = batch.at(-1)?.position ?? head;
      await nextTurn();
    }
    const { differing, stale } = await storedDifferences(log, tables, appId, tallies, position, batchSize);
    const buckets = bucketChanges();
    for (const tally of tallies.values()) buckets.count(tally);

    return log.transaction(async (tx) => {
      const store = tables(tx.db);
      // On PostgreSQL a subscriber's batch may commit beside this transaction: one committed after the
      // read below would have its increments deleted by the replacement of the buckets, for good.
      await store.excludeWriters();
      // A replay reset the tables after the comparison began: the items found equal then have no tally
      // now, and the replaying subscriber would count them again on top of the buckets written here.
      if ((await store.resets()) !== resets) {
        throw new ConflictError(
          'statistics.refresh-interrupted',
          'a replay of the statistics began during this refresh and rebuilds them from the log: nothing was changed',
        );
      }
      const newer = await store.talliesChangedAfter(appId, position);
      for (const tally of newer) {
        const merged = mergeNewerTally(tallies.get(tally.itemId), tally);
        buckets.count(tallies.get(tally.itemId), -1);
        buckets.count(merged);
        tallies.set(tally.itemId, merged);
      }
      const changed = new Set([...differing, ...newer.map((tally) => tally.itemId)]);
      // Written anew rather than upserted: the subscriber's upsert never changes an item's type or application.
      await store.deleteTallies([...changed, ...[...stale].filter((itemId) => !tallies.has(itemId))]);
      await store.saveTallies([...changed].flatMap((itemId) => tallies.get(itemId) ?? []));
      const rows = buckets.list();
      await store.replaceBuckets(appId, rows);
      return {
        appId,
        upToPosition: position,
        items: tallies.size,
        // Every counted item is in exactly one weekly bucket: their sum is the application's total.
        totals: sumCounters(rows.filter((row) => row.period === 'weekly').map((row) => row.counters)),
        refreshedAt: clock.now().toISOString(),
      };
    });
  }
};

/**
 * The items whose stored tally differs from the rebuilt one (or is missing), and the stored tallies of
 * items the log does not have, read a page at a time. Tallies the subscriber changed after `upTo` are
 * left to the final transaction, which merges them; below it the subscriber only reaches the states
 * rebuilt here, so an item found equal stays equal.
 */
async function storedDifferences(
  log: EventLog,
  tables: StatisticsTablesFor,
  appId: string,
  rebuilt: ReadonlyMap<string, ItemTally>,
  upTo: number,
  pageSize: number,
): Promise<{ differing: Set<string>; stale: Set<string> }> {
  const differing = new Set(rebuilt.keys());
  const stale = new Set<string>();
  for (let after = { position: -1, itemId: '' }; ;) {
    const page = await log.transaction((tx) => tables(tx.db).talliesPageAfter(appId, after, pageSize));
    for (const stored of page) {
      if (stored.position > upTo) continue;
      const expected = rebuilt.get(stored.itemId);
      if (!expected) stale.add(stored.itemId);
      else if (sameTally(stored, expected)) differing.delete(stored.itemId);
    }
    const last = page.at(-1);
    if (!last || page.length < pageSize || last.position > upTo) return { differing, stale };
    after = { position: last.position, itemId: last.itemId };
    await nextTurn();
  }
}

const sameTally = (a: ItemTally, b: ItemTally) =>
  a.appId === b.appId && a.eventType === b.eventType && a.receivedAt === b.receivedAt && a.state === b.state && a.position === b.position;
