import { describe, expect, it } from 'vitest';
import { ValidationError } from './errors.js';
import { decodeCursor, decodeKeyParts, encodeCursor } from './pagination.js';

describe('cursors', () => {
  it('read back what was handed out', () => {
    expect(decodeCursor(encodeCursor('item-42'))).toBe('item-42');
    expect(decodeKeyParts(encodeCursor(JSON.stringify([3, '2026-01-01', 'r-1'])), ['integer', 'string', 'string'])).toEqual([
      3,
      '2026-01-01',
      'r-1',
    ]);
  });

  it('refuse a NUL, which no cursor holds and PostgreSQL refuses with a 500 in a comparison', () => {
    expect(() => decodeCursor(encodeCursor('a\0b'))).toThrow(ValidationError);
    expect(() => decodeCursor('AA')).toThrow(ValidationError);
    expect(() => decodeKeyParts(encodeCursor(JSON.stringify(['2026-01-01', 'r\u0000'])), ['string', 'string'])).toThrow(ValidationError);
  });
});
