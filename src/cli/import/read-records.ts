import { createReadStream, statSync } from 'node:fs';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { CliError } from '../cli-error.js';

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

/**
 * The longest line (or CSV row) read: far beyond any record the server takes (1 MB bodies by
 * default), and short enough that a file of one endless line is rejected instead of filling memory.
 */
export const MAX_LINE_CHARS = 8 * 1024 * 1024;
/** How much of an overlong line the rejects file keeps. */
const OVERLONG_PREVIEW = 200;

/** Opens a file, or `-` for stdin, gzipped or not; the format comes from the name unless given. */
export function openSource(path: string, format?: ImportFormat, stdin: Readable = process.stdin): ImportSource {
  const name = path === '-' ? 'stdin' : path;
  let totalBytes: number | undefined;
  if (path !== '-') {
    try {
      totalBytes = statSync(path).size;
    } catch (error) {
      throw new CliError(`cannot read ${name}: ${reasonOf(error)}`);
    }
  }
  const raw = path === '-' ? stdin : createReadStream(path);
  let read = 0;
  raw.on('data', (chunk: Buffer | string) => (read += chunk.length));
  const input = gunzipIfGzipped(raw);
  const plainName = path.endsWith('.gz') ? path.slice(0, -3) : path;
  const chosen = format ?? (plainName.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  const lines = linesOf(input, name);
  return {
    records: chosen === 'csv' ? csvRecords(lines) : ndjsonRecords(lines),
    bytesRead: () => read,
    totalBytes,
  };
}

/** A line of the input; one longer than `MAX_LINE_CHARS` keeps only its start and is marked. */
interface Line {
  readonly text: string;
  readonly overlong: boolean;
  /** How the line ended: a quoted CSV field that goes on past it keeps that line break as written. */
  readonly ending: '\n' | '\r\n';
}

/**
 * Splits the input into lines (LF or CRLF) without ever holding more than `MAX_LINE_CHARS` of one.
 * A read error (a broken gzip stream, a directory) ends the import with one message naming the input.
 */
async function* linesOf(input: AsyncIterable<Buffer | string>, name: string, maxChars = MAX_LINE_CHARS): AsyncGenerator<Line> {
  const decoder = new StringDecoder('utf8');
  let current = '';
  let overlong = false;
  let count = 0;
  const append = (text: string) => {
    if (overlong) return;
    current += text;
    if (current.length > maxChars) {
      current = current.slice(0, OVERLONG_PREVIEW);
      overlong = true;
    }
  };
  const finish = (text: string): Line => {
    append(text);
    const crlf = !overlong && current.endsWith('\r');
    const line: Line = { text: crlf ? current.slice(0, -1) : current, overlong, ending: crlf ? '\r\n' : '\n' };
    current = '';
    overlong = false;
    count += 1;
    return line;
  };
  try {
    for await (const chunk of input) {
      const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
      let start = 0;
      for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
        yield finish(text.slice(start, end));
        start = end + 1;
      }
      append(text.slice(start));
    }
  } catch (error) {
    throw new CliError(`cannot read ${name} after line ${count}: ${reasonOf(error)}`);
  }
  append(decoder.end());
  if (current !== '' || overlong) yield finish('');
}

const reasonOf = (error: unknown): string => {
  const { code, message } = error as NodeJS.ErrnoException;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'Z_BUF_ERROR' || code === 'Z_DATA_ERROR') return `the gzip data is broken (${message})`;
  return message;
};

const overlongError = (maxChars: number) => `the line is longer than ${maxChars} characters (only its start is kept here)`;

/**
 * Gzip is told by its magic bytes, not the name, so that `zcat`-less pipes into `-` work too. A slow
 * pipe may deliver a single byte first: the choice waits for two.
 */
function gunzipIfGzipped(raw: Readable): Readable {
  const out = new PassThrough();
  const head: Buffer[] = [];
  let headBytes = 0;
  let target: Writable | undefined;
  const choose = () => {
    const start = Buffer.concat(head);
    target = start[0] === 0x1f && start[1] === 0x8b ? createGunzip() : out;
    if (target !== out) {
      target.on('error', (error) => out.destroy(error));
      target.pipe(out);
    }
    if (start.length > 0) target.write(start);
  };
  raw.on('data', (data: Buffer | string) => {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    if (target) {
      if (!target.write(chunk)) {
        raw.pause();
        target.once('drain', () => raw.resume());
      }
      return;
    }
    head.push(chunk);
    headBytes += chunk.length;
    if (headBytes >= 2) choose();
  });
  raw.once('end', () => {
    if (!target) choose();
    target?.end();
  });
  raw.on('error', (error) => out.destroy(error));
  return out;
}

async function* ndjsonRecords(lines: AsyncIterable<Line>): AsyncGenerator<SourceRecord> {
  let line = 0;
  for await (const { text: raw, overlong } of lines) {
    line += 1;
    if (overlong) {
      yield { line, text: raw, error: overlongError(MAX_LINE_CHARS) };
      continue;
    }
    // A byte order mark before the first line is no part of its JSON.
    const text = line === 1 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw;
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
 * (`properties.revenue`); an unquoted cell that reads as a JSON number, boolean, object or array is
 * that value, except in the id columns, which stay text, as does every quoted cell. A quote opens a
 * quoted field only at the start of a cell: elsewhere it is a character of the cell (`12" pipe`).
 */
async function* csvRecords(lines: AsyncIterable<Line>): AsyncGenerator<SourceRecord> {
  let header: string[] | undefined;
  let row = csvRow();
  let startLine = 0;
  let line = 0;
  let text = '';
  let ending: Line['ending'] = '\n';
  for await (const { text: lineText, overlong, ending: nextEnding } of lines) {
    line += 1;
    if (!row.open) startLine = line;
    // A row whose quoted field never closes would otherwise gather the rest of the file.
    if (overlong || text.length + lineText.length > MAX_LINE_CHARS) {
      yield { line: startLine, text: (text || lineText).slice(0, OVERLONG_PREVIEW), error: overlongError(MAX_LINE_CHARS) };
      row = csvRow();
      text = '';
      continue;
    }
    text = row.open ? `${text}${ending}${lineText}` : lineText;
    row.read(lineText, line === 1, ending);
    ending = nextEnding;
    if (row.open) continue;
    const { cells, quoted } = row.finish();
    row = csvRow();
    const rowText = text;
    text = '';
    if (cells.length === 1 && cells[0]?.trim() === '' && !quoted[0]) continue;
    if (!header) {
      header = cells.map((c) => c.trim());
      continue;
    }
    if (cells.length !== header.length) {
      yield { line: startLine, text: rowText, error: `the row has ${cells.length} cells, the header ${header.length}` };
      continue;
    }
    const record: Record<string, unknown> = {};
    header.forEach((name, i) => {
      const cell = cells[i] ?? '';
      if ((cell === '' && !quoted[i]) || name === '') return;
      setPath(record, name.split('.'), TEXT_COLUMNS.has(name) || quoted[i] ? cell : cellValue(cell));
    });
    yield { line: startLine, text: rowText, record };
  }
  if (row.open) yield { line: startLine, text, error: 'an unterminated quoted field runs to the end of the file' };
}

/** One CSV row read line by line: `open` while a quoted field goes on past the end of a line. */
function csvRow() {
  const cells: string[] = [];
  const quoted: boolean[] = [];
  let cell = '';
  let cellQuoted = false;
  let inQuotes = false;
  return {
    get open() {
      return inQuotes;
    },
    /** `ending`: how the line before ended, which a quoted field that went on past it keeps. */
    read(text: string, first: boolean, ending: Line['ending'] = '\n') {
      // A byte order mark before the header is no part of its first name.
      let i = first && text.startsWith('\uFEFF') ? 1 : 0;
      if (inQuotes) cell += ending;
      for (; i < text.length; i++) {
        const char = text[i];
        if (inQuotes) {
          if (char !== '"') cell += char;
          else if (text[i + 1] === '"') {
            cell += '"';
            i += 1;
          } else inQuotes = false;
        } else if (char === ',') {
          cells.push(cell);
          quoted.push(cellQuoted);
          cell = '';
          cellQuoted = false;
        } else if (char === '"' && cell === '' && !cellQuoted) {
          inQuotes = true;
          cellQuoted = true;
        } else cell += char;
      }
    },
    finish() {
      cells.push(cell);
      quoted.push(cellQuoted);
      return { cells, quoted };
    },
  };
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
      const value = JSON.parse(cell) as unknown;
      // `1e400` parses as Infinity, which JSON would send as null: the cell stays text.
      return typeof value === 'number' && !Number.isFinite(value) ? cell : value;
    } catch {
      return cell;
    }
  }
  return cell;
}

/**
 * Sets a dotted path as own properties: a header `__proto__.messageId` makes a key the server refuses,
 * never a change to every object of the process (which once gave later rows that messageId).
 */
function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  const next = Object.hasOwn(target, head) ? target[head] : undefined;
  const child =
    rest.length === 0 ? value : typeof next === 'object' && next !== null && !Array.isArray(next) ? (next as Record<string, unknown>) : {};
  Object.defineProperty(target, head, { value: child, enumerable: true, writable: true, configurable: true });
  if (rest.length > 0) setPath(child as Record<string, unknown>, rest, value);
}
