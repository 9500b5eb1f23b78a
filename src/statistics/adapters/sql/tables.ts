import type { Kysely } from 'kysely';
import type { TimePeriod } from '../../domain/buckets.js';
import type { BucketCounters, Counters } from '../../domain/counters.js';
import type { BucketTotals, TypeTotals } from '../../domain/roll-ups.js';
import type { ItemState, ItemTally } from '../../domain/item-tally.js';

export interface BucketRow {
  app_id: string;
  period: string;
  bucket_start: string;
  event_type: string;
  total_events: number;
  processed_events: number;
  failed_events: number;
  pending_events: number;
}

export interface ItemRow {
  item_id: string;
  app_id: string;
  event_type: string;
  received_at: string | null;
  state: string;
  position: number | string;
}

interface CounterColumns {
  total_events: number | string;
  processed_events: number | string;
  failed_events: number | string;
  pending_events: number | string;
}

export interface TypeTotalsRow extends CounterColumns {
  app_id: string;
  event_type: string;
}

export interface BucketTotalsRow extends CounterColumns {
  app_id: string;
  period: string;
  bucket_start: string;
}

export type Tables = {
  statistics_buckets: BucketRow;
  statistics_items: ItemRow;
  statistics_type_totals: TypeTotalsRow;
  statistics_bucket_totals: BucketTotalsRow;
  statistics_resets: { id: number; resets: number | string };
};

export const tables = (db: Kysely<object>) => db.withTables<Tables>();

// PostgreSQL returns bigint and SUM() results as strings.
const count = (value: number | string | bigint | null) => Number(value ?? 0);

export const toBucketRow = (bucket: BucketCounters): BucketRow => ({
  app_id: bucket.appId,
  period: bucket.period,
  bucket_start: bucket.bucketStart,
  event_type: bucket.eventType,
  total_events: bucket.counters.totalEvents,
  processed_events: bucket.counters.processedEvents,
  failed_events: bucket.counters.failedEvents,
  pending_events: bucket.counters.pendingEvents,
});

const counterColumns = (counters: Counters): CounterColumns => ({
  total_events: counters.totalEvents,
  processed_events: counters.processedEvents,
  failed_events: counters.failedEvents,
  pending_events: counters.pendingEvents,
});

export const toTypeTotalsRow = (type: TypeTotals): TypeTotalsRow => ({
  app_id: type.appId,
  event_type: type.eventType,
  ...counterColumns(type.counters),
});

export const toBucketTotalsRow = (total: BucketTotals): BucketTotalsRow => ({
  app_id: total.appId,
  period: total.period,
  bucket_start: total.bucketStart,
  ...counterColumns(total.counters),
});

export const toCounters = (row: {
  total_events: number | string | bigint | null;
  processed_events: number | string | bigint | null;
  failed_events: number | string | bigint | null;
  pending_events: number | string | bigint | null;
}) => ({
  totalEvents: count(row.total_events),
  processedEvents: count(row.processed_events),
  failedEvents: count(row.failed_events),
  pendingEvents: count(row.pending_events),
});

export const toBucket = (row: BucketRow): BucketCounters => ({
  appId: row.app_id,
  period: row.period as TimePeriod,
  bucketStart: row.bucket_start,
  eventType: row.event_type,
  counters: toCounters(row),
});

export const toItemRow = (tally: ItemTally): ItemRow => ({
  item_id: tally.itemId,
  app_id: tally.appId,
  event_type: tally.eventType,
  received_at: tally.receivedAt,
  state: tally.state,
  position: tally.position,
});

export const toTally = (row: ItemRow): ItemTally => ({
  itemId: row.item_id,
  appId: row.app_id,
  eventType: row.event_type,
  receivedAt: row.received_at,
  state: row.state as ItemState,
  position: Number(row.position),
});
