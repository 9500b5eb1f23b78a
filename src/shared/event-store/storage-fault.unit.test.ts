import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../errors.js';
import { isStorageFault } from './storage-fault.js';

const failure = (code: string, message = 'failed') => Object.assign(new Error(message), { code });

describe('isStorageFault', () => {
  it('takes the database failing, whatever was asked of it, for a storage fault', () => {
    for (const code of ['SQLITE_FULL', 'SQLITE_BUSY', 'SQLITE_IOERR_WRITE', 'SQLITE_READONLY', '08006', '57P01', '53100', 'ECONNREFUSED']) {
      expect(isStorageFault(failure(code))).toBe(true);
    }
    expect(isStorageFault(new UnavailableError('storage.unavailable', 'down'))).toBe(true);
    expect(isStorageFault(new Error('Connection terminated unexpectedly'))).toBe(true);
  });

  it('takes a missing table, column or schema for a storage fault: no event or request is to blame', () => {
    expect(isStorageFault(failure('SQLITE_ERROR', 'no such table: statistics_items'))).toBe(true);
    expect(isStorageFault(failure('SQLITE_ERROR', 'no such column: position'))).toBe(true);
    expect(isStorageFault(failure('SQLITE_ERROR', 'table query_items has no column named status'))).toBe(true);
    for (const code of ['42P01', '42703', '3F000']) expect(isStorageFault(failure(code))).toBe(true);
  });

  it('takes a transaction PostgreSQL ended to break a deadlock, or could not serialize, for a storage fault: run again, it goes through', () => {
    for (const code of ['40P01', '40001']) expect(isStorageFault(failure(code, 'deadlock detected'))).toBe(true);
  });

  it('leaves errors an event or request can cause to its caller', () => {
    expect(isStorageFault(failure('SQLITE_CONSTRAINT_UNIQUE'))).toBe(false);
    expect(isStorageFault(failure('SQLITE_ERROR', 'near "x": syntax error'))).toBe(false);
    expect(isStorageFault(failure('SQLITE_TOOBIG'))).toBe(false);
    expect(isStorageFault(failure('23505'))).toBe(false);
    expect(isStorageFault(failure('22P02'))).toBe(false);
    expect(isStorageFault(new TypeError('x is undefined'))).toBe(false);
  });
});
