import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/** One line (or CSV row) of an import file, parsed; `error` when it could not be read as a record. */
export interface SourceRecord {
  readonly line: number;
  readonly text: string;
  readonly record?: Record<string, unknown>;
  readonly error?: string;
}

export type ImportFormat = 'ndjson' | 'csv';

export interface ImportSource {
  readonly records: AsyncIterable<SourceRecord>;
  /** Compressed or raw bytes read so far, against `totalBytes` when the size is known (a plain file). */
  bytesRead(): number;
  readonly totalBytes: number | undefined;
}

/** Opens a file, or `-` for stdin, gzipped or not; the format comes from the name unless given. */
export function openSource(path: string, format?: ImportFormat, stdin: Readable = process.stdin): ImportSource {
  const raw = path === '-' ? stdin : createReadStream(path);
  let read = 0;
  raw.on('data', (chunk: Buffer | string) => (read += chunk.length));
  const input = gunzipIfGzipped(raw);
  const plainName = path.endsWith('.gz') ? path.slice(0, -3) : path;
  const chosen = format ?? (plainName.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  const lines = createInterface({ input, crlfDelay: Infinity });
  // A broken gzip stream fails the read loop with its own error instead of an unhandled event.
  input.on('error', (error: Error) => lines.emit('error', error));
  return {
    records: chosen === 'csv' ? csvRecords(lines) : ndjsonRecords(lines),
    bytesRead: () => read,
    totalBytes: path === '-' ? undefined : statSync(path).size,
  };
}

/** Gzip is told by its magic bytes, not the name, so that `zcat`-less pipes into `-` work too. */
function gunzipIfGzipped(raw: Readable): Readable {
  const out = new PassThrough();
  let started = false;
  raw.once('data', (first: Buffer | string) => {
    started = true;
    raw.pause();
    const chunk = typeof first === 'string' ? Buffer.from(first) : first;
    const target = chunk[0] === 0x1f && chunk[1] === 0x8b ? createGunzip() : out;
    if (target !== out) {
      target.on('error', (error) => out.destroy(error));
      target.pipe(out);
    }
    target.write(chunk);
    raw.pipe(target);
    raw.resume();
  });
  raw.once('end', () => {
    if (!started) out.end();
  });
  raw.on('error', (error) => out.destroy(error));
  return out;
}

async function* ndjsonRecords(lines: AsyncIterable<string>): AsyncGenerator<SourceRecord> {
  let line = 0;
  for await (const text of lines) {
    line += 1;
    if (text.trim().length === 0) continue;
    try {
      const parsed: unknown = JSON.parse(text);
      yield typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
        ? { line, text, record: parsed as Record<string, unknown> }
        : { line, text, error: 'the line is not a JSON object' };
    } catch (error) {
      yield { line, text, error: `the line is not valid JSON: ${(error as Error).message}` };
    }
  }
}

/**
 * CSV with a header row (RFC 4180 quoting, quoted fields may span lines). Dotted headers nest
 * (`properties.revenue`); a cell that reads as a JSON number, boolean, object or array is that value,
 * except in the id columns, which stay text.
 */
async function* csvRecords(lines: AsyncIterable<string>): AsyncGenerator<SourceRecord> {
  let header: string[] | undefined;
  let pending = '';
  let startLine = 0;
  let line = 0;
  for await (const text of lines) {
    line += 1;
    if (pending === '') startLine = line;
    pending = pending === '' ? text : `${pending}\n${text}`;
    if (countQuotes(pending) % 2 === 1) continue;
    const row = pending;
    pending = '';
    if (row.trim().length === 0) continue;
    const cells = splitCsv(row);
    if (!header) {
      header = cells.map((c) => c.trim());
      continue;
    }
    if (cells.length !== header.length) {
      yield { line: startLine, text: row, error: `the row has ${cells.length} cells, the header ${header.length}` };
      continue;
    }
    const record: Record<string, unknown> = {};
    header.forEach((name, i) => {
      const cell = cells[i] ?? '';
      if (cell === '' || name === '') return;
      setPath(record, name.split('.'), TEXT_COLUMNS.has(name) ? cell : cellValue(cell));
    });
    yield { line: startLine, text: row, record };
  }
  if (pending !== '') yield { line: startLine, text: pending, error: 'an unterminated quoted field runs to the end of the file' };
}

const TEXT_COLUMNS = new Set([
  'type',
  'event',
  'userId',
  'anonymousId',
  'previousId',
  'groupId',
  'messageId',
  'timestamp',
  'sentAt',
  'name',
  'partner_id',
  'event_type',
]);

function cellValue(cell: string): unknown {
  if (/^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)$/.test(cell) || /^[[{]/.test(cell)) {
    try {
      return JSON.parse(cell) as unknown;
    } catch {
      return cell;
    }
  }
  return cell;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    target[head] = value;
    return;
  }
  const next = target[head];
  const child = typeof next === 'object' && next !== null && !Array.isArray(next) ? (next as Record<string, unknown>) : {};
  target[head] = child;
  setPath(child, rest, value);
}

const countQuotes = (text: string) => (text.match(/"/g) ?? []).length;

function splitCsv(row: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < row.length; i++) {
    const char = row[i];
    if (quoted) {
      if (char === '"' && row[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      cells.push(cell);
      cell = '';
    } else cell += char;
  }
  cells.push(cell);
  return cells;
}
