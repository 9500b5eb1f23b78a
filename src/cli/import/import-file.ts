import { createHash } from 'node:crypto';
import { createWriteStream, lstatSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { CliError } from '../cli-error.js';
import { openSource, type ImportFormat, type SourceRecord } from './read-records.js';
import { progressReporter } from './progress.js';
import { sendBatch, type Endpoint, type SendOptions, type Verdict } from './send-batch.js';
import { makeRoom } from '../../shared/bounded-map.js';

export interface ImportOptions {
  readonly file: string;
  /** Intake's base URL. */
  readonly url: string;
  /** For Segment-style messages (sent to /v1/import). */
  readonly writeKey?: string;
  /** For partner items (sent to /api/ingest/{partner_id}/batch): the admin token or that application's write key. */
  readonly token?: string;
  readonly format?: ImportFormat;
  readonly batchSize?: number;
  readonly rejectsPath?: string;
  readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stdin?: Readable;
  readonly retryDelayMs?: number;
  /** How long one batch may be retried (about two minutes unless given, for tests). */
  readonly retryBudgetMs?: number;
  /** How long a request may wait for its answer (60 s unless given, for tests). */
  readonly requestTimeoutMs?: number;
  /** Aborted to stop the import (Ctrl-C): nothing more is sent, not even the batch in flight. */
  readonly signal?: AbortSignal;
}

export interface ImportSummary {
  readonly read: number;
  readonly accepted: number;
  readonly duplicate: number;
  readonly rejected: number;
  readonly rejectsPath: string | undefined;
}

/** The import stopped before the end of its input: `summary` counts what was sent until then. */
export class ImportStopped extends CliError {
  constructor(
    message: string,
    readonly summary: ImportSummary,
    exitCode: 1 | 130 = 1,
  ) {
    super(message, exitCode);
  }
}

const INTERRUPTED = 'interrupted: run the same command again to go on, which stores nothing twice';

const MAX_BATCH_JSON = 400 * 1024;
/** Event ids of recent answers kept: an older one was made before any attempt still being retried. */
const RECENT_ANSWERS = 100_000;
/**
 * Batches filling at once, one per destination (an application's partner items, the messages): an
 * export ordered by time alternates between partners, and one batch at a time sent a request a record.
 */
const OPEN_BATCHES = 64;

interface Pending {
  readonly key: string;
  readonly endpoint: Endpoint;
  readonly items: Array<{ source: SourceRecord; body: object }>;
  bytes: number;
}

/**
 * Imports a file through a running Intake's HTTP API, in batches, so that every rule of the live path
 * applies (write keys, limits, deduplication, routing). Each record carries an idempotency key (its
 * messageId, or a hash of its line), so running the same file again stores nothing twice.
 */
export async function importFile(options: ImportOptions): Promise<ImportSummary> {
  const say = notifier(options.out);
  const source = openSource(options.file, options.format, options.stdin, say);
  const batchSize = options.batchSize ?? 100;
  // Named after the file whole: `export.csv.gz` and `export.csv` beside it keep rejects of their own.
  const rejectsPath = options.rejectsPath ?? `${options.file === '-' ? 'stdin' : options.file}.rejects.ndjson`;
  if (options.file !== '-' && sameFile(options.file, rejectsPath)) {
    throw new CliError(`the rejects would overwrite the file being imported (${rejectsPath}): give --rejects another path`);
  }
  if (options.rejectsPath === undefined) removeStaleRejects(rejectsPath);
  // The ids of the latest answers: a record repeated in the input is not taken for a lost attempt's.
  const answered = new Set<string>();
  const sending: SendOptions = {
    notify: say,
    ...(options.retryDelayMs === undefined ? {} : { retryDelayMs: options.retryDelayMs }),
    ...(options.retryBudgetMs === undefined ? {} : { retryBudgetMs: options.retryBudgetMs }),
    ...(options.requestTimeoutMs === undefined ? {} : { timeoutMs: options.requestTimeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    known: answered,
  };
  const counts = { read: 0, accepted: 0, duplicate: 0, rejected: 0 };
  let rejects: WriteStream | undefined;
  const progress = progressReporter(options.out, source, counts);
  const summaryOf = (): ImportSummary => ({ ...counts, rejectsPath: counts.rejected > 0 ? rejectsPath : undefined });

  let rejectsFailed: Error | undefined;
  const reject = (record: SourceRecord, reason: string) => {
    counts.rejected += 1;
    if (!rejects) {
      // Truncated, never replaced: a device (/dev/null, /dev/stderr) or a FIFO is written as it is.
      rejects = createWriteStream(rejectsPath, { flags: 'w' });
      rejects.on('error', (error) => (rejectsFailed ??= error));
    }
    rejects.write(`${JSON.stringify({ line: record.line, reason, text: record.text })}\n`);
  };
  /** A rejects file that cannot be written ends the import: its records would be lost without a word. */
  const checkRejects = () => {
    if (rejectsFailed) throw new CliError(`cannot write the rejects to ${rejectsPath}: ${rejectsFailed.message}`);
  };
  const settle = (pending: Pending, verdicts: Verdict[]) => {
    pending.items.forEach(({ source: record }, index) => {
      const verdict = verdicts[index] ?? { status: 'rejected', reason: 'the server gave no receipt' };
      if (verdict.status === 'rejected') reject(record, verdict.reason);
      else {
        counts[verdict.status] += 1;
        if (verdict.eventId !== undefined) {
          makeRoom(answered, RECENT_ANSWERS);
          answered.add(verdict.eventId);
        }
      }
    });
    progress.update();
  };
  const flush = async (pending: Pending | undefined) => {
    if (!pending || pending.items.length === 0) return;
    settle(
      pending,
      await sendBatch(
        pending.endpoint,
        pending.items.map((i) => i.body),
        sending,
      ),
    );
  };

  // Insertion order is age: the oldest batch is sent first when too many are open.
  const open = new Map<string, Pending>();
  const flushAll = async () => {
    for (const pending of open.values()) await flush(pending);
    open.clear();
  };
  const interrupted = () => options.signal?.aborted === true;
  try {
    try {
      for await (const record of source.records) {
        options.signal?.throwIfAborted();
        checkRejects();
        counts.read += 1;
        if (!record.record) {
          reject(record, record.error ?? 'unreadable');
          continue;
        }
        const routed = route(record, options);
        if ('error' in routed) {
          reject(record, routed.error);
          continue;
        }
        const bytes = Buffer.byteLength(JSON.stringify(routed.body));
        let pending = open.get(routed.key);
        if (pending && (pending.items.length >= batchSize || pending.bytes + bytes > MAX_BATCH_JSON)) {
          await flush(pending);
          open.delete(routed.key);
          pending = undefined;
        }
        if (!pending) {
          const oldest = open.size >= OPEN_BATCHES ? open.entries().next().value : undefined;
          if (oldest) {
            await flush(oldest[1]);
            open.delete(oldest[0]);
          }
          pending = { key: routed.key, endpoint: routed.endpoint, items: [], bytes: 0 };
          open.set(routed.key, pending);
        }
        pending.items.push({ source: record, body: routed.body });
        pending.bytes += bytes;
      }
    } catch (error) {
      // The input broke (a truncated gzip, a quote that never closes): what was read before it is
      // sent, then the import stops and says what it sent.
      if (!(error instanceof CliError) || rejectsFailed !== undefined || interrupted()) throw error;
      await flushAll();
      throw new ImportStopped(error.message, summaryOf());
    }
    await flushAll();
  } catch (error) {
    // Whatever the stop broke off (a read, a request, a wait before a retry), the user asked for it.
    throw interrupted() ? new ImportStopped(INTERRUPTED, summaryOf(), 130) : error;
  } finally {
    progress.done();
    if (rejects) await new Promise<void>((resolve) => (rejects?.writable ? rejects.end(resolve) : resolve()));
  }
  checkRejects();
  return summaryOf();
}

/**
 * A rejects file of an earlier run at the default path would otherwise sit beside a summary of "0
 * rejected". Only a regular file there is removed: a path the user named is never deleted, and one
 * that cannot be written (a directory) fails when the first reject is written, with its reason.
 */
function removeStaleRejects(path: string): void {
  try {
    if (lstatSync(path).isFile()) rmSync(path);
  } catch {
    /* nothing there, or reported on the first reject */
  }
}

/** One line on the output, clear of a progress bar drawn in place on a terminal. */
function notifier(out: ImportOptions['out']): (line: string) => void {
  return (line) => out.write(out.isTTY === true ? `\r\u001b[2K${line}\n` : `${line}\n`);
}

/** Whether two paths name one file: the same path, or the same inode reached another way (a link). */
function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** A record's own id as the server reads it: a number is its text, as Segment takes numeric ids. */
const idOf = (value: unknown): string | undefined =>
  typeof value === 'string' && value.length > 0 ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;

/**
 * A numeric id that JSON.parse could not keep exactly: two such ids would become one, and the live
 * path refuses the number as out of range.
 */
function inexactId(value: unknown, field: string): string | undefined {
  if (typeof value !== 'number' || Number.isSafeInteger(value) || !Number.isInteger(value)) return undefined;
  return `${field} is an integer beyond ±(2^53-1), which a JSON number cannot hold exactly: write it as a string`;
}

/** The idempotency key of a record without an id: a hash of its line (a CSV row: with its header). */
const contentKey = (record: SourceRecord) =>
  `import-${createHash('sha256')
    .update(record.identity ?? record.text)
    .digest('hex')
    .slice(0, 40)}`;

/** Where a record goes: Segment-style messages to /v1/import, partner items to their application's batch. */
function route(record: SourceRecord, options: ImportOptions): { key: string; endpoint: Endpoint; body: object } | { error: string } {
  const fields = record.record ?? {};
  const base = options.url.replace(/\/+$/, '');
  if (typeof fields.partner_id === 'string' && fields.type === undefined) {
    if (!options.token) return { error: 'a partner item needs --token (the admin token or the application write key)' };
    // Every other field goes along, so that the server refuses a misspelled one (`evnet_type`) as it
    // does for its own batches, rather than the item being stored as the default type.
    const { partner_id: partnerId, ...item } = fields;
    // fetch would read the id as a path step and post elsewhere; the server refuses these ids anyway.
    if (partnerId === '.' || partnerId === '..') return { error: 'app_id must not be "." or ".."' };
    const inexact = inexactId(item.message_id, 'message_id');
    if (inexact) return { error: inexact };
    return {
      key: `partner:${partnerId}`,
      endpoint: partnerEndpoint(base, partnerId, options.token),
      body: { ...item, event_type: item.event_type ?? 'data', message_id: idOf(item.message_id) ?? contentKey(record) },
    };
  }
  if (!options.writeKey) return { error: 'a Segment-style message needs --write-key' };
  const inexact = inexactId(fields.messageId, 'messageId');
  if (inexact) return { error: inexact };
  return {
    key: 'messages',
    endpoint: messagesEndpoint(base, options.writeKey),
    body: {
      ...fields,
      messageId: idOf(fields.messageId) ?? contentKey(record),
    },
  };
}

function messagesEndpoint(base: string, writeKey: string): Endpoint {
  return {
    url: `${base}/v1/import`,
    headers: { authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` },
    body: (records) => ({ batch: records }),
    verdicts: (answer, count) => {
      const receipts = ((answer as { receipts?: unknown[] } | undefined)?.receipts ?? []) as Array<{
        index: number;
        status: string;
        reason?: string;
        event_id?: string;
      }>;
      return Array.from({ length: count }, (_, index): Verdict => {
        const receipt = receipts.find((r) => r.index === index);
        if (receipt?.status === 'accepted') return { status: 'accepted', ...(receipt.event_id ? { eventId: receipt.event_id } : {}) };
        if (receipt?.status === 'duplicate') return { status: 'duplicate', ...(receipt.event_id ? { eventId: receipt.event_id } : {}) };
        return { status: 'rejected', reason: receipt?.reason ?? 'the server gave no receipt' };
      });
    },
  };
}

function partnerEndpoint(base: string, partnerId: string, token: string): Endpoint {
  return {
    url: `${base}/api/ingest/${encodeURIComponent(partnerId)}/batch`,
    headers: { authorization: `Bearer ${token}` },
    body: (records) => ({ events: records }),
    verdicts: (answer, count) => {
      const results = ((answer as { results?: unknown[] } | undefined)?.results ?? []) as Array<{
        index: number;
        status: string;
        reason?: string;
        event_id?: string;
      }>;
      return Array.from({ length: count }, (_, index): Verdict => {
        const result = results.find((r) => r.index === index);
        if (result?.status === 'accepted') return { status: 'accepted', ...(result.event_id ? { eventId: result.event_id } : {}) };
        if (result?.status === 'duplicate') return { status: 'duplicate', ...(result.event_id ? { eventId: result.event_id } : {}) };
        return { status: 'rejected', reason: result?.reason ?? 'the server gave no receipt' };
      });
    },
  };
}
