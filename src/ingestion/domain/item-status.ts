/**
 * Where an item stands in the pipeline, in the words of the query API: `ingested` when stored, then
 * `validated` or `invalid`, then `processed` or `failed`. A status only moves forward, so facts that
 * arrive twice or out of order leave the latest one in place.
 */
export const ITEM_STATUSES = ['ingested', 'validated', 'invalid', 'processed', 'failed'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

const RANK: Record<ItemStatus, number> = { ingested: 0, validated: 1, invalid: 2, processed: 2, failed: 2 };

/** The pipeline events that move an item's status, and where each moves it. */
export const STATUS_AFTER: Readonly<Record<string, ItemStatus>> = {
  DataValidated: 'validated',
  DataInvalid: 'invalid',
  DataProcessed: 'processed',
  DataProcessingFailed: 'failed',
};

/** The further of two statuses. */
export const laterStatus = (a: ItemStatus, b: ItemStatus): ItemStatus => (RANK[b] > RANK[a] ? b : a);

/** The statuses an item may leave for `status`. */
export const statusesBefore = (status: ItemStatus): ItemStatus[] => ITEM_STATUSES.filter((s) => RANK[s] < RANK[status]);
