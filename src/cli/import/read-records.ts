import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { crc32, createInflateRaw, type InflateRaw } from 'node:zlib';
import { CliError } from '../cli-error.js';

/** One line (or CSV row) of an import file, parsed; `error` when it could not be read as a record. */
export interface SourceRecord {
  readonly line: number;
  readonly text: string;
  readonly record?: Record<string, unknown>;
  readonly error?: string;
  /**
   * What the idempotency key of a record without an id is hashed from, when not its text: a CSV row
   * with its header, as the same cells under other columns are another record.
   */
  readonly identity?: string;
}

export type ImportFormat = 'ndjson' | 'csv';

export interface ImportSource {
  readonly records: AsyncIterable<SourceRecord>;
  /** Compressed or raw bytes read so far, against `totalBytes` when the size is known (a plain file). */
  bytesRead(): number;
  readonly totalBytes: number | undefined;
}

/**
 * The longest line (or CSV row) read, in bytes: far beyond any record the server takes (1 MB bodies
 * by default), and short enough that a file of one endless line is rejected instead of filling memory.
 */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;
/** How much of an overlong line the rejects file keeps. */
const OVERLONG_PREVIEW = 200;

/**
 * Opens a file, or `-` for stdin, gzipped or not; the format comes from the name unless given.
 * `warn` is told what is odd but harmless (bytes after the gzip data).
 */
export function openSource(
  path: string,
  format?: ImportFormat,
  stdin: Readable = process.stdin,
  warn: (line: string) => void = () => {},
): ImportSource {
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
  const input = gunzipIfGzipped(
    counted(raw, (bytes) => (read += bytes)),
    (line) => warn(`${name}: ${line}`),
  );
  const plainName = path.endsWith('.gz') ? path.slice(0, -3) : path;
  const chosen = format ?? (plainName.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  const lines = linesOf(input, name);
  return {
    records: chosen === 'csv' ? csvRecords(lines, name) : ndjsonRecords(lines),
    bytesRead: () => read,
    totalBytes,
  };
}

async function* counted(raw: Readable, onRead: (bytes: number) => void): AsyncGenerator<Buffer> {
  for await (const data of raw as AsyncIterable<Buffer | string>) {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    onRead(chunk.length);
    yield chunk;
  }
}

/** A line of the input; `fault` when it cannot be read (too long, not UTF-8), with the reason. */
interface Line {
  readonly text: string;
  readonly bytes: number;
  readonly fault?: string;
  /** How the line ended: a quoted CSV field that goes on past it keeps that line break as written. */
  readonly ending: '\n' | '\r\n';
}

const LF = 0x0a;
const CR = 0x0d;
// The live path refuses a body that is not UTF-8 rather than store U+FFFD in place of its bytes.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Splits the input into lines (LF or CRLF) at the byte level, so that each is decoded whole and a
 * line that is not UTF-8 is told apart, without ever holding more than `MAX_LINE_BYTES` of one.
 * A read error (a broken gzip stream, a directory) ends the import with one message naming the input.
 */
async function* linesOf(input: AsyncIterable<Buffer>, name: string, maxBytes = MAX_LINE_BYTES): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let bytes = 0;
  let overlong = false;
  let count = 0;
  const append = (part: Buffer) => {
    bytes += part.length;
    if (overlong || part.length === 0) return;
    parts.push(part);
    if (bytes > maxBytes) {
      parts = [Buffer.concat(parts).subarray(0, OVERLONG_PREVIEW)];
      overlong = true;
    }
  };
  const finish = (part: Buffer): Line => {
    append(part);
    const content = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    const line = overlong ? overlongLine(content, bytes, maxBytes) : decodedLine(content, bytes);
    parts = [];
    bytes = 0;
    overlong = false;
    count += 1;
    return line;
  };
  try {
    for await (const chunk of input) {
      let start = 0;
      for (let end = chunk.indexOf(LF); end !== -1; end = chunk.indexOf(LF, start)) {
        yield finish(chunk.subarray(start, end));
        start = end + 1;
      }
      append(chunk.subarray(start));
    }
  } catch (error) {
    throw new CliError(`cannot read ${name} after line ${count}: ${reasonOf(error)}`);
  }
  if (bytes > 0) yield finish(Buffer.alloc(0));
}

function decodedLine(content: Buffer, bytes: number): Line {
  const crlf = content.at(-1) === CR;
  const body = crlf ? content.subarray(0, -1) : content;
  const ending = crlf ? '\r\n' : '\n';
  try {
    return { text: strictUtf8.decode(body), bytes, ending };
  } catch {
    return { text: lenientUtf8.decode(body), bytes, ending, fault: 'the line is not valid UTF-8' };
  }
}

const overlongLine = (preview: Buffer, bytes: number, maxBytes: number): Line => ({
  text: lenientUtf8.decode(preview),
  bytes,
  ending: '\n',
  fault: overlongError(maxBytes),
});

const reasonOf = (error: unknown): string => {
  const { code, message } = error as NodeJS.ErrnoException;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES') return 'permission denied';
  if (code?.startsWith('Z_')) return `the gzip data is broken (${message})`;
  return message;
};

const overlongError = (maxBytes: number) => `the line is longer than ${maxBytes} bytes (only its start is kept here)`;

/** The gzip framing ends early or reads wrong: in zlib's words, with a code of zlib's, to be reported as zlib's errors are. */
class BrokenGzip extends Error {
  readonly code = 'Z_DATA_ERROR';
}

/** The input as bytes to take a few at a time (the gzip framing) or as they come (the rest). */
class ByteQueue {
  private head: Buffer = Buffer.alloc(0);
  constructor(private readonly chunks: AsyncIterator<Buffer>) {}

  /** The next bytes, at most `max`, or undefined at the end of the input. */
  async next(max = Number.POSITIVE_INFINITY): Promise<Buffer | undefined> {
    while (this.head.length === 0) {
      const next = await this.chunks.next();
      if (next.done) return undefined;
      this.head = next.value;
    }
    const piece = this.head.subarray(0, max);
    this.head = this.head.subarray(piece.length);
    return piece;
  }

  /** `count` bytes, or fewer when the input ends first. */
  async take(count: number): Promise<Buffer> {
    const pieces: Buffer[] = [];
    for (let have = 0; have < count;) {
      const piece = await this.next(count - have);
      if (!piece) break;
      pieces.push(piece);
      have += piece.length;
    }
    return Buffer.concat(pieces);
  }

  async exactly(count: number): Promise<Buffer> {
    const bytes = await this.take(count);
    if (bytes.length < count) throw new BrokenGzip('unexpected end of file');
    return bytes;
  }

  /** Gives back bytes taken but not used; they come first again. */
  unshift(bytes: Buffer): void {
    this.head = this.head.length === 0 ? bytes : Buffer.concat([bytes, this.head]);
  }

  async skipPastZero(): Promise<void> {
    for (let piece = await this.next(); piece; piece = await this.next()) {
      const zero = piece.indexOf(0);
      if (zero !== -1) return this.unshift(piece.subarray(zero + 1));
    }
    throw new BrokenGzip('unexpected end of file');
  }

  async *rest(): AsyncGenerator<Buffer> {
    for (let piece = await this.next(); piece; piece = await this.next()) yield piece;
  }
}

const isGzipMagic = (bytes: Buffer) => bytes[0] === 0x1f && bytes[1] === 0x8b;

/**
 * Gzip is told by its magic bytes, not the name, so that `zcat`-less pipes into `-` work too (a slow
 * pipe may deliver a single byte first: the choice waits for two).
 */
async function* gunzipIfGzipped(chunks: AsyncIterable<Buffer>, warn: (line: string) => void): AsyncGenerator<Buffer> {
  const queue = new ByteQueue(chunks[Symbol.asyncIterator]());
  const magic = await queue.take(2);
  queue.unshift(magic);
  yield* isGzipMagic(magic) ? gzipMembers(queue, warn) : queue.rest();
}

/**
 * Decompresses one gzip member after another, as gzip does. zlib's own gunzip drops what it has just
 * decompressed when it meets an error (a truncated file, bytes after the last member) in the same
 * chunk, so the framing is read here and only the deflate data is left to zlib: every line before a
 * break reaches the import. Bytes after a complete member that are not gzip are ignored with a warning,
 * and zeros (padding) silently.
 */
async function* gzipMembers(queue: ByteQueue, warn: (line: string) => void): AsyncGenerator<Buffer> {
  for (let members = 0; ; members++) {
    const magic = await queue.take(2);
    if (members > 0 && (magic.length === 0 || magic[0] === 0)) return;
    if (!isGzipMagic(magic)) {
      warn('the bytes after its gzip data are not gzip: they are ignored, as gzip does');
      return;
    }
    await skipMemberHeader(queue);
    yield* inflateMember(queue);
  }
}

const FLAG_HEADER_CRC = 0x02;
const FLAG_EXTRA = 0x04;
const FLAG_NAME = 0x08;
const FLAG_COMMENT = 0x10;
const FLAGS_RESERVED = 0xe0;

/** The rest of a member's header after its magic bytes (RFC 1952): nothing of it is needed. */
async function skipMemberHeader(queue: ByteQueue): Promise<void> {
  const [method = 0, flags = 0] = await queue.exactly(8);
  if (method !== 8) throw new BrokenGzip('unknown compression method');
  if (flags & FLAGS_RESERVED) throw new BrokenGzip('unknown header flags set');
  if (flags & FLAG_EXTRA) await queue.exactly((await queue.exactly(2)).readUInt16LE(0));
  if (flags & FLAG_NAME) await queue.skipPastZero();
  if (flags & FLAG_COMMENT) await queue.skipPastZero();
  if (flags & FLAG_HEADER_CRC) await queue.exactly(2);
}

/**
 * A compressed piece is at most this: all that one piece decompresses to is held at once, and deflate
 * reaches about 1,000 to 1.
 */
const INFLATE_PIECE = 16 * 1024;

/** A member's deflate data, then its trailer checked (CRC-32 and length), leaving what follows in the queue. */
async function* inflateMember(queue: ByteQueue): AsyncGenerator<Buffer> {
  const inflater = createInflateRaw();
  const output: Buffer[] = [];
  // Flowing, so that zlib's output is here as soon as the piece that gave it is written.
  inflater.on('data', (chunk: Buffer) => output.push(chunk));
  // An error reaches the write or end it broke; without a listener it would also end the process.
  inflater.on('error', () => {});
  let crc = 0;
  let size = 0;
  try {
    for (;;) {
      const piece = await queue.next(INFLATE_PIECE);
      if (!piece) {
        await finishInflate(inflater);
        throw new BrokenGzip('unexpected end of file');
      }
      const consumed = await inflate(inflater, piece);
      for (const chunk of output.splice(0)) {
        crc = crc32(chunk, crc);
        size += chunk.length;
        yield chunk;
      }
      // zlib takes no more input once the deflate data ends: what it left is the trailer and after.
      if (consumed < piece.length) {
        queue.unshift(piece.subarray(consumed));
        break;
      }
    }
  } finally {
    inflater.destroy();
  }
  const trailer = await queue.exactly(8);
  if (trailer.readUInt32LE(0) !== crc) throw new BrokenGzip('incorrect data check');
  if (trailer.readUInt32LE(4) !== size % 2 ** 32) throw new BrokenGzip('incorrect length check');
}

/** Writes a piece and answers how many of its bytes zlib took. */
function inflate(inflater: InflateRaw, piece: Buffer): Promise<number> {
  const before = inflater.bytesWritten;
  return new Promise((resolve, reject) => {
    const failed = (error: Error) => reject(error);
    inflater.once('error', failed);
    inflater.write(piece, (error) => {
      inflater.off('error', failed);
      if (error) reject(error);
      else resolve(inflater.bytesWritten - before);
    });
  });
}

/** The end of the input inside the deflate data: zlib's error says what broke, or the trailer is missing. */
function finishInflate(inflater: InflateRaw): Promise<void> {
  return new Promise((resolve, reject) => {
    inflater.once('error', reject);
    inflater.end((error?: Error | null) => (error ? reject(error) : resolve()));
  });
}

async function* ndjsonRecords(lines: AsyncIterable<Line>): AsyncGenerator<SourceRecord> {
  let line = 0;
  for await (const { text: raw, fault } of lines) {
    line += 1;
    if (fault) {
      yield { line, text: raw, error: fault };
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
async function* csvRecords(lines: AsyncIterable<Line>, name: string): AsyncGenerator<SourceRecord> {
  let header: string[] | undefined;
  let row = csvRow();
  let startLine = 0;
  let line = 0;
  let text = '';
  let rowBytes = 0;
  let ending: Line['ending'] = '\n';
  for await (const { text: lineText, bytes, fault, ending: nextEnding } of lines) {
    line += 1;
    if (!row.open) {
      startLine = line;
      rowBytes = 0;
    }
    rowBytes += bytes;
    const overlong = rowBytes > MAX_LINE_BYTES;
    // A quote that never closes has gathered every row after it: one reject would hide them all.
    if (overlong && row.open) throw unclosedQuote(name, startLine, `within ${MAX_LINE_BYTES / 2 ** 20} MB`);
    const problem = fault ?? (overlong ? overlongError(MAX_LINE_BYTES) : undefined);
    if (problem) {
      // Without its header, no row after it could be read right.
      if (!header) throw new CliError(`the CSV header (line ${startLine}) cannot be read: ${problem}`);
      const rowSoFar = row.open ? `${text}${ending}${lineText}` : lineText;
      yield { line: startLine, text: overlong ? rowSoFar.slice(0, OVERLONG_PREVIEW) : rowSoFar, error: problem };
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
      header = checkedHeader(cells.map((c) => c.trim()));
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
    yield { line: startLine, text: rowText, record, identity: JSON.stringify([header, rowText]) };
  }
  if (row.open) throw unclosedQuote(name, startLine, 'before the end of the file');
}

const unclosedQuote = (name: string, line: number, where: string) =>
  new CliError(
    `cannot read ${name}: the quoted field opened on line ${line} never closes (no closing " ${where}): ` +
      'close it and run the same command again, which stores nothing twice',
  );

/**
 * A header whose columns name one value twice (`userId,userId`, or `properties` beside
 * `properties.a`) is refused: one of them would silently replace the other in every row.
 */
function checkedHeader(names: string[]): string[] {
  const seen = new Set<string>();
  const clashes: string[] = [];
  for (const name of names.filter((n) => n !== '')) {
    if (seen.has(name)) clashes.push(`${name} twice`);
    seen.add(name);
  }
  for (const name of seen) {
    const parts = name.split('.');
    for (let length = 1; length < parts.length; length++) {
      const prefix = parts.slice(0, length).join('.');
      if (seen.has(prefix)) clashes.push(`${prefix} and ${name}`);
    }
  }
  if (clashes.length > 0) {
    throw new CliError(`the CSV header names a value more than once (${clashes.join('; ')}): give each column a name of its own`);
  }
  return names;
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

/** The columns whose cells stay text: ids (`1e3` and `1000` are two ids) and names, as the server reads them. */
const TEXT_COLUMNS = new Set([
  'type',
  'event',
  'userId',
  'anonymousId',
  'previousId',
  'groupId',
  'messageId',
  'message_id',
  'timestamp',
  'originalTimestamp',
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
