import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { TimePeriod } from '../domain/buckets.js';
import type { BucketCounters, Counters } from '../domain/counters.js';
import type { ItemTally } from '../domain/item-tally.js';

/** The statistics' own tables as their writers see them, inside the transaction of their checkpoint. */
export interface StatisticsTables {
  tallies(itemIds: readonly string[]): Promise<Map<string, ItemTally>>;
  /** Holds these items' tallies until the transaction ends, against replicas counting the same item (see `lockKeys`). */
  lockTallies(itemIds: readonly string[]): Promise<void>;
  /** Every tally of an application. */
  applicationTallies(appId: string): Promise<ItemTally[]>;
  /** Holds other writers of these tables off until the transaction ends (where writers can overlap). */
  excludeWriters(): Promise<void>;
  /** Tallies of an application changed after a log position. */
  talliesChangedAfter(appId: string, position: number): Promise<ItemTally[]>;
  /** A page of an application's tallies in order of position, then item: those after `after`. */
  talliesPageAfter(appId: string, after: { position: number; itemId: string }, limit: number): Promise<ItemTally[]>;
  /** Forgets these items' tallies. */
  deleteTallies(itemIds: readonly string[]): Promise<void>;
  /** Replaces an application's buckets with these. */
  replaceBuckets(appId: string, buckets: readonly BucketCounters[]): Promise<void>;
  saveTallies(tallies: readonly ItemTally[]): Promise<void>;
  /** Adds each change to its bucket's counters, creating the bucket when it has none yet. */
  addToBuckets(changes: readonly BucketCounters[]): Promise<void>;
  /** Replaces everything an application has with the given tallies and buckets. */
  replaceApplication(appId: string, tallies: readonly ItemTally[], buckets: readonly BucketCounters[]): Promise<void>;
  /** Throws every tally and bucket away (a replay's reset), counting it in `resets`. */
  clear(): Promise<void>;
  /** How many times the tables were cleared: a refresh tells by it that a replay reset them meanwhile. */
  resets(): Promise<number>;
}

export type StatisticsTablesFor = (db: Kysely<object>) => StatisticsTables;

export interface BucketFilter {
  readonly appId: string;
  readonly period: TimePeriod;
  readonly eventType?: string;
  /** Inclusive: buckets starting at or after it. */
  readonly fromBucket?: string;
  /** Exclusive: buckets starting before it. */
  readonly before?: string;
}

export interface ApplicationTotals {
  readonly appId: string;
  readonly counters: Counters;
}

export interface EventTypeTotals {
  readonly totals: Counters;
  /** How many event types the application has items of. */
  readonly eventTypes: number;
  /** Types with the most items first (ties by name). */
  readonly busiest: ReadonlyArray<{ eventType: string; counters: Counters }>;
}

/** The read side: pre-aggregated rows only, never the event store. */
export interface StatisticsReads {
  /** Non-empty buckets in order of start, then of event type. */
  buckets(filter: BucketFilter, page: PageRequest): Promise<Page<BucketCounters>>;
  /** The application's counters over all time: across every event type, how many types, and the `limit` busiest. */
  eventTypeTotals(appId: string, limit: number): Promise<EventTypeTotals>;
  /** The application's buckets of a period from `fromBucket` on, each summed across event types, in order of start. */
  bucketTotalsFrom(appId: string, period: TimePeriod, fromBucket: string): Promise<Array<{ bucketStart: string; counters: Counters }>>;
  /** The rows of these event types' buckets of a period from `fromBucket` on, in order of start. */
  bucketsFrom(appId: string, period: TimePeriod, fromBucket: string, eventTypes: readonly string[]): Promise<BucketCounters[]>;
  applications(page: PageRequest): Promise<Page<ApplicationTotals>>;
}
