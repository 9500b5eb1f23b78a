import { Readable } from 'node:stream';
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

  it('keeps CRLF rows and quoted fields across lines as before', async () => {
    const records = await recordsOf('type,event,properties.note\r\ntrack,A,"two\r\nlines"\r\ntrack,B,plain\r\n', 'csv');
    expect(records.map((r) => r.record)).toEqual([
      { type: 'track', event: 'A', properties: { note: 'two\nlines' } },
      { type: 'track', event: 'B', properties: { note: 'plain' } },
    ]);
  });

  it('reads characters split across chunks', async () => {
    const bytes = Buffer.from('{"name":"café ☕"}\n');
    const chunks = [...bytes].map((byte) => Buffer.from([byte]));
    const records: SourceRecord[] = [];
    for await (const record of openSource('-', 'ndjson', Readable.from(chunks)).records) records.push(record);
    expect(records.map((r) => r.record)).toEqual([{ name: 'café ☕' }]);
  });
});
