import { NotFoundError, ValidationError } from '../../shared/errors.js';
import { MAX_ITEM_PAGE_BYTES, type Page, type PageRequest } from '../../shared/pagination.js';
import { foldHistory, type HistoryEntry, type ItemView } from '../domain/item-view.js';
import { instantBound } from '../../shared/instant-bound.js';
import type { ItemFilter, ItemHistory, ItemViews } from './ports.js';

export interface ItemWithHistory {
  readonly view: ItemView;
  readonly history: HistoryEntry[];
}

/**
 * The current view, or with `asOf` the item rebuilt from its events as it stood then. `aheadOfView`
 * says the history may hold an item the view does not yet (see getView).
 */
export const getItem =
  (views: ItemViews, history: ItemHistory, aheadOfView = false) =>
  async (id: string, asOf?: string): Promise<ItemWithHistory> => {
    if (asOf !== undefined) {
      const at = new Date(asOf);
      if (Number.isNaN(at.getTime()))
        throw new ValidationError('query.invalid-as-of', 'as_of must be an ISO-8601 date-time', [
          { path: 'as_of', message: 'invalid date-time' },
        ]);
      const bound = instantBound(asOf, 'down');
      const entries = (await history.of(id)).filter((entry) => happenedBy(entry, bound));
      const view = foldHistory(entries);
      if (!view) throw new NotFoundError('query.item-not-found', `item ${id} did not exist at ${bound}`);
      return { view, history: entries };
    }
    const view = await views.get(id);
    if (view) return { view, history: await history.of(id) };
    if (!aheadOfView) throw missing(id);
    const entries = await history.of(id);
    return { view: foldedOrMissing(id, entries), history: entries };
  };

/**
 * Whether an event of the item's history had happened at `at`. The item's arrival counts from its
 * `received_at`, which the API shows and which comes a few milliseconds before its events commit:
 * asked "as of" that time, the item exists.
 */
function happenedBy(entry: HistoryEntry, at: string): boolean {
  if (entry.recordedAt <= at) return true;
  const receivedAt = (entry.data as { received_at?: unknown }).received_at;
  return (entry.type === 'DataReceived' || entry.type === 'DataIngested') && typeof receivedAt === 'string' && receivedAt <= at;
}

/**
 * The current view alone, for reads that do not show the history. An item acknowledged a moment ago
 * may not be in the view yet: where the history is ahead of the view (`aheadOfView`: the log a single
 * process shares), it is then folded from its events, as the view will hold it. A distributed query
 * role's own copy is written with its view, so there a miss is a miss.
 */
export const getView =
  (views: ItemViews, history: ItemHistory, aheadOfView = false) =>
  async (id: string): Promise<ItemView> => {
    const view = await views.get(id);
    if (view) return view;
    if (!aheadOfView) throw missing(id);
    return foldedOrMissing(id, await history.of(id));
  };

const missing = (id: string) => new NotFoundError('query.item-not-found', `no item with id ${id}`);

function foldedOrMissing(id: string, entries: readonly HistoryEntry[]): ItemView {
  const view = foldHistory(entries);
  if (!view) throw missing(id);
  return view;
}

export const listItems =
  (views: ItemViews) =>
  (filter: ItemFilter, page: PageRequest): Promise<Page<ItemView>> =>
    views.list(filter, page);

/** A page of items, each with its history (the query API's lists show what `GET /query/{id}` shows). */
export const listItemsWithHistory =
  (views: ItemViews, history: ItemHistory) =>
  async (filter: ItemFilter, page: PageRequest): Promise<Page<ItemWithHistory>> => {
    // Each item's history repeats its payload a few times (received, ingested, validated, processed).
    const items = await views.list(filter, page, MAX_ITEM_PAGE_BYTES / 4);
    const histories = await history.ofMany(items.items.map((view) => view.id));
    return { items: items.items.map((view) => ({ view, history: histories.get(view.id) ?? [] })), nextCursor: items.nextCursor };
  };
