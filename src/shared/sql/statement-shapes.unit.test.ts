import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { keyPieces, MAX_ROWS, rowPieces } from './statement-shapes.js';

const sqlite = new Kysely<object>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
// Never connects: the pool is only asked for a connection when a query runs.
const postgres = new Kysely<object>({ dialect: new PostgresDialect({ pool: {} as never }) });
afterAll(() => sqlite.destroy());

const numbers = (n: number) => Array.from({ length: n }, (_, i) => i);
const sizes = (pieces: Iterable<unknown[]>) => [...pieces].map((piece) => piece.length);

describe('rowPieces', () => {
  it('keeps a small batch whole and cuts a larger one into power-of-two pieces on SQLite, in order, each row once', () => {
    expect(sizes(rowPieces(sqlite, numbers(31)))).toEqual([31]);
    expect(sizes(rowPieces(sqlite, numbers(100)))).toEqual([64, 32, 4]);
    expect([...rowPieces(sqlite, numbers(100))].flat()).toEqual(numbers(100));
    expect(sizes(rowPieces(sqlite, numbers(MAX_ROWS + 40)))).toEqual([MAX_ROWS, 32, 8]);
    expect(sizes(rowPieces(sqlite, numbers(300), 128))).toEqual([128, 128, 32, 12]);
    expect(sizes(rowPieces(sqlite, []))).toEqual([]);
  });

  it('keeps about forty texts per statement, whatever the batch sizes', () => {
    const seen = new Set<number>();
    for (let n = 1; n <= 2000; n++) for (const size of sizes(rowPieces(sqlite, numbers(n)))) seen.add(size);
    expect(seen.size).toBe(31 + 5);
    expect([...seen].filter((size) => size >= 32).sort((a, b) => a - b)).toEqual([32, 64, 128, 256, 512]);
  });

  it('leaves a PostgreSQL batch whole up to the bound', () => {
    expect(sizes(rowPieces(postgres, numbers(37)))).toEqual([37]);
    expect(sizes(rowPieces(postgres, numbers(MAX_ROWS + 3)))).toEqual([MAX_ROWS, 3]);
  });
});

describe('keyPieces', () => {
  it('pads each SQLite piece to a power of two with its last key', () => {
    expect([...keyPieces(sqlite, ['a', 'b', 'c'])]).toEqual([['a', 'b', 'c', 'c']]);
    expect([...keyPieces(sqlite, ['a'])]).toEqual([['a']]);
    expect(sizes(keyPieces(sqlite, numbers(MAX_ROWS + 5)))).toEqual([MAX_ROWS, 8]);
    expect(new Set([...keyPieces(sqlite, numbers(MAX_ROWS + 5))].flat())).toEqual(new Set(numbers(MAX_ROWS + 5)));
    expect(sizes(keyPieces(sqlite, []))).toEqual([]);
  });

  it('does not pad on PostgreSQL', () => {
    expect([...keyPieces(postgres, ['a', 'b', 'c'])]).toEqual([['a', 'b', 'c']]);
  });
});
