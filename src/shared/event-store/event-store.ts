import type { Kysely } from 'kysely';
import { ConflictError, UnavailableError } from '../errors.js';
import type { NewEvent, RecordedEvent } from '../events.js';
import type { StorageHealth } from './storage-fault.js';

/** `no_stream`: the stream must not exist yet; a number: the stream's current version must equal it. */
export type ExpectedVersion = number | 'no_stream' | 'any';

export interface AppendRequest {
  readonly streamId: string;
  readonly events: readonly NewEvent[];
  readonly expectedVersion?: ExpectedVersion;
  /**
   * The application or partner the events come from, for flow control to hold a source that sends
   * most of the load before one that sends little (shared/subscriptions/flow-control.ts). Not stored.
   */
  readonly source?: string;
}

export interface AppendResult {
  readonly streamId: string;
  readonly nextExpectedVersion: number;
  readonly events: readonly RecordedEvent[];
}

export interface ReadAllOptions {
  /**
   * 0, or the position of the last event read: reading resumes after that event in the store's read
   * order, which is commit order and position order (on PostgreSQL, events appended before decision
   * 0040 come first, in their old (transaction id, position) order).
   */
  readonly after: number;
  readonly limit: number;
  /**
   * A reader that follows the log and names itself (an in-process subscriber, the outbox relay): the
   * store may keep what it has not read yet in memory until it has.
   */
  readonly reader?: string;
}

/** Work done inside the same transaction as an append: a context's own view that must never lag its log. */
export interface InlineProjection {
  readonly name: string;
  readonly handles: readonly string[];
  apply(db: Kysely<object>, events: readonly RecordedEvent[]): Promise<void>;
}

/** What a subscriber may do atomically with its checkpoint: append events and write its own tables. */
export interface StoreTransaction {
  readonly db: Kysely<object>;
  append(request: AppendRequest): Promise<AppendResult>;
  /** Several appends at once (one round of statements); throws on the first that fails. */
  appendMany(requests: readonly AppendRequest[]): Promise<AppendResult[]>;
  /** Runs `work` so that, if it throws, its writes and appends are undone and the rest of the transaction goes on. */
  isolated<T>(work: () => Promise<T>): Promise<T>;
  /**
   * Runs `callback` once the transaction committed (and is durable): for memory that must not see
   * what may still roll back, such as a cache another connection could refill before the commit.
   * Never runs if the transaction, or the isolated part that asked, was rolled back.
   */
  afterCommit(callback: () => void): void;
  /**
   * Set while an operator's retry hands a parked event to its subscriber again. The subscriber never
   * took effect for it, so marks it keeps of what it handled before (past a position) do not cover it.
   */
  readonly parkedRetry?: true;
}

export interface EventStore {
  /** Resolves once the events are durable (group committed); rejects with `ConcurrencyError` or `OverloadedError`. */
  append(request: AppendRequest): Promise<AppendResult>;
  readStream(streamId: string): Promise<RecordedEvent[]>;
  /** Several streams in few reads (a page of items with their histories): each id to its events, in version order. */
  readStreams(streamIds: readonly string[]): Promise<Map<string, RecordedEvent[]>>;
  readAll(options: ReadAllOptions): Promise<RecordedEvent[]>;
  /**
   * The last event in read order now: a reader that has read it has read every event acknowledged
   * before this call (every committed event is readable, on PostgreSQL too: decision 0040).
   */
  headPosition(): Promise<number>;
  /** Runs `work` in one transaction; appends made there are durable when the promise resolves. */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;
  /** The last storage fault, until a commit succeeds again (readiness). */
  health?(): StorageHealth;
  /**
   * Resolves once every event committed so far is durable: for an answer that rests on an earlier
   * commit (a retry answered with the first request's id). Absent where a commit is durable already.
   */
  durable?(): Promise<void>;
  /** Called after each commit with the new head position: wakes subscribers without polling. */
  onAppended(listener: (head: number) => void): () => void;
  close(): Promise<void>;
}

export class ConcurrencyError extends ConflictError {
  constructor(streamId: string, expected: ExpectedVersion, actual: number) {
    super('event-store.concurrency', `stream ${streamId} is at version ${actual}, expected ${String(expected)}`);
  }
}

export class OverloadedError extends UnavailableError {
  constructor(queued: number) {
    super('event-store.overloaded', `the write queue is full (${queued} appends waiting); retry shortly`, 1);
  }
}

/** How many stream ids one `readStreams` statement names: well under every driver's parameter limit. */
export const STREAMS_PER_READ = 500;

/** Events of several streams, read in chunks of ids, grouped by stream (each in version order as read). */
export async function readStreamsInChunks(
  streamIds: readonly string[],
  read: (chunk: readonly string[]) => Promise<RecordedEvent[]>,
): Promise<Map<string, RecordedEvent[]>> {
  const streams = new Map<string, RecordedEvent[]>(streamIds.map((id) => [id, []]));
  const unique = [...streams.keys()];
  for (let start = 0; start < unique.length; start += STREAMS_PER_READ) {
    for (const event of await read(unique.slice(start, start + STREAMS_PER_READ))) streams.get(event.streamId)?.push(event);
  }
  return streams;
}

export function checkExpectedVersion(streamId: string, expected: ExpectedVersion | undefined, actual: number): void {
  if (expected === undefined || expected === 'any') return;
  if (expected === 'no_stream' ? actual !== 0 : actual !== expected) {
    throw new ConcurrencyError(streamId, expected, actual);
  }
}
