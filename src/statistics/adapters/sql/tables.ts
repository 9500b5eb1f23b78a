import type { Kysely } from 'kysely';
import type { TimePeriod } from '../../domain/buckets.js';
import type { BucketCounters } from '../../domain/counters.js';
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

export type Tables = { statistics_buckets: BucketRow; statistics_items: ItemRow };

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
