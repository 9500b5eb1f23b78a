import { NotFoundError } from '../../shared/errors.js';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { IngestedItemsView, ItemWithStatus } from './ports.js';

export interface GetDataById {
  readonly id: string;
}
export interface GetAllData {
  readonly page: PageRequest;
}
export interface GetDataByPartnerId {
  readonly partnerId: string;
  readonly page: PageRequest;
}

export const getDataById =
  (view: IngestedItemsView) =>
  async ({ id }: GetDataById): Promise<ItemWithStatus> => {
    const item = await view.byId(id);
    if (!item) throw new NotFoundError('ingestion.item-not-found', `no item with id ${id}`);
    return item;
  };

export const getAllData =
  (view: IngestedItemsView) =>
  ({ page }: GetAllData): Promise<Page<ItemWithStatus>> =>
    view.list({}, page);

export const getDataByPartnerId =
  (view: IngestedItemsView) =>
  ({ partnerId, page }: GetDataByPartnerId): Promise<Page<ItemWithStatus>> =>
    view.list({ partnerId }, page);
