import { ValidationError } from './errors.js';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export interface PageRequest {
  readonly limit: number;
  /** Opaque keyset cursor returned as `next_cursor` by the previous page. */
  readonly cursor?: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

export function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (key.length === 0 || encodeCursor(key) !== cursor) {
    throw new ValidationError('pagination.invalid-cursor', 'cursor is not one this API returned', [
      { path: 'cursor', message: 'invalid cursor' },
    ]);
  }
  return key;
}

/** Builds a page from `limit + 1` rows: the extra row only tells that another page exists. */
export function pageOf<T>(rows: T[], limit: number, keyOf: (row: T) => string): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}
