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

/** The page a list route's `limit` and `cursor` parameters ask for. */
export const pageRequestOf = (query: { readonly limit?: number; readonly cursor?: string }): PageRequest => ({
  limit: query.limit ?? DEFAULT_PAGE_SIZE,
  ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
});

const invalidCursor = () =>
  new ValidationError('pagination.invalid-cursor', 'cursor is not one this API returned', [{ path: 'cursor', message: 'invalid cursor' }]);

export function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  // No key we hand out holds a NUL, and PostgreSQL refuses one in a comparison.
  if (key.length === 0 || key.includes('\0') || encodeCursor(key) !== cursor) throw invalidCursor();
  return key;
}

/** The values of a keyset of several columns, in sort order. */
export type KeyParts = readonly (string | number)[];
type PartType = 'string' | 'integer';
type PartsOf<T extends readonly PartType[]> = { -readonly [K in keyof T]: T[K] extends 'integer' ? number : string };
const isPart = (part: unknown, type: PartType) =>
  type === 'integer' ? Number.isSafeInteger(part) : typeof part === 'string' && !part.includes('\0');

/** Reads a cursor `pageOf` made from key parts, checking each part's type so SQL never sees a stray value. */
export function decodeKeyParts<const T extends readonly PartType[]>(cursor: string, types: T): PartsOf<T> {
  let parts: unknown;
  try {
    parts = JSON.parse(decodeCursor(cursor));
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw invalidCursor();
  }
  if (!Array.isArray(parts) || parts.length !== types.length || !types.every((type, i) => isPart(parts[i], type))) throw invalidCursor();
  return parts as PartsOf<T>;
}

/**
 * Builds a page from `limit + 1` rows: the extra row only tells that another page exists. A key of
 * several parts is read back with `decodeKeyParts`.
 */
export function pageOf<T>(rows: T[], limit: number, keyOf: (row: T) => string | KeyParts): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  if (rows.length <= limit || last === undefined) return { items, nextCursor: null };
  const key = keyOf(last);
  return { items, nextCursor: encodeCursor(typeof key === 'string' ? key : JSON.stringify(key)) };
}

/**
 * What a page of stored items may weigh, counted in the bytes of their stored JSON: `limit` alone
 * let one GET of 1,000 items of 900 KB build a 450 MB answer (13 s of the HTTP thread; past 512 MB
 * V8 cannot hold the text and the request failed). A page stops before the item that would pass it;
 * the first item always goes, so every page moves on.
 */
export const MAX_PAGE_BYTES = 4 * 1024 * 1024;

/**
 * The same for lists of items, whose JSON the HTTP thread parses and writes out again: a page of 4 MB of
 * items of thousands of keys took it 180 ms, and eight such requests at once held a health check for
 * 1.7 s. Each page is parsed a slice of the thread at a time; what is left whole is writing the answer.
 */
export const MAX_ITEM_PAGE_BYTES = 1024 * 1024;

/** The first rows, up to `limit`, whose `bytes` add up to at most `maxBytes` (the first row whatever its size). */
export function rowsWithin<T extends { readonly bytes: number | string | null }>(rows: readonly T[], limit: number, maxBytes: number): T[] {
  const taken: T[] = [];
  let total = 0;
  for (const row of rows.slice(0, limit)) {
    // PostgreSQL's sums arrive as text.
    const bytes = Number(row.bytes ?? 0);
    if (taken.length > 0 && total + bytes > maxBytes) break;
    taken.push(row);
    total += bytes;
  }
  return taken;
}
