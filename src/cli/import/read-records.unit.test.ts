import { Readable } from 'node:stream';
import { constants, gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CliError } from '../cli-error.js';
import { MAX_LINE_BYTES, openSource, type SourceRecord } from './read-records.js';

const recordsOf = async (text: string | Buffer, format: 'csv' | 'ndjson') => {
  const records: SourceRecord[] = [];
  for await (const record of openSource('-', format, Readable.from([Buffer.from(text)])).records) records.push(record);
  return records;
};

describe('reading CSV', () => {
  it('fails on a quoted field that never closes, naming its line, in time linear in the file (each line re-counted every quote before)', async () => {
    const started = performance.now();
    await expect(recordsOf(`type,event\ntrack,"never closed\n${'x,y\n'.repeat(200_000)}`, 'csv')).rejects.toThrow(
      'cannot read stdin: the quoted field opened on line 2 never closes (no closing " before the end of the file): ' +
        'close it and run the same command again, which stores nothing twice',
    );
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('fails on a quoted field still open after 8 MB of rows, rather than reject them all as one row and go on', async () => {
    const row = `track,${'e'.repeat(1000)}`;
    const rows = `${row}\n`.repeat(Math.ceil(MAX_LINE_BYTES / row.length) + 1);
    const records: SourceRecord[] = [];
    const read = async () => {
      for await (const record of openSource('-', 'csv', Readable.from([Buffer.from(`type,event\ntrack,A\ntrack,"oops\n${rows}`)])).records)
        records.push(record);
    };
    await expect(read()).rejects.toThrow(/^cannot read stdin: the quoted field opened on line 3 never closes \(no closing " within 8 MB\)/);
    expect(records.map((r) => r.record)).toEqual([{ type: 'track', event: 'A' }]);
  });

  it('rejects a row of one line over 8 MB alone, with no quote left open, and reads the rows after it', async () => {
    const records = await recordsOf(`type,event\ntrack,"${'x'.repeat(MAX_LINE_BYTES)}\ntrack,B\n`, 'csv');
    expect(records.map((r) => [r.line, r.record ?? r.error])).toEqual([
      [2, expect.stringMatching(/longer than 8388608 bytes/)],
      [3, { type: 'track', event: 'B' }],
    ]);
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

  it('keeps every id column as text, so that 1e3 and 1000, or two long numbers, stay two ids', async () => {
    const records = await recordsOf(
      'partner_id,message_id,event_type,payload.n\n7,12345678901234567890,1,1\n7,12345678901234567891,1,2\n7,1e3,1,3\n7,1000,1,4\n',
      'csv',
    );
    expect(records.map((r) => r.record?.message_id)).toEqual(['12345678901234567890', '12345678901234567891', '1e3', '1000']);
    expect(records[0]?.record).toMatchObject({ partner_id: '7', event_type: '1', payload: { n: 1 } });
  });

  it('refuses a header that names a value twice, which would keep only the last of them', async () => {
    const read = recordsOf('type,event,userId,userId,properties.a,properties,properties.a.b\ntrack,E,u1,u2,1,{},2\n', 'csv');
    await expect(read).rejects.toThrow(CliError);
    await expect(read).rejects.toThrow(
      /userId twice; properties and properties\.a; properties and properties\.a\.b; properties\.a and properties\.a\.b/,
    );
    await expect(recordsOf('type,properties.a,properties.ab\ntrack,1,2\n', 'csv')).resolves.toHaveLength(1);
  });
});

describe('reading UTF-8', () => {
  it('rejects a line that is not UTF-8 with its number, rather than store U+FFFD, and reads the lines after it', async () => {
    const bytes = Buffer.concat([Buffer.from('{"n":1}\r\n{"n":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\r\n{"n":"é"}\r\n')]);
    const records = await recordsOf(bytes, 'ndjson');
    expect(records.map((r) => r.record ?? r.error)).toEqual([{ n: 1 }, 'the line is not valid UTF-8', { n: 'é' }]);
    expect(records[1]?.line).toBe(2);
  });

  it('rejects a CSV row with bytes that are not UTF-8 and keeps quoted fields that span lines', async () => {
    const bytes = Buffer.concat([
      Buffer.from('type,event,properties.note\ntrack,A,"two\nlines"\ntrack,B,"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"\ntrack,C,ok\n'),
    ]);
    const records = await recordsOf(bytes, 'csv');
    expect(records.map((r) => [r.line, r.record ?? r.error])).toEqual([
      [2, { type: 'track', event: 'A', properties: { note: 'two\nlines' } }],
      [4, 'the line is not valid UTF-8'],
      [5, { type: 'track', event: 'C', properties: { note: 'ok' } }],
    ]);
  });

  it('refuses a CSV header that is not UTF-8: no row after it could be read right', async () => {
    await expect(recordsOf(Buffer.concat([Buffer.from([0xc3, 0x28]), Buffer.from(',event\ntrack,E\n')]), 'csv')).rejects.toThrow(
      /the CSV header \(line 1\) cannot be read: the line is not valid UTF-8/,
    );
  });
});

describe('reading gzip', () => {
  const lines = Array.from({ length: 300 }, (_, i) =>
    JSON.stringify({ type: 'track', event: 'Gz', messageId: `gz-${i}`, pad: 'x'.repeat(i % 90) }),
  );
  const gzipped = gzipSync(`${lines.join('\n')}\n`);
  /** In chunks that end and begin mid-stream, as a pipe delivers them. */
  const read = async (bytes: Buffer) => {
    const records: SourceRecord[] = [];
    const warnings: string[] = [];
    const chunks = [bytes.subarray(0, 1000), bytes.subarray(1000)];
    let error: unknown;
    try {
      for await (const record of openSource('-', 'ndjson', Readable.from(chunks), (line) => warnings.push(line)).records)
        records.push(record);
    } catch (caught) {
      error = caught;
    }
    return { records, warnings, error };
  };

  it('reads every line before bytes that are not gzip after the data, and warns of them, as gzip does', async () => {
    const { records, warnings, error } = await read(Buffer.concat([gzipped, gzipped, Buffer.from('garbage\n')]));
    expect(error).toBeUndefined();
    expect(records).toHaveLength(600);
    expect(warnings).toEqual(['stdin: the bytes after its gzip data are not gzip: they are ignored, as gzip does']);
    expect((await read(Buffer.concat([gzipped, Buffer.alloc(16)]))).warnings).toEqual([]);
  });

  it('reads every complete line of a truncated file, as many as zcat recovers, then fails naming the last', async () => {
    const cut = gzipped.subarray(0, Math.floor(gzipped.length * 0.8));
    const recoverable = gunzipSync(cut, { finishFlush: constants.Z_SYNC_FLUSH }).toString().split('\n').length - 1;
    const { records, error } = await read(cut);
    expect(records).toHaveLength(recoverable);
    expect(error).toBeInstanceOf(CliError);
    expect((error as Error).message).toBe(`cannot read stdin after line ${recoverable}: the gzip data is broken (unexpected end of file)`);
  });

  it('reads the optional header fields and fails on a wrong checksum', async () => {
    const named = Buffer.from(gzipped);
    named[3] = 0x08 | 0x10;
    const withName = Buffer.concat([named.subarray(0, 10), Buffer.from('history.ndjson\0a comment\0'), named.subarray(10)]);
    expect((await read(withName)).records).toHaveLength(300);
    const wrongCrc = Buffer.from(gzipped);
    wrongCrc.writeUInt32LE((wrongCrc.readUInt32LE(wrongCrc.length - 8) + 1) >>> 0, wrongCrc.length - 8);
    expect(((await read(wrongCrc)).error as Error).message).toMatch(/after line 300: the gzip data is broken \(incorrect data check\)/);
  });
});
