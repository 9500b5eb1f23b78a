import type { Page, PageRequest } from '../../shared/pagination.js';
import type { IngestedItem } from '../domain/ingested-data.js';

/** The ingestion context's own view of its items, kept in step with the log by an inline projection. */
export interface IngestedItemsView {
  byId(id: string): Promise<IngestedItem | undefined>;
  list(filter: { readonly partnerId?: string }, page: PageRequest): Promise<Page<IngestedItem>>;
}
