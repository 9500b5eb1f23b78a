import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { openSource, type SourceRecord } from './read-records.js';

const recordsOf = async (text: string, format: 'csv' | 'ndjson') => {
  const records: SourceRecord[] = [];
  for await (const record of openSource('-', format, Readable.from([Buffer.from(text)])).records) records.push(record);
  return records;
};

describe('reading CSV', () => {
  it('reads a quoted field that never closes in time linear in the file (each line re-counted every quote before)', async () => {
    const started = performance.now();
    const records = await recordsOf(`type,event\ntrack,"never closed\n${'x,y\n'.repeat(200_000)}`, 'csv');
    expect(records).toMatchObject([{ line: 2, error: 'an unterminated quoted field runs to the end of the file' }]);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('reads CRLF rows, and keeps a line break inside a quoted field as written (RFC 4180)', async () => {
    const records = await recordsOf(
      'type,event,properties.note\r\ntrack,A,"two\r\nlines"\r\ntrack,B,plain\r\ntrack,C,"cell\nbreak\r\nand row"\r\n',
      'csv',
    );
    expect(records.map((r) => r.record)).toEqual([
      { type: 'track', event: 'A', properties: { note: 'two\r\nlines' } },
      { type: 'track', event: 'B', properties: { note: 'plain' } },
      { type: 'track', event: 'C', properties: { note: 'cell\nbreak\r\nand row' } },
    ]);
  });

  it('takes a quote inside an unquoted cell as a character, so one stray quote swallows no rows after it', async () => {
    const records = await recordsOf('type,userId,event,properties.size\ntrack,q1,Ev1,12" pipe\ntrack,q1,Ev2,1\ntrack,q1,Ev3,1\n', 'csv');
    expect(records.map((r) => r.record)).toEqual([
      { type: 'track', userId: 'q1', event: 'Ev1', properties: { size: '12" pipe' } },
      { type: 'track', userId: 'q1', event: 'Ev2', properties: { size: 1 } },
      { type: 'track', userId: 'q1', event: 'Ev3', properties: { size: 1 } },
    ]);
  });

  it('keeps a quoted cell as text, so a long number can be sent whole, and an empty quoted cell as ""', async () => {
    const records = await recordsOf('type,properties.order,properties.note,properties.n\ntrack,"12345678901234567890","",7\n', 'csv');
    expect(records.map((r) => r.record)).toEqual([{ type: 'track', properties: { order: '12345678901234567890', note: '', n: 7 } }]);
  });

  it('keeps a number too large for JSON as text, which it would otherwise send as null', async () => {
    const records = await recordsOf('type,properties.big,properties.small\ntrack,1e400,-1e400\n', 'csv');
    expect(records.map((r) => r.record)).toEqual([{ type: 'track', properties: { big: '1e400', small: '-1e400' } }]);
  });

  it('sets a __proto__ column as a key of the record, which the server refuses, never on every object', async () => {
    const records = await recordsOf('type,userId,__proto__.messageId\ntrack,pp1,pp-1\ntrack,pp1,\n', 'csv');
    expect(({} as Record<string, unknown>).messageId).toBeUndefined();
    expect(Object.hasOwn(records[0]?.record ?? {}, '__proto__')).toBe(true);
    expect(records[1]?.record).toEqual({ type: 'track', userId: 'pp1' });
    expect((records[1]?.record as Record<string, unknown>).messageId).toBeUndefined();
  });

  it('skips a byte order mark before the first line, in CSV and in NDJSON', async () => {
    expect((await recordsOf('\uFEFFtype,userId\ntrack,u\n', 'csv')).map((r) => r.record)).toEqual([{ type: 'track', userId: 'u' }]);
    expect((await recordsOf('\uFEFF{"type":"track"}\n', 'ndjson')).map((r) => r.record)).toEqual([{ type: 'track' }]);
  });

  it('tells gzip on stdin when the pipe delivers its first byte alone', async () => {
    const gzipped = gzipSync('{"type":"track","event":"slow pipe"}\n');
    const records: SourceRecord[] = [];
    const chunks = [gzipped.subarray(0, 1), gzipped.subarray(1, 2), gzipped.subarray(2)];
    for await (const record of openSource('-', 'ndjson', Readable.from(chunks)).records) records.push(record);
    expect(records.map((r) => r.record)).toEqual([{ type: 'track', event: 'slow pipe' }]);
    const empty: SourceRecord[] = [];
    for await (const record of openSource('-', 'ndjson', Readable.from([Buffer.from('x')])).records) empty.push(record);
    expect(empty).toMatchObject([{ line: 1 }]);
  });

  it('reads characters split across chunks', async () => {
    const bytes = Buffer.from('{"name":"café ☕"}\n');
    const chunks = [...bytes].map((byte) => Buffer.from([byte]));
    const records: SourceRecord[] = [];
    for await (const record of openSource('-', 'ndjson', Readable.from(chunks)).records) records.push(record);
    expect(records.map((r) => r.record)).toEqual([{ name: 'café ☕' }]);
  });
});
