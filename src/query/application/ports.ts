import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { HistoryEntry, ItemView, PipelineStatus } from '../domain/item-view.js';
import type { PayloadCondition } from '../domain/payload-filter.js';

export interface ItemFilter {
  readonly partnerId?: string;
  readonly status?: PipelineStatus;
  readonly eventType?: string;
  /** Inclusive lower bound of received_at (ISO-8601). */
  readonly from?: string;
  /** Exclusive upper bound of received_at (ISO-8601). */
  readonly to?: string;
  /** Equality on payload fields, all of them. */
  readonly payload?: readonly PayloadCondition[];
}

/** The materialized view behind /query. */
export interface ItemViews {
  get(id: string): Promise<ItemView | undefined>;
  getMany(ids: readonly string[]): Promise<Map<string, ItemView>>;
  /** Holds these items until the transaction ends, against replicas folding the same item (see `lockKeys`). */
  lockForUpdate(ids: readonly string[]): Promise<void>;
  /**
   * A page of items in the order the view first wrote them (decision 0043). It holds up to `page.limit` items whose stored JSON adds up to at
   * most `maxBytes` (the first item whatever its size); a page filtered on the payload may also stop
   * early, even empty, where it stopped looking. `nextCursor` is null only at the end.
   */
  list(filter: ItemFilter, page: PageRequest, maxBytes?: number): Promise<Page<ItemView>>;
  save(views: readonly ItemView[]): Promise<void>;
  clear(): Promise<void>;
}

/** The events of an item's stream, oldest first. */
export interface ItemHistory {
  of(itemId: string): Promise<HistoryEntry[]>;
  /** The histories of a page of items, read together. */
  ofMany(itemIds: readonly string[]): Promise<Map<string, HistoryEntry[]>>;
}

export type ItemViewsFor = (db: Kysely<object>) => ItemViews;
